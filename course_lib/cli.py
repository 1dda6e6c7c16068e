"""The ``course-lib`` command: ``release``, ``grade``, ``autograder`` and ``slides``."""

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

    from .instructor import autograder, grade

    grade.add_parser(sub)
    autograder.add_parser(sub)

    sub.add_parser("slides", help="build the reveal.js decks (see course-lib slides --help)")
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
