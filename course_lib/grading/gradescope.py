"""Grading one submission inside Gradescope's autograder container (``run_autograder`` calls this).

Gradescope runs one container per submission: the submitted files are in ``ROOT/submission/``, the
result must go to ``ROOT/results/results.json`` (``ROOT`` is ``/autograder``, or
``$AUTOGRADER_ROOT``, which lets a test replay the layout in a temporary folder). The bundle built by
``course-lib autograder`` puts ``autograder.json`` (assignment and limits) and, optionally, ``seed``
(the instructor's secret, read then deleted before the notebook runs) in ``ROOT/source/``. Whatever
happens, a ``results.json`` is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["run", "main", "ROOT_ENV"]

#: Environment variable naming the autograder's root folder (``/autograder`` on Gradescope).
ROOT_ENV = "AUTOGRADER_ROOT"


def _write_results(root: Path, results: dict) -> None:
    from .reports import atomic_write

    atomic_write(root / "results" / "results.json", json.dumps(results, indent=2) + "\n")


def _zero(config: dict, message: str) -> dict:
    return {
        "score": 0.0,
        "output": message,
        "stdout_visibility": "hidden",
        "tests": [],
        "extra_data": {"status": "not_graded", "assignment": config.get("assignment")},
    }


def _take_secret(path: Path) -> Optional[str]:
    """The secret from the bundle's ``seed`` file, which is then deleted: the container is this
    submission's alone, and without namespaces (Docker forbids them) its code could read the file."""
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8").strip()
    try:
        path.unlink()
    except OSError:
        pass
    return text.splitlines()[0].strip() if text else None


def _pick(files: list[Path], assignment: str) -> tuple[Optional[Path], str]:
    notebooks = sorted(p for p in files if p.suffix == ".ipynb" and p.is_file())
    if not notebooks:
        names = ", ".join(sorted(p.name for p in files)) or "nothing"
        return None, (
            f"No Jupyter notebook (.ipynb) in your submission (found: {names}). Upload the notebook file "
            f"of the assignment, {assignment}.ipynb (File > Download > .ipynb)."
        )
    exact = [p for p in notebooks if p.stem == assignment]
    chosen = exact[0] if exact else notebooks[0]
    note = ""
    if len(notebooks) > 1:
        note = f"Your submission holds {len(notebooks)} notebooks; {chosen.name} was graded."
    return chosen, note


def run(root: Path) -> int:
    """Grade ``root/submission/*.ipynb`` and write ``root/results/results.json``; returns 0."""
    from .assignments import get_assignment
    from .grader import GradeOptions, grade

    config: dict = {}
    try:
        config = json.loads((root / "source" / "autograder.json").read_text())
        assignment = get_assignment(config["assignment"])
        files = [p for p in (root / "submission").rglob("*") if p.is_file()]
        chosen, note = _pick(files, assignment.name)
        if chosen is None:
            _write_results(root, _zero(config, note))
            return 0
        secret = _take_secret(root / "source" / "seed")
        with tempfile.TemporaryDirectory(prefix="course-gradescope-") as tmp:
            options = GradeOptions(
                assignment=assignment,
                out=Path(tmp) / "out",
                jobs=1,
                timeout=float(config.get("timeout", 60)),
                memory_mb=int(config.get("memory_mb", 2048)),
                seed=secret,
                isolation=str(config.get("isolation", "auto")),
                progress=False,
                force=True,
                hidden_visibility=str(config.get("hidden_visibility", "after_published")),
            )
            result = grade([chosen], options)
            name = result["records"][0]["submission"]
            results = json.loads((Path(tmp) / "out" / "gradescope" / name / "results.json").read_text())
        if note:
            results["output"] = note + "\n" + results.get("output", "")
        _write_results(root, results)
    except Exception as exc:  # a result must exist whatever happened
        print(traceback.format_exc(), file=sys.stderr)
        _write_results(
            root,
            _zero(
                config, f"The autograder failed ({type(exc).__name__}: {exc}); please tell your instructor."
            ),
        )
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get(ROOT_ENV, "/autograder"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    return run(Path(args.root))


if __name__ == "__main__":
    sys.exit(main())
