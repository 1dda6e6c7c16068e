"""The ``course-lib`` command: one ``argparse`` tree, one module per subcommand.

    course-lib release [--check] ...        generate exercises/ from solutions/
    course-lib grade --assignment 1 ...     grade submitted notebooks
    course-lib autograder ...               build the Gradescope autograder bundle
    course-lib slides [CHAPTER ...] ...     build the lecture decks

Also ``python -m course_lib.instructor.cli ...``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

# Modules of course_lib.instructor, in the order of ``course-lib --help``. Each has add_parser and run.
SUBCOMMANDS = ("release", "grade", "autograder", "slides")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course-lib", description="Transformers for Vision: course tools.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__package__}.{name}").add_parser(subparsers)
    return parser


# What the [instructor] extra installs (import names): a subcommand that misses one says so.
_EXTRA = {"nbconvert", "nbclient", "nbformat", "yaml", "playwright"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args))
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in _EXTRA:
            raise
        print(
            f"course-lib {args.command}: needs the Python package {err.name!r}, which the instructor "
            "extra installs: pip install 'course-lib[instructor]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
