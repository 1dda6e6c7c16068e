"""Questions whose answer is a value: a number, or the number of an option.

The book asks questions that make readers think ("how many times cheaper is W-MSA than MSA on the first
stage of Swin-T?"). To grade them with the same machinery as the code questions, the student writes a
function WITHOUT arguments that returns the answer::

    def wmsa_saving() -> float:
        return ...            # a number

    def why_the_mask() -> int:
        return ...            # the number of the option you choose, 1, 2, 3...

so the stub, ``check("q6", wmsa_saving)``, the batch grader and its sandbox work unchanged.

* :func:`numeric_question`: the answer is compared with a relative tolerance, and the feedback says
  whether it is too large or too small, never the value;
* :func:`choice_question`: the answer must be one of the option numbers; the feedback says only that the
  option is not the right one.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

from .spec import Case, Comparer, Part, Question

__all__ = ["numeric_question", "choice_question", "number_within", "one_option"]


def number_within(rtol: float) -> Comparer:
    """Accept a real number within ``rtol`` of the expected one (relative); say which way it is off."""

    def compare(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return f"should return a number (int or float), got {type(got).__name__}"
        if not math.isfinite(got):
            return f"returned {got}, not a finite number"
        if math.isclose(got, expected, rel_tol=rtol, abs_tol=0.0):
            return None
        way = "too large" if got > expected else "too small"
        return f"your number is {way} (it must be within {rtol:.2g} of the answer, relatively)"

    compare.checks_values = True  # type: ignore[attr-defined]
    return compare


def one_option(count: int) -> Comparer:
    """Accept the option number the reference gives; ``count`` options numbered 1..count."""

    def compare(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
        if isinstance(got, bool) or not isinstance(got, int) or not 1 <= got <= count:
            return f"should return the number of one option, an int from 1 to {count}, got {got!r}"
        return None if got == expected else f"option {got} is not the right one"

    compare.checks_values = True  # type: ignore[attr-defined]
    return compare


def numeric_question(
    id: str,
    title: str,
    function: str,
    answer: Callable[[], float],
    *,
    points: float = 1,
    rtol: float = 1e-3,
    description: str = "",
    hints: tuple[str, ...] = (),
    forbidden: tuple[str, ...] = (),
) -> Question:
    """A question answered by a number: ``function()`` must return ``answer()`` within ``rtol``;
    ``forbidden`` names library functions that compute the number for the student."""
    part = Part(
        "answer",
        points,
        lambda rng: [Case((), label="your answer")],
        compare=number_within(rtol),
        description=description or f"the number, within a relative {rtol:g}",
    )
    return Question(
        id=id,
        title=title,
        function=function,
        reference=answer,
        parts=(part,),
        hints=hints,
        forbidden=forbidden,
        kind="value",
    )


def choice_question(
    id: str,
    title: str,
    function: str,
    options: Sequence[str],
    correct: int,
    *,
    points: float = 1,
    hints: tuple[str, ...] = (),
) -> Question:
    """A multiple-choice question: ``function()`` returns the number (1-based) of the right option.

    ``options`` are the texts the statement lists (kept here so that a test can check the statement
    shows them all, numbered as here).
    """
    if not 1 <= correct <= len(options):
        raise ValueError(f"question {id}: correct={correct} is not an option number 1..{len(options)}")
    part = Part(
        "answer",
        points,
        lambda rng: [Case((), label="your choice")],
        compare=one_option(len(options)),
        description=f"one of the {len(options)} options",
    )
    q = Question(
        id=id,
        title=title,
        function=function,
        reference=lambda: correct,
        parts=(part,),
        hints=hints,
        answers=(f"option {correct}", f"return {correct}", f"answer is {correct}"),
        kind="value",
    )
    object.__setattr__(q, "options", tuple(options))  # frozen dataclass: the statement's options, for tests
    return q
