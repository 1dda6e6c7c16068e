"""Benchmark of `course-lib grade` (not a test): 50 copies of one solutions notebook, --jobs 2.

Prints the fork server's start-up time (torch imported once) and the throughput in submissions per
minute. Usage: ``python bench/bench_grade.py [--copies 50] [--jobs 2] [--assignment 01_self_attention]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--assignment", default="01_self_attention")
    args = parser.parse_args(argv)

    from course_lib.grading.assignments import get_assignment
    from course_lib.grading.grader import GradeOptions, grade
    from course_lib.grading.sandbox import warm_up

    torch.set_num_threads(1)
    assignment = get_assignment(args.assignment)
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        for i in range(args.copies):
            shutil.copy(ROOT / "solutions" / f"{assignment.name}.ipynb", subs / f"student_{i:03d}.ipynb")
        start = time.perf_counter()
        warm = warm_up()
        options = GradeOptions(assignment=assignment, out=Path(tmp) / "out", jobs=args.jobs, timeout=60,
                               seed="bench", progress=True)
        result = grade([subs], options)
        seconds = time.perf_counter() - start
        records = [r for r in result["records"] if r]
        full = sum(r["total"] == assignment.points for r in records)
        per = sorted(r["seconds"] for r in records)
    print(f"assignment {assignment.name}: {len(records)} submissions, {full} with full marks, "
          f"--jobs {args.jobs}")
    print(f"fork server start (imports torch once): {warm:.2f} s")
    print(f"per submission: median {per[len(per) // 2]:.2f} s, max {per[-1]:.2f} s (wall time of its child)")
    print(f"total {seconds:.1f} s -> {len(records) / seconds * 60:.1f} submissions per minute")
    return 0 if full == len(records) == args.copies else 1


if __name__ == "__main__":
    sys.exit(main())
