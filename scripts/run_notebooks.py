"""Execute notebooks in place, storing their outputs, in the environment ``make nbval`` checks them in.

Why a script rather than a bare ``jupyter nbconvert --execute``: the Makefile exports ``MPLBACKEND=Agg``
(right for the unit tests), and a kernel started under it draws no inline figures, so the stored outputs
would miss every plot and strict nbval would then fail on a machine without that variable. This script
runs the kernel with matplotlib's inline backend, ``PYTHONHASHSEED=0`` and the CPU unless told otherwise,
exactly like the ``nbval`` target does.

Usage: ``python scripts/run_notebooks.py book/01_self_attention.ipynb [more.ipynb ...] [--timeout 600]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def kernel_env() -> dict[str, str]:
    """The environment notebooks are executed and validated in."""
    env = dict(os.environ)
    env["MPLBACKEND"] = INLINE_BACKEND
    env["PYTHONHASHSEED"] = "0"
    env.setdefault("COURSE_DEVICE", "cpu")
    return env


def execute(path: Path, timeout: int = 600) -> float:
    """Run ``path`` top to bottom with nbconvert and store its outputs; returns the seconds it took."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
         f"--ExecutePreprocessor.timeout={timeout}", str(path)],
        check=True,
        cwd=ROOT,
        env=kernel_env(),
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        print(f"{path}: executed in {execute(path, args.timeout):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
