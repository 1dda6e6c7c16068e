"""Staged hints: the first failure of a part gets a general pointer, repeated failures more specific ones.

A question (or one of its parts) lists its hints from the most general to the most specific
(:attr:`Question.hints`, :attr:`Part.hints`): the first says what to write and where to look in the book;
later ones name the step that usually goes wrong. None of them is the answer (a test checks that no hint
contains the question's reference expression).

* :func:`staged_hint` is the pure rule: (question, part, number of failures of that part) -> message.
* ``check()`` in a notebook counts the failures of each part in this kernel session
  (:func:`on_failure`) and shows the next stage each time the same part fails again.
* The batch grader's feedback, written once after grading, shows every stage of a failed part
  (:func:`feedback_hints`), in the same order and with the same words.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

from .spec import Part, Question

__all__ = [
    "stages",
    "staged_hint",
    "on_failure",
    "feedback_hints",
    "report_hints",
    "dedupe_feedback_hints",
    "reset",
    "NO_HINT_ISSUES",
]

#: Failures that a hint cannot help with (the stub still raises, the reference was called, no function).
NO_HINT_ISSUES = frozenset({"not_implemented", "reference_used", "missing_function"})

_failures: Counter = Counter()


def stages(question: Question, part: Part | str) -> tuple[str, ...]:
    """The hints of ``part`` (a :class:`Part` or its name), or the question's when the part has none."""
    if isinstance(part, str):
        part = next((p for p in question.parts if p.name == part), None)  # type: ignore[assignment]
    own = part.hints if isinstance(part, Part) else ()
    return own or question.hints


def staged_hint(question: Question, part: Part | str, failures: int) -> Optional[str]:
    """The hint to show after the ``failures``-th failure of ``part`` (1 = first), or ``None``.

    Stage ``min(failures, number of stages)``: the last one repeats once all have been shown.
    """
    hints = stages(question, part)
    if failures < 1 or not hints:
        return None
    n = min(failures, len(hints))
    return f"hint {n}/{len(hints)}: {hints[n - 1]}"


def on_failure(assignment: str, question: Question, part: Part) -> Optional[str]:
    """Record one more failure of ``part`` (``check()`` in this kernel) and return the hint it earns."""
    key = (assignment, question.id, part.name)
    _failures[key] += 1
    return staged_hint(question, part, _failures[key])


def reset() -> None:
    """Forget the failures counted so far (the next failure of every part gets hint 1 again)."""
    _failures.clear()


def feedback_hints(question: Question, part: Part | str) -> list[str]:
    """Every stage of ``part``'s hints, numbered as ``check()`` numbers them (for the batch feedback)."""
    hints = stages(question, part)
    return [f"hint {i}/{len(hints)}: {h}" for i, h in enumerate(hints, start=1)]


def report_hints(question: Question, earned: list[tuple[str, str]]) -> list[str]:
    """The hint lines of one ``check()`` report from ``(part name, hint)`` of its failed parts.

    A part's own hints are shown for that part; the question's hints (shared by its parts) only once,
    at the furthest stage any failed part has reached, so three failed parts do not print three hints.
    """
    lines: list[str] = []
    shared: list[str] = []
    for name, hint in earned:
        if not hint:
            continue
        part = next((p for p in question.parts if p.name == name), None)
        if part is not None and part.hints:
            lines.append(f"{name}: {hint}")
        else:
            shared.append(hint)
    if shared:
        lines.insert(0, max(shared, key=lambda h: int(h.split()[1].split("/")[0])))
    return lines


def dedupe_feedback_hints(question: Question, parts: list[dict]) -> None:
    """In the batch feedback's part records (dicts with ``name`` and ``hints``), keep the question's shared
    hints under the first failed part only; a part's own hints stay with it."""
    shown = False
    for record in parts:
        part = next((p for p in question.parts if p.name == record.get("name")), None)
        if not record.get("hints") or (part is not None and part.hints):
            continue
        if shown:
            record["hints"] = []
        shown = True
