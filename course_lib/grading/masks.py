"""Feedback that points the way for masks and index maps.

"448 of 1024 entries are wrong" does not say what to fix. For a boolean attention mask these comparers
say how many entries are **too permissive** (allow a pair the reference blocks) and how many are **too
strict** (block a pair it allows), and give one example pair with its coordinates; for an integer index
map, how many entries are wrong, the range of the values against the range expected, and one example
pair. They never print the expected tensor.

The coordinates of an entry come from a ``locate(case, index) -> str`` function of the question ("window
3, query 5 (row 1, column 1 of the window), key 12 (row 3, column 0)").
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

from .compare import compare_close
from .spec import Case, Comparer, Question

__all__ = ["mask_comparer", "index_comparer", "grid_position", "structure"]

Locate = Callable[[Case, tuple[int, ...]], str]


def grid_position(token: int, width: int) -> str:
    """``"(row r, column c)"`` of token ``token`` in a grid ``width`` tokens wide, numbered row by row."""
    return f"(row {token // width}, column {token % width})"


def _first(where: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in where.nonzero()[0].tolist())


def structure(got: Any, expected: Tensor, question: Question, dtype: torch.dtype, why: str) -> Optional[str]:
    """Shape and dtype only: ``None`` when right, else the message (for a "shape and dtype" part)."""
    message = compare_close(got, expected, question, shape_only=True)
    if message is None and got.dtype != dtype:
        named = {torch.long: "torch.long (torch.int64)", torch.bool: "torch.bool"}.get(dtype, str(dtype))
        return f"output has dtype {got.dtype}, expected {named}: {why}"
    return message


def mask_comparer(locate: Locate, dtype_why: str = "True where attention is allowed") -> Comparer:
    """Compare a boolean mask (``True`` = may attend) and describe the difference by kind."""

    def compare(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
        message = structure(got, expected, question, torch.bool, dtype_why)
        if message is not None:
            return message
        permissive = got & ~expected
        strict = ~got & expected
        n_perm, n_strict = int(permissive.sum()), int(strict.sum())
        if not (n_perm or n_strict):
            return None
        parts = [f"{n_perm + n_strict} of {expected.numel()} entries are wrong:"]
        parts.append(
            f"{n_perm} allow a pair that must be blocked (too permissive), "
            f"{n_strict} block a pair that may attend (too strict)"
        )
        if n_perm:
            example, verdict = _first(permissive), "yours allows it, it must be blocked"
        else:
            example, verdict = _first(strict), "yours blocks it, it may attend"
        return f"{' '.join(parts)}; e.g. {locate(case, example)}: {verdict}"

    compare.checks_values = True  # type: ignore[attr-defined]
    return compare


def index_comparer(
    locate: Locate, size: Callable[[Case], int], dtype_why: str = "it indexes a table"
) -> Comparer:
    """Compare an integer index map; ``size(case)`` is the number of rows of the table it indexes."""

    def compare(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
        message = structure(got, expected, question, torch.long, dtype_why)
        if message is not None:
            return message
        wrong = got != expected
        n = int(wrong.sum())
        if not n:
            return None
        rows = size(case)
        lo, hi = int(got.min()), int(got.max())
        span = f"your values run from {lo} to {hi}"
        span += " (the table's rows are 0 .. " + f"{rows - 1})" if lo < 0 or hi >= rows else ""
        example = _first(wrong)
        return (
            f"{n} of {expected.numel()} entries are wrong; {span}; e.g. {locate(case, example)}: "
            f"yours gives row {int(got[example])}, which is not that pair's offset"
        )

    compare.checks_values = True  # type: ignore[attr-defined]
    return compare
