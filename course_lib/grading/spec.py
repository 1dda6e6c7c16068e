"""The question-spec format: what an assignment is made of.

An :class:`Assignment` is a list of :class:`Question`; a question is worth the sum of its
:class:`Part` s. A part is a named group of test :class:`Case` s (inputs) worth some points; it earns
its points when the student's function gives the reference's answer on *every* one of its cases.
Public parts use inputs drawn from a fixed seed (the same for everybody, visible through
:func:`course_lib.grading.check`); hidden parts (``hidden=True``) use inputs drawn from a generator
seeded with the instructor's secret, and may add edge cases that the public parts do not show.

The reference answer is ``question.reference(*case.args, **case.kwargs)``, evaluated in the grader's
own process. If the reference raises, the student's function must raise an exception of the same
type (e.g. ``ValueError`` for an embedding width not divisible by the number of heads).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import torch

__all__ = [
    "Case",
    "Part",
    "Question",
    "Assignment",
    "Raised",
    "Rule",
    "Comparer",
    "Diagnostic",
    "case_generator",
    "evaluate_reference",
    "PUBLIC_SECRET",
]

#: Secret of the public inputs: anybody can reproduce them, which is the point.
PUBLIC_SECRET = "public"

#: ``compare(got, expected, case, question) -> None`` when right, else a message for the student.
Comparer = Callable[[Any, Any, "Case", "Question"], Optional[str]]
#: ``diagnose(case, got, expected) -> None``, or a hint naming the likely mistake (never the answer).
Diagnostic = Callable[["Case", Any, Any], Optional[str]]


@dataclass(frozen=True)
class Case:
    """One call of the student's function: ``fn(*args, **kwargs)``.

    ``label`` describes the input for the feedback ("q (2, 4, 8), boolean mask"); it must not give the
    expected answer away.
    """

    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def call(self, fn: Callable[..., Any]) -> Any:
        return fn(*self.args, **dict(self.kwargs))


@dataclass(frozen=True)
class Raised:
    """An expected (or observed) exception, by the names of its class and of its bases."""

    types: tuple[str, ...]
    message: str = ""

    @property
    def name(self) -> str:
        return self.types[0] if self.types else "Exception"

    @classmethod
    def from_exception(cls, exc: BaseException) -> Raised:
        names = tuple(k.__name__ for k in type(exc).__mro__ if k not in (object, BaseException))
        return cls(names, str(exc)[:300])


@dataclass(frozen=True)
class Rule:
    """A requirement the question's statement states, tied to the part that tests it.

    Args:
        text: the statement's own words (whitespace aside, they must appear in the question's markdown
            cell), e.g. "Raise a `ValueError` naming the shapes when `cls_token` is not `(1, 1, D)`".
        part: the name of the part whose cases catch a violation.
        violation: an implementation that does everything else right but breaks this rule (e.g. checks
            ``pos_embed`` and forgets ``cls_token``); the requirement test grades it and requires it to
            lose ``part``, so a rule cannot be stated without a test that enforces it.
    """

    text: str
    part: str
    violation: Callable[..., Any]


@dataclass(frozen=True)
class Part:
    """A gradable part of a question.

    Args:
        name: short name shown in feedback ("shape", "values", "boolean mask").
        points: what the part is worth (all or nothing over its cases).
        cases: ``cases(rng: torch.Generator) -> list[Case]``; draw every random input from ``rng``.
        hidden: hidden parts run only in ``course-lib grade``, with ``rng`` seeded by the secret.
        compare: how to judge one case, default :func:`course_lib.grading.compare.close` with the
            question's tolerances; :func:`course_lib.grading.compare.same_shape` checks shapes only.
        description: one line for the student ("works with a boolean mask broadcast over the batch").
        hints: staged hints for this part, from the most general to the most specific (see
            :mod:`course_lib.grading.hints`); the question's ``hints`` when empty. Never the answer.
    """

    name: str
    points: float
    cases: Callable[[torch.Generator], Sequence[Case]]
    hidden: bool = False
    compare: Optional[Comparer] = None
    description: str = ""
    hints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.points > 0 and math.isfinite(self.points)):
            raise ValueError(f"part {self.name!r}: points={self.points} must be a positive number")


@dataclass(frozen=True)
class Question:
    """A graded question: the student writes ``function`` in the notebook.

    Args:
        id: ``"q1"``, ``"q2"``... (what the student passes to ``check``).
        title: one line ("Scaled dot-product attention").
        function: the name the graded function has in the student's notebook.
        reference: the correct implementation, run in the grader's process only.
        parts: the parts and their points.
        forbidden: dotted names of callables that the student's function must not call, because they
            *are* the thing to implement ("course_lib.attention.scaled_dot_product_attention",
            "torch.nn.functional.scaled_dot_product_attention", "torch.Tensor.softmax"). A graded call
            that reaches one of them scores 0 for the whole question.
        diagnostics: hints tried, in order, when a case's values are wrong.
        atol, rtol: tolerances of the default comparison (float32 on the CPU).
        output_names: names of the parts of a tuple output, for messages (``("output", "weights")``).
        hints: staged hints, general to specific: the first says what to write and where to look in the
            book, later ones name the step that is usually wrong. ``check`` shows the next one each time a
            part fails again; the batch feedback shows them all. Never the answer (a test checks).
        uses: graded functions of EARLIER questions that this one may call (``("patchify",)`` for the
            patch embedding). While this question is graded they are replaced by their reference, so a
            mistake is charged to its own question only (:mod:`course_lib.grading.alone`).
        rules: every requirement the statement states (errors to raise, dtypes, edge cases), each tied
            to the part that tests it (:class:`Rule`).
        answers: expressions that ARE the answer in the statement's notation (``"T * T * D"``); no stub
            or hint may contain them (the solution's own code is checked as well).
        kind: ``"function"`` (the student's function is called on inputs, public and hidden) or
            ``"value"`` (a function without arguments returns a number or an option's number: see
            :mod:`course_lib.grading.understanding`; no hidden inputs then).
    """

    id: str
    title: str
    function: str
    reference: Callable[..., Any]
    parts: tuple[Part, ...]
    forbidden: tuple[str, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    atol: float = 1e-5
    rtol: float = 1e-5
    output_names: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    answers: tuple[str, ...] = ()
    kind: str = "function"

    def __post_init__(self) -> None:
        if self.kind not in ("function", "value"):
            raise ValueError(f"question {self.id}: kind must be 'function' or 'value', got {self.kind!r}")
        names = [p.name for p in self.parts]
        for rule in self.rules:
            if rule.part not in names:
                raise ValueError(f"question {self.id}: rule {rule.text!r} names no part {rule.part!r}")
        if not names:
            raise ValueError(f"question {self.id} has no parts")
        if len(set(names)) != len(names):
            raise ValueError(f"question {self.id}: part names must be unique, got {names}")
        if not self.function.isidentifier():
            raise ValueError(f"question {self.id}: function name {self.function!r} is not an identifier")

    @property
    def points(self) -> float:
        return sum(p.points for p in self.parts)

    @property
    def public_points(self) -> float:
        return sum(p.points for p in self.parts if not p.hidden)

    @property
    def hidden_points(self) -> float:
        return sum(p.points for p in self.parts if p.hidden)


@dataclass(frozen=True)
class Assignment:
    """An exercise notebook's graded questions.

    ``name`` is the notebook's stem (``"01_self_attention"`` for ``solutions/01_self_attention.ipynb``)
    and ``chapter`` the book page it practises (``"01_self_attention"`` for ``book/01_self_attention``).
    """

    name: str
    title: str
    chapter: str
    questions: tuple[Question, ...]

    def __post_init__(self) -> None:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"assignment {self.name}: question ids must be unique, got {ids}")
        functions = [q.function for q in self.questions]
        if len(set(functions)) != len(functions):
            raise ValueError(f"assignment {self.name}: graded function names must be unique, got {functions}")
        for index, q in enumerate(self.questions):
            earlier = functions[:index]
            for name in q.uses:
                if name not in earlier:
                    raise ValueError(
                        f"assignment {self.name}, {q.id}: uses={name!r} must name the function of an earlier "
                        f"question ({earlier})"
                    )

    @property
    def points(self) -> float:
        return sum(q.points for q in self.questions)

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(
            f"assignment {self.name} has no question {qid!r}; it has {[q.id for q in self.questions]}"
        )


def case_generator(secret: str, assignment: str, qid: str, part: str) -> torch.Generator:
    """A CPU generator seeded by a hash of the secret and the part's address.

    Each part gets its own stream, so adding a part does not change the inputs of the others, and
    nobody can predict hidden inputs without the instructor's secret.
    """
    digest = hashlib.sha256(f"{secret}|{assignment}|{qid}|{part}".encode()).digest()
    g = torch.Generator()
    g.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return g


def evaluate_reference(question: Question, case: Case) -> Any:
    """The expected answer for ``case``, or :class:`Raised` if the reference raises."""
    try:
        with torch.no_grad():
            return case.call(question.reference)
    except Exception as exc:  # the spec says "this input must raise"
        return Raised.from_exception(exc)
