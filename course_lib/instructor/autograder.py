"""``course-lib autograder``: build the ``autograder.zip`` that Gradescope runs, one container per submission.

The zip holds::

    setup.sh          run once when Gradescope builds the image (network allowed): a virtual
                      environment with torch (CPU wheels) and course_lib's dependencies, pinned
    run_autograder    run per submission: grades /autograder/submission/*.ipynb and writes
                      /autograder/results/results.json ($AUTOGRADER_ROOT replaces /autograder)
    course_lib/       this version of the package, imported from /autograder/source
    requirements.txt  course_lib's dependencies; constraints.txt pins them
    autograder.json   the assignment, its limits and the visibility of the hidden tests
    seed              the instructor's secret (only with --seed-file): keep the zip private

Grading needs no network: the reference answers and inputs are computed in the container.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import zipfile
from pathlib import Path
from typing import Optional

from .grade import add_hidden_visibility

__all__ = ["add_parser", "run", "build_bundle", "SETUP_SH", "RUN_AUTOGRADER"]

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (network allowed).
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
cd "$ROOT/source"
if ! command -v python3 >/dev/null || ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    apt-get update
    apt-get install -y python3 python3-venv python3-pip
fi
python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/pip" install --upgrade pip
# CPU wheels of torch: the container has no GPU, and they are a tenth of the size.
"$ROOT/venv/bin/pip" install --index-url https://download.pytorch.org/whl/cpu "torch==__TORCH__"
"$ROOT/venv/bin/pip" install -c constraints.txt -r requirements.txt
"$ROOT/venv/bin/python" -c "import course_lib.grading.gradescope" && echo "course_lib __VERSION__ ready"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this once per submission, in a fresh container built by setup.sh.
set -u
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PY="${COURSE_LIB_PYTHON:-$ROOT/venv/bin/python}"
export PYTHONPATH="$ROOT/source${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=1 MPLBACKEND=Agg
exec "$PY" -m course_lib.grading.gradescope --root "$ROOT"
"""


def _requirements() -> list[str]:
    try:
        reqs = importlib.metadata.requires("course-lib") or []
    except importlib.metadata.PackageNotFoundError:
        reqs = [
            "torch>=2.2",
            "numpy",
            "matplotlib",
            "ipywidgets>=8",
            "tqdm",
            "scikit-learn",
            "nbformat",
            "nbclient",
            "ipykernel",
        ]
    return [r for r in reqs if "extra ==" not in r]


def _version() -> str:
    try:
        return importlib.metadata.version("course-lib")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _constraints(package: Path) -> str:
    pinned = package.parent / "requirements" / "constraints.txt"
    if pinned.exists():
        return pinned.read_text()
    import torch

    return f"torch=={torch.__version__.split('+')[0]}\n"


def _entry(zf: zipfile.ZipFile, name: str, data: str | bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def build_bundle(
    assignment: str,
    out: Path,
    seed_file: Optional[Path] = None,
    timeout: float = 60.0,
    memory_mb: int = 2048,
    hidden_visibility: str = "after_published",
) -> Path:
    """Write Gradescope's ``autograder.zip`` for ``assignment`` to ``out`` (same inputs, same bytes)."""
    import course_lib
    from course_lib.grading.assignments import get_assignment
    from course_lib.grading.grader import resolve_seed

    a = get_assignment(assignment)
    package = Path(course_lib.__file__).resolve().parent
    constraints = _constraints(package)
    torch_pin = next(
        (line.split("==", 1)[1].strip() for line in constraints.splitlines() if line.startswith("torch==")),
        None,
    )
    if torch_pin is None:
        import torch

        torch_pin = torch.__version__.split("+")[0]
    config = {
        "assignment": a.name,
        "course_lib_version": _version(),
        "timeout": timeout,
        "memory_mb": memory_mb,
        "isolation": "auto",
        "hidden_visibility": hidden_visibility,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        setup = SETUP_SH.replace("__TORCH__", torch_pin).replace("__VERSION__", config["course_lib_version"])
        _entry(zf, "setup.sh", setup, executable=True)
        _entry(zf, "run_autograder", RUN_AUTOGRADER, executable=True)
        _entry(zf, "autograder.json", json.dumps(config, indent=2) + "\n")
        _entry(zf, "requirements.txt", "\n".join(_requirements()) + "\n")
        _entry(zf, "constraints.txt", constraints)
        if seed_file is not None:
            secret, _ = resolve_seed(seed_file=seed_file)
            _entry(zf, "seed", secret + "\n")
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                _entry(zf, str(Path("course_lib") / path.relative_to(package)), path.read_bytes())
    tmp.replace(out)
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "autograder", help="build Gradescope's autograder.zip for an assignment (setup.sh, run_autograder)"
    )
    p.add_argument("--assignment", required=True, help="e.g. 01_self_attention (or 1)")
    p.add_argument("--out", default="autograder.zip", help="the zip to write (default autograder.zip)")
    p.add_argument(
        "--seed-file",
        default=None,
        help="file whose first line is the secret of the hidden tests; it is stored in the zip (keep the zip "
        "private; Gradescope does not show it to students). Without it, hidden tests use the public seed",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per notebook and per question (60)")
    p.add_argument(
        "--memory-mb", type=int, default=2048, help="memory limit of the notebook's process (2048)"
    )
    add_hidden_visibility(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        path = build_bundle(
            args.assignment,
            Path(args.out),
            Path(args.seed_file) if args.seed_file else None,
            timeout=args.timeout,
            memory_mb=args.memory_mb,
            hidden_visibility=args.hidden_visibility,
        )
    except (KeyError, ValueError) as exc:
        print(f"course-lib autograder: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    if not args.seed_file:
        print("warning: no --seed-file: the hidden tests use the public seed", file=sys.stderr)
    print(f"wrote {path}: upload it as the assignment's autograder on Gradescope (Configure Autograder)")
    return 0
