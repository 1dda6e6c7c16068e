"""``course-lib grade``: grade a batch of submitted notebooks (see :mod:`course_lib.grading.grader`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


# Gradescope's visibility values for a test (its autograder docs), for the hidden tests' results.
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


def add_hidden_visibility(parser: argparse.ArgumentParser) -> None:
    """``--hidden-visibility``: shared by ``grade`` and ``autograder`` (both write Gradescope results)."""
    parser.add_argument(
        "--hidden-visibility",
        default="after_published",
        choices=VISIBILITIES,
        help="Gradescope visibility of the hidden tests (default after_published)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    g = subparsers.add_parser("grade", help="grade submitted notebooks")
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
        "--seed-file",
        default=None,
        help="file whose first line is the instructor's secret for the hidden tests (the safe way; "
        "default: $COURSE_GRADING_SEED)",
    )
    g.add_argument(
        "--seed",
        default=None,
        help="the secret itself; any user of the machine can see it in the process list: prefer --seed-file",
    )
    g.add_argument(
        "--isolation",
        default="auto",
        choices=["auto", "namespaces", "none"],
        help="sandbox of Linux namespaces per submission (no network, read-only files, private /tmp, "
        "processes die with it): auto = where the kernel allows it (default), namespaces = required, "
        "none = process limits only",
    )
    g.add_argument("--force", action="store_true", help="grade again submissions that were already graded")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    add_hidden_visibility(g)
    g.set_defaults(func=run)
    return g


def _hide_seed_argument(seed: str) -> None:
    """Take the secret out of ``sys.argv`` (what this process would show or pass on)."""
    sys.argv = [("[secret]" if a == seed else a.replace(seed, "[secret]")) for a in sys.argv]


def run(args: argparse.Namespace) -> int:
    import torch

    from course_lib.grading.assignments import get_assignment
    from course_lib.grading.grader import GradeOptions, grade

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
    if args.seed is not None and args.seed_file is not None:
        print("course-lib grade: give --seed-file or --seed, not both", file=sys.stderr)
        return 2
    if args.seed:
        _hide_seed_argument(args.seed)
        print(
            "warning: --seed puts the secret on the command line, where any process on this machine can "
            "read it (ps, /proc/<pid>/cmdline); use --seed-file FILE or $COURSE_GRADING_SEED",
            file=sys.stderr,
        )
    torch.set_num_threads(1)
    options = GradeOptions(
        assignment=assignment,
        out=Path(args.out),
        jobs=args.jobs,
        timeout=args.timeout,
        memory_mb=args.memory_mb,
        seed=args.seed,
        seed_file=Path(args.seed_file) if args.seed_file else None,
        isolation=args.isolation,
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
        f"in {result['seconds']:.1f} s; isolation: {result['isolation']}; "
        f"status: {summary or 'none'}; gradebook: {Path(args.out) / 'gradebook.csv'}"
    )
    return 0
