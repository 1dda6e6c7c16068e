"""Exercises, instant feedback and an autograder instructors can trust.

Students
--------
In an exercise notebook::

    from course_lib.grading import check
    check("q1", stable_softmax)      # runs q1's PUBLIC tests on your function, prints what passed

``check`` prints one line per part with its points and, for a failure, what went wrong (expected vs
got shape, NaN, "looks like you forgot to scale the scores by 1/sqrt(d_k)"), never the answer.

Instructors
-----------
::

    course-lib release                    # solutions/*.ipynb -> exercises/*.ipynb (make exercises)
    course-lib release --check            # exit 1 if exercises/ is stale
    course-lib grade --assignment 01_self_attention submissions/*.ipynb --out grades/01 \\
        --jobs 4 --timeout 60 --memory-mb 3072 --seed-file ~/.course-secret
    course-lib autograder --assignment 01_self_attention --out autograder.zip --seed-file ~/.course-secret

``grade`` executes every submission in its own process (a fork of a warm server that has imported
torch once) in a scratch copy, under a wall-clock timeout and a memory limit (``RLIMIT_DATA``; the
~0.8 GB that torch itself maps count too), inside a sandbox of Linux namespaces where the kernel
allows one (:mod:`.isolation`: no network, read-only files, private ``/tmp``, the output folder and
the other submissions hidden, every process it starts killed with it; ``--isolation``). The
student's process only *returns outputs*: the grader sends it the inputs, receives tensors
(``torch.load(weights_only=True)``, never pickle), and compares them with the reference in its own
process. Hidden inputs are drawn from a generator seeded by the instructor's secret
(``--seed-file``, ``$COURSE_GRADING_SEED`` or ``--seed``), so they cannot be computed in advance
from this public package; the secret never reaches a submission's process. Outputs, written
atomically by the grader only: ``gradebook.csv``, ``feedback/<submission>.md``,
``gradescope/<submission>/results.json``, and ``records/`` (signed per-submission results: a re-run
skips what was already graded with the same arguments).

Status codes (``gradebook.csv``'s ``status`` column, ``;``-joined, ``ok`` when none applies):
``invalid_notebook`` (not JSON / not a notebook), ``syntax_error``, ``exception`` (a cell or a graded
call raised), ``not_implemented``, ``missing_function``, ``sys_exit``, ``timeout``,
``memory_limit``, ``crashed`` (the process died: ``os._exit``, a segfault, a kill),
``bad_output`` (not tensors/numbers, wrong device, too large), ``reference_used``.
A cell that hangs or kills the process is skipped on a fresh re-run of the notebook, and a question
whose function hangs or crashes scores 0 while the other questions are still graded.

Writing an assignment
---------------------
An assignment is a spec module plus a solutions notebook:

1. ``course_lib/grading/assignments/aNN_<topic>.py`` defines ``ASSIGNMENT = Assignment(name=
   "NN_<topic>", title=..., chapter="NN_<chapter page>", questions=(Q1, Q2, ...))``. Each
   :class:`Question` names the student's ``function``, a ``reference`` (run in the grader only), its
   :class:`Part` s with ``points`` and a ``cases(rng) -> list[Case]`` generator (draw every random
   number from ``rng``; ``hidden=True`` parts get an ``rng`` seeded by the instructor's secret), the
   ``forbidden`` dotted names of callables that already do the job (a graded call reaching one
   scores 0 for the question), ``diagnostics`` (hints; :func:`matches_variant` recognises a typical
   mistake by comparing with a mutated reference) and tolerances (``atol=rtol=1e-5`` by default).
   Comparers: :func:`close` (default: structure, shape, dtype, finite, values), :func:`same_shape`,
   or any ``compare(got, expected, case, question) -> None | message``.
   A case whose reference raises expects the student to raise the same exception type.
   Also (issue 16): ``rules`` tie every requirement the statement states (an error to raise, a dtype,
   an edge case) to the part that tests it, with a ``violation`` that must lose that part (a test
   scans the statement for rules nobody registered); ``hints`` are staged, general to specific, and
   never the answer (:mod:`~course_lib.grading.hints`); ``uses`` names earlier answers the question
   calls, replaced by their reference while it is graded (:mod:`~course_lib.grading.alone`);
   :mod:`~course_lib.grading.masks` compares masks and index maps with feedback that says which way
   they are wrong; :mod:`~course_lib.grading.understanding` makes questions answered by a number or
   an option's number.
2. ``solutions/NN_<topic>.ipynb``: the standard setup cell first, a link back to the chapter, then
   per question a markdown statement giving its points, a code cell with the function whose body
   sits between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` (an optional ``# HINT: ...`` line in the
   region becomes the stub's message), and a ``check("qN", fn)`` cell. Markdown answers go between
   ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``; a cell tagged ``solution-only`` is
   dropped. The ``# HINT:`` says what to write and where to look in the book, never the formula. A
   demo cell that calls a student's function starts with ``with finish_first("Q3"):``
   (:mod:`~course_lib.grading.demo`), so "Run All" never stops on a stub. The "Parts:" list of each
   statement and each chapter's list of questions are generated from the spec
   (``python -m course_lib.grading.outline``). Store it executed (``python scripts/run_notebooks.py``).
3. ``course-lib release`` writes ``exercises/NN_<topic>.ipynb`` (stubs raise ``NotImplementedError``,
   executed so that strict nbval passes; cells that raise are tagged ``raises-exception``, and the
   tests require that no exercise cell does).

The tests then require the solutions notebook to grade full marks and the exercise to grade 0.
"""

from __future__ import annotations

from .checker import check, run_public_tests
from .compare import close, matches_variant, same_shape
from .spec import Assignment, Case, Part, Question, Raised, case_generator

__all__ = [
    "check",
    "run_public_tests",
    "Assignment",
    "Question",
    "Part",
    "Case",
    "Raised",
    "case_generator",
    "close",
    "same_shape",
    "matches_variant",
    "get_assignment",
    "all_assignments",
]


def get_assignment(name: str) -> Assignment:
    """The assignment called ``name`` (``"01_self_attention"``, ``"1"``)."""
    from .assignments import get_assignment as _get

    return _get(name)


def all_assignments() -> tuple[Assignment, ...]:
    """Every assignment the package knows."""
    from .assignments import all_assignments as _all

    return _all()
