"""``course-lib release``: exercises generated from solutions.

In every code cell, each region between a ``# BEGIN SOLUTION`` line and a ``# END SOLUTION`` line
becomes ``raise NotImplementedError("<hint>")`` at the region's indentation (the hint comes from a
``# HINT: ...`` line inside the region). In markdown, ``<!-- BEGIN SOLUTION -->...<!-- END SOLUTION -->``
becomes "*Your answer here.*"; a cell tagged ``solution-only`` is dropped. Outputs are cleared, then
the exercise is executed (with errors allowed) so that it is stored with the outputs a student sees
first, and cells that raise are tagged ``raises-exception`` for strict nbval. ``--check`` compares
only the sources, so it needs no kernel.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Optional

import nbformat

__all__ = ["strip_solutions", "make_exercise", "release", "ReleaseError", "add_parser", "run"]

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)#+\s*BEGIN SOLUTION\b.*$")
_END = re.compile(r"^[ \t]*#+\s*END SOLUTION\b.*$")
_HINT = re.compile(r"^[ \t]*#+\s*HINT:\s*(?P<hint>.*?)\s*$")
_MD = re.compile(r"<!--\s*BEGIN SOLUTION\s*-->.*?<!--\s*END SOLUTION\s*-->", re.S)
DEFAULT_HINT = "write your code here"
RAISES_TAG = "raises-exception"
DROP_TAG = "solution-only"


class ReleaseError(ValueError):
    pass


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each solution region of a code cell's ``source`` by a ``NotImplementedError`` stub."""
    out: list[str] = []
    region: Optional[tuple[str, list[str]]] = None
    for number, line in enumerate(source.split("\n"), start=1):
        if region is None:
            m = _BEGIN.match(line)
            if m:
                region = (m.group("indent"), [])
            elif _END.match(line):
                raise ReleaseError(f"{where}, line {number}: '# END SOLUTION' without a '# BEGIN SOLUTION'")
            else:
                out.append(line)
            continue
        if _BEGIN.match(line):
            raise ReleaseError(f"{where}, line {number}: nested '# BEGIN SOLUTION'")
        if _END.match(line):
            indent, body = region
            hints = [m.group("hint") for m in map(_HINT.match, body) if m]
            hint = hints[0] if hints else DEFAULT_HINT
            out.append(f"{indent}raise NotImplementedError({json.dumps(hint)})")
            region = None
            continue
        region[1].append(line)
    if region is not None:
        raise ReleaseError(f"{where}: '# BEGIN SOLUTION' without '# END SOLUTION'")
    return "\n".join(out)


def make_exercise(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The exercise notebook (sources only, no outputs) of a solution notebook."""
    nb = copy.deepcopy(solution)
    cells = []
    for index, cell in enumerate(nb.cells, start=1):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if DROP_TAG in tags:
            continue
        tags = [t for t in tags if t != RAISES_TAG]
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{name}, cell {index}")
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = _MD.sub("*Your answer here.*", cell.source)
        metadata = {k: v for k, v in cell.get("metadata", {}).items() if k not in ("execution", "tags")}
        if tags:
            metadata["tags"] = tags
        cell.metadata = metadata
        cells.append(cell)
    nb.cells = cells
    course = dict(nb.metadata.get("course_lib", {}))
    course.update(kind="exercise", generated_from=f"solutions/{name}.ipynb")
    nb.metadata["course_lib"] = course
    return nb


def _skeleton(nb: nbformat.NotebookNode) -> list:
    """What --check compares: cell types, sources and tags (outputs may legitimately differ)."""
    return [
        (c.cell_type, c.source, sorted(t for t in c.get("metadata", {}).get("tags", []) if t != RAISES_TAG))
        for c in nb.cells
    ] + [nb.metadata.get("course_lib", {})]


def _execute(nb: nbformat.NotebookNode, cwd: Path) -> None:
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    for cell in nb.cells:
        if cell.cell_type == "code" and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            cell.metadata.setdefault("tags", [])
            if RAISES_TAG not in cell.metadata["tags"]:
                cell.metadata["tags"].append(RAISES_TAG)


def release(source: Path, dest: Path, check: bool = False, execute: bool = True, force: bool = False) -> int:
    """Write ``dest/<name>.ipynb`` for every ``source/<name>.ipynb``; return a process exit code.

    With ``check=True`` nothing is written: returns 1 (and says why) if any exercise is missing, stale,
    or has no solution any more.
    """
    from ..grading.reports import atomic_write

    solutions = sorted(source.glob("*.ipynb"))
    if not solutions:
        print(f"course-lib release: no notebooks in {source}", file=sys.stderr)
        return 2
    problems: list[str] = []
    for path in solutions:
        name = path.stem
        try:
            exercise = make_exercise(nbformat.read(path, as_version=4), name)
        except ReleaseError as exc:
            print(f"course-lib release: {exc}", file=sys.stderr)
            return 2
        target = dest / path.name
        current = nbformat.read(target, as_version=4) if target.exists() else None
        up_to_date = current is not None and _skeleton(current) == _skeleton(exercise)
        if check:
            if not up_to_date:
                problems.append(f"{target} is {'missing' if current is None else 'out of date'}")
            continue
        if up_to_date and not force:
            print(f"{target}: up to date")
            continue
        dest.mkdir(parents=True, exist_ok=True)
        if execute:
            _execute(exercise, dest)
        atomic_write(target, nbformat.writes(exercise) + "\n")
        print(f"{target}: written")
    names = {p.name for p in solutions}
    for extra in sorted(dest.glob("*.ipynb")) if dest.exists() else []:
        if extra.name in names:
            continue
        meta = nbformat.read(extra, as_version=4).metadata.get("course_lib", {})
        if meta.get("kind") == "exercise":
            if check:
                problems.append(f"{extra} has no solution in {source}")
            else:
                extra.unlink()
                print(f"{extra}: removed (its solution is gone)")
    if problems:
        print("exercises/ is out of date with solutions/ (run `make exercises`):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    # The translated copies (exercises/zh_CN/) follow from locales/: see course_lib/i18n.py.
    from ..i18n import release_translations

    return release_translations(dest, dest.parent / "locales", check=check)


# ---- command line ------------------------------------------------------------------------------
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``release`` and its options."""
    p = subparsers.add_parser(
        "release", help="generate exercises/ from solutions/ (solution regions become stubs)"
    )
    p.add_argument("--source", default="solutions", help="folder of solution notebooks (default: solutions)")
    p.add_argument("--dest", default="exercises", help="folder of exercise notebooks (default: exercises)")
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the exercises are out of date"
    )
    p.add_argument(
        "--no-execute", action="store_true", help="do not execute the exercises to store their outputs"
    )
    p.add_argument("--force", action="store_true", help="rewrite every exercise, even the up-to-date ones")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    return release(
        Path(args.source), Path(args.dest), check=args.check, execute=not args.no_execute, force=args.force
    )
