"""The ``course-lib`` command: ``release``, ``grade`` and ``slides``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main"]


def _release(args: argparse.Namespace) -> int:
    from .grading.release import release

    return release(
        Path(args.source), Path(args.dest), check=args.check, execute=not args.no_execute, force=args.force
    )


def _grade(args: argparse.Namespace) -> int:
    import torch

    from .grading.assignments import get_assignment
    from .grading.grader import GradeOptions, grade

    try:
        assignment = get_assignment(args.assignment)
    except KeyError as exc:
        print(f"course-lib grade: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.memory_mb < 1024:
        print(
            "course-lib grade: --memory-mb must be at least 1024 (torch alone maps about 800 MB)",
            file=sys.stderr,
        )
        return 2
    if args.timeout <= 0 or args.jobs < 1:
        print("course-lib grade: --timeout must be positive and --jobs at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    options = GradeOptions(
        assignment=assignment,
        out=Path(args.out),
        jobs=args.jobs,
        timeout=args.timeout,
        memory_mb=args.memory_mb,
        seed=args.seed,
        force=args.force,
        progress=not args.quiet,
        hidden_visibility=args.hidden_visibility,
    )
    try:
        result = grade(args.submissions, options)
    except ValueError as exc:
        print(f"course-lib grade: {exc}", file=sys.stderr)
        return 2
    records = [r for r in result["records"] if r]
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    print(
        f"graded {result['graded']}, skipped {result['skipped']} (already graded) "
        f"in {result['seconds']:.1f} s; "
        f"status: {summary or 'none'}; gradebook: {Path(args.out) / 'gradebook.csv'}"
    )
    return 0


def _slides(argv: Sequence[str]) -> int:
    from . import slides

    return int(slides.main(list(argv)) or 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "slides":
        return _slides(argv[1:])
    parser = argparse.ArgumentParser(prog="course-lib", description="Transformers for Vision: course tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate exercises/ from solutions/ (solution regions become stubs)")
    p.add_argument("--source", default="solutions", help="folder of solution notebooks (default: solutions)")
    p.add_argument("--dest", default="exercises", help="folder of exercise notebooks (default: exercises)")
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the exercises are out of date"
    )
    p.add_argument(
        "--no-execute", action="store_true", help="do not execute the exercises to store their outputs"
    )
    p.add_argument("--force", action="store_true", help="rewrite every exercise, even the up-to-date ones")
    p.set_defaults(func=_release)

    g = sub.add_parser("grade", help="grade submitted notebooks")
    g.add_argument("submissions", nargs="+", help="notebooks, or folders of notebooks")
    g.add_argument("--assignment", required=True, help="e.g. 01_self_attention (or 1)")
    g.add_argument("--out", required=True, help="output folder (gradebook.csv, feedback/, gradescope/)")
    g.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel (default 1)")
    g.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds for the notebook, and again for each question's tests (default 60)",
    )
    g.add_argument(
        "--memory-mb",
        type=int,
        default=2048,
        help="memory limit (RLIMIT_DATA) of a submission's process, torch's ~800 MB included (default 2048)",
    )
    g.add_argument(
        "--seed",
        default=None,
        help="instructor's secret for the hidden tests (default: $COURSE_GRADING_SEED)",
    )
    g.add_argument("--force", action="store_true", help="grade again submissions that were already graded")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument(
        "--hidden-visibility",
        default="after_published",
        choices=["hidden", "after_due_date", "after_published", "visible"],
        help="Gradescope visibility of the hidden tests (default after_published)",
    )
    g.set_defaults(func=_grade)

    sub.add_parser("slides", help="build the reveal.js decks (see course-lib slides --help)")
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
