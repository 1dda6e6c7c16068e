"""`make gpu-check`: run the course on a CUDA GPU and print what ran and how long it took.

1. every chapter notebook (book/*.ipynb) executed with ``COURSE_DEVICE=cuda`` (copies, the stored outputs
   are not touched);
2. ``bench/bench_models.py --device cuda``;
3. the graders' ``check()`` on CUDA: every solutions notebook executed with ``check(..., device="cuda")``;
4. the checkpoint training (``python -m course_lib.checkpoints --device cuda --force``) into a temporary
   folder, with each model's test accuracy next to the committed manifest's.

Without a CUDA device it says so and exits with status 2.
Usage: ``python scripts/gpu_check.py [--skip-bench]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

# Injected before a solutions notebook's own cells: check() then runs the public tests on the GPU.
CUDA_CHECK_CELL = """\
import functools, course_lib.grading as _g, course_lib.grading.checker as _c
_c.check = _g.check = functools.partial(_c.check, device="cuda")
"""


def run(label: str, cmd: list[str], env: dict[str, str], results: list) -> bool:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    ok = proc.returncode == 0
    results.append((label, ok, seconds))
    print(f"{'ok  ' if ok else 'FAIL'} {seconds:8.1f} s  {label}", flush=True)
    if not ok:
        print((proc.stdout + proc.stderr)[-3000:], flush=True)
    return ok


def execute_copy(nb_path: Path, workdir: Path, env: dict, results: list, inject: str = "") -> None:
    nb = nbformat.read(nb_path, as_version=4)
    if inject:
        nb.cells.insert(1, nbformat.v4.new_code_cell(inject))
    copy = workdir / nb_path.name
    nbformat.write(nb, copy)
    cmd = [PY, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
           "--ExecutePreprocessor.timeout=1200", str(copy)]  # fmt: skip
    run(f"{nb_path.relative_to(ROOT)} on cuda", cmd, env, results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-bench", action="store_true")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing was run.")
        return 2
    print(f"gpu-check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    env = dict(os.environ, COURSE_DEVICE="cuda", PYTHONHASHSEED="0", PYTHONPATH=str(ROOT),
               MPLBACKEND="module://matplotlib_inline.backend_inline")  # fmt: skip
    results: list = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "book").mkdir()
        (tmp / "solutions").mkdir()
        for nb in sorted((ROOT / "book").glob("*.ipynb")):
            execute_copy(nb, tmp / "book", env, results)
        if not args.skip_bench:
            run(
                "bench/bench_models.py --device cuda",
                [PY, "bench/bench_models.py", "--device", "cuda"],
                env,
                results,
            )
        for nb in sorted((ROOT / "solutions").glob("*.ipynb")):
            execute_copy(nb, tmp / "solutions", env, results, inject=CUDA_CHECK_CELL)
        out = tmp / "trained"
        cmd = [PY, "-m", "course_lib.checkpoints", "--device", "cuda", "--force", "--out", str(out)]
        if run("python -m course_lib.checkpoints --device cuda", cmd, env, results):
            fresh = json.loads((out / "manifest.json").read_text())["checkpoints"]
            committed = json.loads((ROOT / "course_lib" / "trained" / "manifest.json").read_text())[
                "checkpoints"
            ]
            for name, e in fresh.items():
                was = committed.get(name, {}).get("test_acc", float("nan"))
                print(f"     {name:12s} test acc {e['test_acc']:.4f} (committed, CPU: {was:.4f}), "
                      f"{e['train_time_s']:.1f} s on cuda")  # fmt: skip
    failed = [label for label, ok, _ in results if not ok]
    total = sum(s for _, _, s in results)
    print(f"gpu-check: {len(results) - len(failed)} of {len(results)} passed in {total:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
