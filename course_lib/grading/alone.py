"""Grading a question on its own: earlier answers it calls are replaced by their reference.

When question 2 (``patch_embed``) calls the student's own ``patchify`` (question 1), a bug in
``patchify`` would fail question 2's tests too, and one mistake would cost points twice. A question
therefore names the earlier graded functions it may call (:attr:`Question.uses`); while it is graded,
those names in the student's namespace are bound to the reference implementation, and restored after:

* ``check()`` does it in the notebook's own namespace (``fn.__globals__``) for the duration of the call;
* the batch grader's child process does it in the submission's namespace for that question
  (:func:`graded_alone_by_name` around :func:`.sandbox_child.call_graded`).

Only names the student's namespace already defines are replaced (a student who never wrote ``patchify``
still gets the ``NameError`` of their own code). The reference runs with the tripwire paused, so the
substitute does not count as "calling the library's implementation". The feedback says that an earlier
answer was replaced (:func:`replaced_note`).
"""

from __future__ import annotations

import functools
import pkgutil
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, MutableMapping, Optional

from .spec import Assignment, Question

__all__ = [
    "substitutes",
    "graded_alone",
    "graded_alone_by_name",
    "replaced_note",
    "preload",
    "assignment_modules",
]


def _paused_tripwire(name: str, reference: Callable[..., Any]) -> Callable[..., Any]:
    """``reference`` behind a function that switches the profile hook (the tripwire) off while it runs."""

    @functools.wraps(reference)
    def substitute(*args: Any, **kwargs: Any) -> Any:
        hook = sys.getprofile()
        sys.setprofile(None)
        try:
            return reference(*args, **kwargs)
        finally:
            sys.setprofile(hook)

    substitute.__name__ = name
    substitute.__qualname__ = name
    substitute.__course_lib_reference__ = True  # type: ignore[attr-defined]
    return substitute


def substitutes(assignment: Assignment, question: Question) -> dict[str, Callable[..., Any]]:
    """``{function name: reference}`` for every earlier answer ``question`` uses."""
    by_function = {q.function: q for q in assignment.questions}
    return {name: _paused_tripwire(name, by_function[name].reference) for name in question.uses}


@contextmanager
def graded_alone(
    assignment: Assignment, question: Question, namespace: Optional[MutableMapping[str, Any]]
) -> Iterator[list[str]]:
    """Bind ``question.uses`` to their references in ``namespace`` while the block runs.

    Yields the list of names actually replaced (those the namespace defined as callables).
    """
    replaced: list[str] = []
    saved: dict[str, Any] = {}
    if namespace is not None and question.uses:
        for name, substitute in substitutes(assignment, question).items():
            if callable(namespace.get(name)):
                saved[name] = namespace[name]
                namespace[name] = substitute
                replaced.append(name)
    try:
        yield replaced
    finally:
        for name, original in saved.items():
            namespace[name] = original  # type: ignore[index]


def assignment_modules() -> list[str]:
    """The dotted names of the assignment spec modules (the grader's fork server imports them once, before
    any notebook runs, and without the instructor's secret: :data:`.sandbox._PRELOAD`)."""
    from . import assignments

    return [
        f"{assignments.__name__}.{m.name}"
        for m in sorted(pkgutil.iter_modules(assignments.__path__), key=lambda m: m.name)
        if m.name.startswith("a") and m.name[1:3].isdigit()
    ]


def preload() -> None:
    """Bind every assignment's spec now: in the grading child, call it BEFORE the notebook runs, so that
    the references bind the library's own functions and not ones the notebook replaced (a notebook that
    patches ``course_lib.attention`` must not change the reference that stands in for its answer).

    The fork server has already imported the spec modules (:func:`assignment_modules`), so in the child
    this only fills :func:`.assignments.all_assignments`' cache from ``sys.modules``."""
    from .assignments import all_assignments

    all_assignments()


@contextmanager
def graded_alone_by_name(
    namespace: MutableMapping[str, Any], assignment: str, qid: str
) -> Iterator[list[str]]:
    """:func:`graded_alone` for the batch grader's child, which knows the assignment by name."""
    if not assignment:
        yield []
        return
    from .assignments import get_assignment

    a = get_assignment(assignment)
    with graded_alone(a, a.question(qid), namespace) as replaced:
        yield replaced


def replaced_note(assignment: Assignment, question: Question, names: Optional[list[str]] = None) -> str:
    """What the feedback says when earlier answers were replaced for grading ``question``."""
    names = list(question.uses if names is None else names)
    if not names:
        return ""
    by_function = {q.function: q for q in assignment.questions}
    which = ", ".join(f"`{n}` ({by_function[n].id.upper()})" for n in names)
    return (
        f"graded with the reference {which} in place of yours, so that a mistake there costs points "
        f"only in its own question"
    )
