"""Judging one output against the reference: structure, shape, dtype, non-finite values, numbers.

Messages describe *what* is wrong (shape, dtype, NaN, how far off, which hint applies) and never
print the expected values, so feedback cannot be used to copy the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from .spec import Case, Comparer, Question, Raised

__all__ = [
    "Outcome",
    "Verdict",
    "close",
    "same_shape",
    "compare_close",
    "judge",
    "matches_variant",
    "is_close",
    "BadOutput",
    "pack_output",
    "graded_call",
]

#: Outcome kinds a graded call can have (the child process reports them; ``check`` builds them locally).
OUTCOME_KINDS = (
    "value",  # returned something: ``value`` holds it
    "raised",  # raised: ``raised`` holds the exception's class names and message
    "missing",  # the notebook defines no such function
    "bad_output",  # returned something that is not tensors/numbers, or on the wrong device, or too large
    "reference_used",  # called one of the question's forbidden callables
    "timeout",
    "crashed",
    "memory_limit",
    "not_run",
)


@dataclass
class Outcome:
    """What happened when the student's function was called on one case."""

    kind: str
    value: Any = None
    raised: Optional[Raised] = None
    message: str = ""


@dataclass
class Verdict:
    """``passed`` or not, the message for the student and, for a failure, its status code."""

    passed: bool
    message: str = ""
    issue: Optional[str] = None


# ---- one graded call and its output, the same in check() and in the batch grader ------------------


class BadOutput(Exception):
    """The graded function returned something the grader does not accept (the message says what)."""


def pack_output(
    value: Any, budget: Optional[list] = None, device: Optional[torch.device] = None, depth: int = 0
) -> Any:
    """The output as the grader compares it: plain CPU tensors (compact copies), numbers, ``None``,
    and tuples of them (at most 3 deep, 16 long); anything else raises :class:`BadOutput`.

    ``device``: the device of the inputs (the CPU by default); a tensor there is copied to the CPU,
    a tensor elsewhere is an error. ``budget``: a one-item list, the tensor elements still allowed.
    """
    if isinstance(value, torch.Tensor):
        allowed = device.type if device is not None else "cpu"
        if value.device.type != allowed or value.device.type == "meta":
            raise BadOutput(
                f"returned a tensor on device '{value.device}'; the grader's inputs are on '{allowed}': "
                f"return your result on the device of the inputs"
            )
        if value.is_sparse or value.layout != torch.strided:
            value = value.to_dense()
        if budget is not None:
            budget[0] -= value.numel()
            if budget[0] < 0:
                raise BadOutput("returned more tensor elements than the grader accepts (output too large)")
        return value.detach().as_subclass(torch.Tensor).to("cpu", copy=True).contiguous()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (tuple, list)):
        if depth >= 3 or len(value) > 16:
            raise BadOutput("returned a nested or long sequence; return a tensor or a small tuple of tensors")
        return tuple(pack_output(v, budget, device, depth + 1) for v in value)
    kind = type(value).__module__ + "." + type(value).__qualname__
    if kind.startswith("numpy."):
        raise BadOutput(f"returned a {kind}; return a torch.Tensor (torch.from_numpy converts)")
    raise BadOutput(f"returned a {kind}, not a tensor or a number")


def graded_call(
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    wire: Any,
    budget: Optional[list] = None,
    device: Optional[torch.device] = None,
    catch: tuple = (Exception,),
) -> Outcome:
    """Call the student's ``fn(*args, **kwargs)`` under the tripwire ``wire`` and say what happened.

    The one path from a call to an :class:`Outcome` that ``check()`` and the grader's sandboxed child
    share: the tripwire's rule (:meth:`Tripwire.verdict`) wins over any result or exception, then an
    exception is ``raised``, then the output is marshalled by :func:`pack_output`.
    """
    try:
        with wire:
            value = fn(*args, **kwargs)
    except catch as exc:
        used = wire.verdict()
        if used:
            return Outcome("reference_used", message=used)
        return Outcome("raised", raised=Raised.from_exception(exc))
    used = wire.verdict()
    if used:
        return Outcome("reference_used", message=used)
    try:
        return Outcome("value", value=pack_output(value, budget, device))
    except BadOutput as exc:
        return Outcome("bad_output", message=str(exc))


def _fmt_shape(shape) -> str:
    return str(tuple(shape))


def _name(names: tuple[str, ...], index: Optional[int], path: str) -> str:
    if index is not None and index < len(names):
        return names[index]
    return path


def _compare(
    got: Any, expected: Any, atol: float, rtol: float, what: str, names: tuple, shape_only: bool
) -> Optional[str]:
    if isinstance(expected, (tuple, list)):
        n = len(expected)
        described = ", ".join(names[:n]) if len(names) >= n else f"{n} values"
        if not isinstance(got, (tuple, list)):
            kind = "a tensor" if isinstance(got, Tensor) else type(got).__name__
            return f"should return a tuple of {n} ({described}), got {kind}"
        if len(got) != n:
            return f"should return a tuple of {n} ({described}), got a tuple of {len(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            msg = _compare(g, e, atol, rtol, _name(names, i, f"{what}[{i}]"), (), shape_only)
            if msg:
                return msg
        return None
    if isinstance(expected, Tensor):
        if not isinstance(got, Tensor):
            kind = "a tuple" if isinstance(got, (tuple, list)) else type(got).__name__
            return f"{what} should be a tensor of shape {_fmt_shape(expected.shape)}, got {kind}"
        if got.shape != expected.shape:
            return f"{what} has shape {_fmt_shape(got.shape)}, expected {_fmt_shape(expected.shape)}"
        if shape_only:
            return None
        if got.dtype != expected.dtype:
            return f"{what} has dtype {got.dtype}, expected {expected.dtype}"
        if expected.dtype == torch.bool or not expected.is_floating_point():
            wrong = int((got != expected).sum())
            if wrong:
                return f"{what}: {wrong} of {expected.numel()} entries are wrong"
            return None
        exp_finite = torch.isfinite(expected)
        bad = ~torch.isfinite(got) & exp_finite
        if bool(bad.any()):
            nan = int(torch.isnan(got[bad]).sum())
            kinds = "NaN" if nan == int(bad.sum()) else ("inf" if nan == 0 else "NaN/inf")
            return f"{what} contains {kinds} in {int(bad.sum())} of {got.numel()} entries"
        ok = torch.isclose(got.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True)
        if not bool(ok.all()):
            err = (got.double() - expected.double()).abs()[exp_finite & torch.isfinite(got)]
            worst = float(err.max()) if err.numel() else math.inf
            off = int((~ok).sum())
            return (
                f"{what}: {off} of {got.numel()} values differ from the reference "
                f"(largest error {worst:.3g}; tolerance atol={atol:g}, rtol={rtol:g})"
            )
        return None
    if isinstance(expected, bool):
        if not isinstance(got, bool):
            return f"{what} should be a bool, got {type(got).__name__}"
        return None if got == expected else f"{what} is wrong"
    if isinstance(expected, int):
        if isinstance(got, bool) or not isinstance(got, int):
            return f"{what} should be an int, got {type(got).__name__}"
        return None if shape_only or got == expected else f"{what} is wrong"
    if isinstance(expected, float):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return f"{what} should be a number, got {type(got).__name__}"
        if shape_only or math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return None
        return f"{what} differs from the reference (tolerance atol={atol:g}, rtol={rtol:g})"
    if expected is None:
        return None if got is None else f"{what} should be None, got {type(got).__name__}"
    raise TypeError(f"the reference returned {type(expected).__name__}, which the grader cannot compare")


def compare_close(
    got: Any, expected: Any, question: Question, atol=None, rtol=None, shape_only=False
) -> Optional[str]:
    """The default comparison: same structure, shapes, dtypes, and values within tolerance."""
    return _compare(
        got,
        expected,
        question.atol if atol is None else atol,
        question.rtol if rtol is None else rtol,
        "output",
        question.output_names,
        shape_only,
    )


def close(
    atol: Optional[float] = None, rtol: Optional[float] = None, select: Optional[int] = None
) -> Comparer:
    """A comparer: values within tolerance (the question's by default); ``select`` picks one tuple item."""

    def compare(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
        if select is not None:
            if not isinstance(got, (tuple, list)) or len(got) <= select:
                return compare_close(got, expected, question, atol, rtol)
            name = (
                question.output_names[select] if select < len(question.output_names) else f"output[{select}]"
            )
            return _compare(
                got[select],
                expected[select],
                question.atol if atol is None else atol,
                question.rtol if rtol is None else rtol,
                name,
                (),
                False,
            )
        return compare_close(got, expected, question, atol, rtol)

    compare.checks_values = True  # type: ignore[attr-defined]
    return compare


def same_shape() -> Comparer:
    """A comparer that checks the structure and the shapes only (for a "shape" part)."""

    def compare(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
        return compare_close(got, expected, question, shape_only=True)

    compare.checks_values = False  # type: ignore[attr-defined]
    return compare


def is_close(got: Any, target: Any, atol: float = 1e-5, rtol: float = 1e-5) -> bool:
    """``got`` equals ``target`` (same structure, shapes, values within tolerance)."""
    try:
        return _compare(got, target, atol, rtol, "output", (), False) is None
    except TypeError:
        return False


def matches_variant(
    variant: Callable[..., Any], hint: str, atol: float = 1e-4
) -> Callable[[Case, Any, Any], Optional[str]]:
    """A diagnostic: if the output equals ``variant(*case.args, **case.kwargs)`` (a typical mistake,
    e.g. the reference without the ``1/sqrt(d_k)`` scale), return ``hint``."""

    def diagnose(case: Case, got: Any, expected: Any) -> Optional[str]:
        try:
            with torch.no_grad():
                wrong = case.call(variant)
        except Exception:
            return None
        if is_close(wrong, expected, atol=1e-7, rtol=0.0):
            return None  # this input cannot tell the mistake apart from the right answer
        return hint if is_close(got, wrong, atol=atol, rtol=atol) else None

    return diagnose


def judge(
    question: Question, compare: Optional[Comparer], case: Case, expected: Any, outcome: Outcome
) -> Verdict:
    """Did this call pass? Build the student's message and, for a failure, its status code."""
    if outcome.kind == "reference_used":
        return Verdict(False, outcome.message or "calls the reference implementation", "reference_used")
    if outcome.kind == "missing":
        return Verdict(False, f"the notebook defines no function `{question.function}`", "missing_function")
    if outcome.kind == "bad_output" and question.kind == "value":
        # a question answered by a value (course_lib.grading.understanding): say what it wants back
        what = "the number of one option" if getattr(question, "options", None) else "a number (int or float)"
        return Verdict(False, f"should return {what}: {outcome.message}", outcome.kind)
    if outcome.kind in ("timeout", "crashed", "memory_limit", "bad_output"):
        return Verdict(False, outcome.message, outcome.kind)
    if outcome.kind == "not_run":
        return Verdict(False, outcome.message or "not run", None)
    if outcome.kind == "raised":
        raised = outcome.raised or Raised(("Exception",))
        if "NotImplementedError" in raised.types:
            detail = f": {raised.message}" if raised.message else ""
            return Verdict(False, f"not implemented yet (NotImplementedError{detail})", "not_implemented")
        if "SystemExit" in raised.types:
            return Verdict(False, "called sys.exit()", "sys_exit")
        if "MemoryError" in raised.types or "can't allocate memory" in raised.message:
            return Verdict(False, f"ran out of memory ({raised.name})", "memory_limit")
        if isinstance(expected, Raised):
            if expected.types[0] in raised.types:
                return Verdict(True)
            return Verdict(
                False, f"raised {raised.name}, expected {expected.name} for {case.label or 'this input'}"
            )
        return Verdict(False, f"raised {raised.name}: {raised.message}", "exception")
    # outcome.kind == "value"
    if isinstance(expected, Raised):
        return Verdict(
            False, f"should raise {expected.name} for {case.label or 'this input'}, but returned a value"
        )
    compare = compare or close()
    message = compare(outcome.value, expected, case, question)
    if message is None:
        return Verdict(True)
    if getattr(compare, "checks_values", True):
        for diagnose in question.diagnostics:
            try:
                hint = diagnose(case, outcome.value, expected)
            except Exception:
                hint = None
            if hint:
                message = f"{message}. Hint: {hint}"
                break
    return Verdict(False, message)
