# ruff: noqa: E501 - the cell is quoted verbatim, long lines included
"""The standard first code cell of every chapter (``book/*.ipynb``) and exercise notebook (``solutions/``).

The cell installs course_lib with its ``book`` extra (timm, for chapters 5 and 6) from the repository named
in ``_config.yml``, but only on Colab; everywhere it seeds everything, picks the GPU when there is one and
prints one line: course-lib's version, torch's version and the device. ``tests/test_book_config.py`` checks
that every notebook starts with exactly :data:`FIRST_CELL` and that it installs from ``_config.yml``'s
repository; ``scripts/student_env.py`` installs exactly :func:`install_requirement` in a fresh environment.

Usage: ``python scripts/first_cell.py`` prints the cell; ``python scripts/first_cell.py --write NB.ipynb ...``
puts it into each notebook's first code cell (only that cell: source and the output the ``nbval`` target
expects, computed on the CPU in this environment), so nothing else needs re-executing.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

FIRST_CELL = """\
# Setup: installs course_lib on Colab (see the README to install it elsewhere), seeds everything, picks the GPU if there is one.
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "course-lib[book] @ git+https://github.com/tfv-course/transformers-for-vision@main"], check=True)
from course_lib.runtime import setup
device = setup(seed=0)"""


def install_requirement(cell: str = FIRST_CELL) -> str:
    """The requirement the cell hands to ``pip install`` on Colab, e.g. ``"course-lib[book] @ git+URL@main"``."""
    for node in ast.walk(ast.parse(cell)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("course-lib"):
            return node.value
    raise ValueError("the first cell installs no course-lib requirement")


def setup_line() -> str:
    """What the cell prints when the notebooks' outputs are stored (``make nbval``: the CPU, this torch)."""
    os.environ.setdefault("COURSE_DEVICE", "cpu")
    from course_lib.runtime import describe, pick_device

    return describe(pick_device())


def write(path: Path, line: str) -> bool:
    """Make ``path``'s first code cell :data:`FIRST_CELL` printing ``line``; True if the file changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    if cell is None:
        raise ValueError(f"{path}: no code cell")
    output = nbformat.v4.new_output("stream", name="stdout", text=line + "\n")
    if cell.source == FIRST_CELL and cell.outputs == [output]:
        return False
    cell.source = FIRST_CELL
    cell.outputs = [output]
    cell.execution_count = cell.execution_count or 1
    nbformat.write(nb, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", nargs="+", type=Path, metavar="NOTEBOOK",
                        help="put the cell into these notebooks' first code cell")
    args = parser.parse_args(argv)
    if not args.write:
        print(FIRST_CELL)
        return 0
    line = setup_line()
    for path in args.write:
        print(f"{path}: {'written' if write(path, line) else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
