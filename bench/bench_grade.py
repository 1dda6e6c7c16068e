"""Benchmark of `course-lib grade` (not a test): 50 copies of one solutions notebook, --jobs 2, graded
once with the namespace sandbox and once without, in one run.

Prints the fork server's start-up time (torch imported once per batch, not per submission) and, for
each isolation mode, the throughput in submissions per minute (median of ``--rounds`` batches, the
order of the modes flipped each round) and the median time of a submission, then their ratio. Usage:
``python bench/bench_grade.py [--copies 50] [--jobs 2] [--assignment 01_self_attention]``.
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


def _batch(subs: Path, out: Path, assignment, jobs: int, isolation: str) -> dict:
    from course_lib.grading.grader import GradeOptions, grade

    options = GradeOptions(
        assignment=assignment,
        out=out,
        jobs=jobs,
        timeout=60,
        seed="bench-secret",
        progress=False,
        isolation=isolation,
    )
    start = time.perf_counter()
    result = grade([subs], options)
    seconds = time.perf_counter() - start
    records = [r for r in result["records"] if r]
    per = sorted(r["seconds"] for r in records)
    return {
        "used": result["isolation"],
        "n": len(records),
        "full": sum(r["total"] == assignment.points for r in records),
        "seconds": seconds,
        "per_min": len(records) / seconds * 60,
        "median": per[len(per) // 2],
        "max": per[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--assignment", default="01_self_attention")
    parser.add_argument("--rounds", type=int, default=3, help="batches per mode (the median is shown)")
    args = parser.parse_args(argv)

    from course_lib.grading.assignments import get_assignment
    from course_lib.grading.sandbox import warm_up

    torch.set_num_threads(1)
    assignment = get_assignment(args.assignment)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        for i in range(args.copies):
            shutil.copy(ROOT / "solutions" / f"{assignment.name}.ipynb", subs / f"student_{i:03d}.ipynb")
        warm = warm_up()
        runs: dict[str, list[dict]] = {"namespaces": [], "none": []}
        for round_ in range(args.rounds):  # flip which mode goes first each round
            order = ("namespaces", "none") if round_ % 2 == 0 else ("none", "namespaces")
            for mode in order:
                out = Path(tmp) / f"out-{mode}-{round_}"
                runs[mode].append(_batch(subs, out, assignment, args.jobs, mode))
        for mode, batches in runs.items():
            results[mode] = sorted(batches, key=lambda r: r["per_min"])[len(batches) // 2]
    print(
        f"assignment {assignment.name}: {args.copies} submissions, --jobs {args.jobs}, {args.rounds} rounds"
    )
    print(f"fork server start (imports torch once per batch): {warm:.2f} s")
    for mode, r in results.items():
        print(
            f"isolation {mode:>10} (used: {r['used']}): {r['full']}/{r['n']} full marks, "
            f"per submission median {r['median']:.2f} s, max {r['max']:.2f} s; "
            f"total {r['seconds']:.1f} s -> {r['per_min']:.1f} submissions per minute"
        )
    ratio = results["none"]["per_min"] / results["namespaces"]["per_min"]
    print(f"throughput without / with the sandbox: {ratio:.2f}x")
    ok = all(r["full"] == r["n"] == args.copies for batches in runs.values() for r in batches)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
