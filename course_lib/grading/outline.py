"""What the notebooks say about an assignment, generated from its spec so that they cannot drift.

* :func:`parts_markdown`: the "Parts:" list at the end of a question's statement in the solutions
  (and so the exercises) notebook: each part's name, points, whether it is hidden, and what it tests.
* :func:`questions_markdown`: the list of questions, with titles and points, that each chapter's
  "Exercises" section shows (``book/NN_*.ipynb``).

The tests compare both with the notebooks; ``python -m course_lib.grading.outline`` rewrites them after
a change of a spec (the chapter's exercise cell and the statements' "Parts:" lists only).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .spec import Assignment, Question

__all__ = ["parts_markdown", "questions_markdown", "QUESTIONS_BEGIN", "QUESTIONS_END", "update_notebooks"]

QUESTIONS_BEGIN = "<!-- questions: generated from the assignment's spec -->"
QUESTIONS_END = "<!-- end of questions -->"


def _points(x: float) -> str:
    return f"{x:g} point{'' if x == 1 else 's'}"


def parts_markdown(question: Question) -> str:
    """The "Parts:" block of a question's statement."""
    lines = ["Parts:"]
    for p in question.parts:
        line = f"- *{p.name}* ({_points(p.points)}{', hidden' if p.hidden else ''})"
        if p.description:
            line += f": {p.description}"
        lines.append(line)
    return "\n".join(lines)


def questions_markdown(assignment: Assignment) -> str:
    """The chapter's list of the assignment's questions, between two HTML comments (invisible in the book)."""
    lines = [QUESTIONS_BEGIN, ""]
    for q in assignment.questions:
        lines.append(f"- **{q.id.upper()}. {q.title}** ({_points(q.points)}): `{q.function}`")
    lines += ["", f"{_points(assignment.points).capitalize()} in all.", "", QUESTIONS_END]
    return "\n".join(lines)


_QUESTIONS = re.compile(re.escape(QUESTIONS_BEGIN) + r".*?" + re.escape(QUESTIONS_END), re.S)
_PARTS = re.compile(r"^Parts:(?:\n- [^\n]*)*", re.M)


def _rewrite(assignment: Assignment, kind: str, source: str) -> str:
    if kind == "questions":
        if QUESTIONS_BEGIN not in source:
            return source
        text = questions_markdown(assignment)
        return _QUESTIONS.sub(lambda _: text, source)
    m = re.match(r"## (Q\d+)\. ", source)
    if not m:
        return source
    text = parts_markdown(assignment.question(m.group(1).lower()))
    return _PARTS.sub(lambda _: text, source)


def update_notebooks(root: Path) -> list[Path]:
    """Rewrite the generated blocks of ``solutions/*.ipynb`` and ``book/*.ipynb``; return what changed."""
    import nbformat

    from .assignments import all_assignments

    changed = []
    for a in all_assignments():
        for path, kind in (
            (root / "solutions" / f"{a.name}.ipynb", "parts"),
            (root / "book" / f"{a.chapter}.ipynb", "questions"),
        ):
            nb = nbformat.read(path, as_version=4)
            before = nbformat.writes(nb)
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source = _rewrite(a, kind, cell.source)
            if nbformat.writes(nb) != before:
                nbformat.write(nb, path)
                changed.append(path)
    return changed


if __name__ == "__main__":  # python -m course_lib.grading.outline [ROOT]
    for p in update_notebooks(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(f"{p}: updated")
