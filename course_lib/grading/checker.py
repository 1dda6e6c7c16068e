"""``check("q1", fn)``: instant feedback in the student's notebook (public tests only)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from .alone import graded_alone, replaced_note  # issue 16: a question graded on its own
from .compare import Outcome, Verdict, graded_call, judge
from .hints import NO_HINT_ISSUES, on_failure, report_hints  # issue 16: staged hints
from .spec import PUBLIC_SECRET, Assignment, Case, Question, case_generator, evaluate_reference
from .tripwire import TAMPERED, Tripwire

__all__ = ["check", "CheckReport", "run_public_tests", "find_question"]

PASS, FAIL = "\u2713", "\u2717"


@dataclass
class PartReport:
    name: str
    points: float
    passed: bool
    message: str = ""
    hint: str = ""  # issue 16: the staged hint this failure earned


@dataclass
class CheckReport:
    """What ``check`` found: per public part, pass/fail and the first failure's message."""

    assignment: str
    question: Question
    parts: list[PartReport] = field(default_factory=list)
    reference_used: Optional[str] = None
    seconds: float = 0.0
    replaced: str = ""  # issue 16: "graded with the reference `patchify` (Q1) in place of yours..."

    @property
    def score(self) -> float:
        if self.reference_used:
            return 0.0
        return sum(p.points for p in self.parts if p.passed)

    def format(self) -> str:
        q = self.question
        lines = [f"{q.id} {q.title}: {_pts(self.score)}/{_pts(q.public_points)} public points"]
        if q.hidden_points:
            lines[0] += f" (hidden tests add {_pts(q.hidden_points)} more at grading)"
        todo = [p for p in self.parts if p.message.startswith("not implemented yet")]
        if self.parts and len(todo) == len(self.parts):
            lines.append(f"  {FAIL} {todo[0].message}")
            return "\n".join(lines)
        for p in self.parts:
            mark = PASS if p.passed else FAIL
            line = f"  {mark} {p.name} [{_pts(p.points)} pt{'s' if p.points != 1 else ''}]"
            if not p.passed and p.message:
                line += f": {p.message}"
            lines.append(line)
        lines += [f"  {h}" for h in report_hints(q, [(p.name, p.hint) for p in self.parts])]  # issue 16
        if self.replaced:  # issue 16
            lines.append(f"  note: {self.replaced}")
        if self.reference_used:
            what = f"calls {self.reference_used}" if self.reference_used != TAMPERED else self.reference_used
            lines.append(
                f"  {FAIL} your function {what}, the reference implementation of what it should "
                f"implement: it gets no credit when graded"
                if what.startswith("calls ")
                else f"  {FAIL} your function {what}: it gets no credit when graded"
            )
        return "\n".join(lines)


def _pts(x: float) -> str:
    return f"{x:g}"


def find_question(
    qid: str, fn: Optional[Callable] = None, assignment: Optional[str] = None
) -> tuple[Assignment, Question]:
    """The question ``qid`` of ``assignment``; without an assignment, the one whose graded function
    has ``fn``'s name."""
    from .assignments import all_assignments, get_assignment

    if assignment is not None:
        a = get_assignment(assignment)
        return a, a.question(qid)
    matches = [(a, q) for a in all_assignments() for q in a.questions if q.id == qid]
    if not matches:
        raise ValueError(f"no assignment has a question {qid!r}")
    name = getattr(fn, "__name__", None)
    named = [(a, q) for a, q in matches if q.function == name]
    if len(named) == 1:
        return named[0]
    if len(matches) == 1:
        return matches[0]
    options = ", ".join(f"{a.name} ({q.function})" for a, q in matches)
    raise ValueError(
        f"{qid!r} exists in several assignments: {options}; name your function as the question asks or "
        f"pass assignment=..."
    )


def _outcome(fn: Callable, case: Case, wire: Tripwire, device: Optional[torch.device]) -> Outcome:
    if device is not None:
        case = Case(_to(case.args, device), {k: _to(v, device) for k, v in case.kwargs.items()}, case.label)
    return graded_call(fn, case.args, dict(case.kwargs), wire, device=device)


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, device) for v in x)
    if isinstance(x, dict):  # e.g. a block's weights by name
        return {k: _to(v, device) for k, v in x.items()}
    return x


def run_public_tests(assignment: Assignment, question: Question, fn: Callable, device=None) -> CheckReport:
    """Run the public parts of ``question`` on ``fn`` in this process."""
    start = time.perf_counter()
    report = CheckReport(assignment.name, question)
    wire = Tripwire(question.forbidden)
    with graded_alone(assignment, question, getattr(fn, "__globals__", None)) as replaced:  # issue 16
        _run_public_parts(assignment, question, fn, device, wire, report)
    report.replaced = replaced_note(assignment, question, replaced) if replaced else ""  # issue 16
    report.seconds = time.perf_counter() - start
    return report


def _run_public_parts(assignment, question, fn, device, wire, report) -> None:  # issue 16: loop moved here
    for part in question.parts:
        if part.hidden:
            continue
        cases = part.cases(case_generator(PUBLIC_SECRET, assignment.name, question.id, part.name))
        verdict = Verdict(True)
        for case in cases:
            expected = evaluate_reference(question, case)
            outcome = _outcome(fn, case, wire, device)
            if outcome.kind == "reference_used":
                report.reference_used = outcome.message.removeprefix("calls ")
            verdict = judge(question, part.compare, case, expected, outcome)
            if verdict.issue == "reference_used":
                verdict.message = "no credit (see below)"
                break
            if not verdict.passed:
                if case.label and verdict.issue != "not_implemented":
                    verdict.message = f"{verdict.message} [{case.label}]"
                break
        hint = None  # issue 16: staged hint on a failure a hint can help with
        if not verdict.passed and verdict.issue not in NO_HINT_ISSUES:
            hint = on_failure(assignment.name, question, part)
        report.parts.append(PartReport(part.name, part.points, verdict.passed, verdict.message, hint or ""))


def check(qid: str, fn: Callable, assignment: Optional[str] = None, device: Optional[Any] = None) -> None:
    """Run question ``qid``'s public tests on your function ``fn`` and print what passed.

    Args:
        qid: the question, ``"q1"``, ``"q2"``...
        fn: your function (its name tells which assignment it belongs to).
        assignment: the assignment's name (``"01_self_attention"``), if the name of ``fn`` is not the
            one the question asks for.
        device: run the tests on this device (e.g. ``"cuda"``); the CPU by default.

    Prints a line per part with its points, and for a failure what went wrong (expected vs got
    shape, NaN, a hint at the likely mistake), never the reference answer. Hidden tests only run
    when the instructor grades.
    """
    if not callable(fn):
        raise TypeError(f"check({qid!r}, fn): fn must be your function, got {type(fn).__name__}")
    a, q = find_question(qid, fn, assignment)
    report = run_public_tests(a, q, fn, torch.device(device) if device is not None else None)
    print(report.format())
    sys.stdout.flush()
