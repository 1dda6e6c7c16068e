"""Chapter 7's experiment: test accuracy against training-set size for a CNN, a ViT and a Swin, 3 seeds.

``python -m course_lib.data_hunger`` runs the grid of :data:`GRID` on scikit-learn's 8x8 digits and
writes ``course_lib/trained/data_hunger_digits.json`` (package data, so an installed course_lib has it);
chapter 7 plots that file. The grid has three arms, each a recipe (``GRID["arms"]``):

* ``plain``: no augmentation, 2,000 steps;
* ``shift``: every training image shifted by up to one pixel, 6,000 steps (a model needs longer to fit
  shifted images than plain ones);
* ``long``: the control, no augmentation with the shift arm's 6,000 steps (the ViT only, at the smallest
  and the largest size): it tells how much of the shift arm's gain comes from the steps alone.

Within an arm every run trains for the same number of optimiser steps (batches of ``GRID["batch_size"]``,
whatever the training-set size), long enough that its training accuracy saturates (each run records it;
``tests/test_data_hunger.py`` checks it on the stored file). The script is resumable: runs already in the
JSON are skipped, and the JSON is rewritten after every run: an interrupted grid keeps what it measured.
``--shard K/N`` runs every N-th run only, so N workers can share the grid (then ``--merge`` their files).

Order of the runs: the plain arm with seed 0 (all models and sizes), then seed 1, then seed 2, then the
other arms in the same order - so a partial grid is still a usable one.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

import course_lib
from course_lib.cnn import SmallCNN
from course_lib.data import Splits, load_digits_tensors, subset
from course_lib.swin import create_swin
from course_lib.training import RandomShift, evaluate, fit
from course_lib.vit import create_vit

__all__ = ["GRID", "RESULTS", "make_model", "run_point", "run_key", "load_results", "summarise", "main"]

RESULTS = Path(__file__).resolve().parent / "trained" / "data_hunger_digits.json"

_MODELS = ["CNN", "ViT", "Swin"]
_SIZES = [10, 30, 100, None]  # images per class; None = the whole training set (1,347 images)
GRID: dict[str, Any] = {
    "dataset": "digits (load_digits_tensors(): 1,347 train / 450 test, seed 0)",
    "models": {
        "CNN": "SmallCNN(in_chans=1)",
        "ViT": "create_vit('vit_digits')",
        "Swin": "create_swin('swin_digits')",
    },
    "seeds": [0, 1, 2],
    # arm -> recipe: random-shift augmentation in pixels, optimiser steps, and which models and sizes
    "arms": {
        "plain": {"shift": 0, "steps": 2000, "models": _MODELS, "sizes_per_class": _SIZES},
        "shift": {"shift": 1, "steps": 6000, "models": _MODELS, "sizes_per_class": _SIZES},
        "long": {"shift": 0, "steps": 6000, "models": ["ViT"], "sizes_per_class": [10, None]},
    },
    "batch_size": 32,
    "lr": 4e-3,
    "warmup_fraction": 0.1,
    "weight_decay": 0.05,
}


def make_model(name: str) -> nn.Module:
    """A fresh model of the grid: ``"CNN"``, ``"ViT"`` or ``"Swin"`` (seed torch before calling)."""
    if name == "CNN":
        return SmallCNN(in_chans=1, num_classes=10)
    if name == "ViT":
        return create_vit("vit_digits")
    if name == "Swin":
        return create_swin("swin_digits")
    raise ValueError(f"unknown model {name!r}; expected 'CNN', 'ViT' or 'Swin'")


def run_key(arm: str, model: str, n_per_class: Optional[int], seed: int) -> str:
    """The JSON key of one run, e.g. ``'plain/ViT/10/0'`` (``'all'`` for the whole training set)."""
    return f"{arm}/{model}/{'all' if n_per_class is None else n_per_class}/{seed}"


def run_point(
    model_name: str,
    n_per_class: Optional[int],
    seed: int,
    arm: str = "plain",
    data: Optional[Splits] = None,
    grid: dict[str, Any] = GRID,
    device: Union[str, torch.device] = "cpu",
    steps: Optional[int] = None,
) -> dict[str, Any]:
    """Train one point of the grid and return its record (``steps``: instead of the arm's).

    The training subset is :func:`course_lib.data.subset` with ``n_per_class`` images per class drawn with
    ``seed`` (so the seed varies the images, the initial weights and the batch order). Returns
    ``{"n_train", "train_acc", "test_acc", "train_loss", "time_s", "steps"}``; ``train_acc`` is measured in
    eval mode on the un-augmented training subset after training.
    """
    data = data if data is not None else load_digits_tensors()
    train = subset(*data.train, n_per_class, seed=seed)
    torch.manual_seed(seed)
    model = make_model(model_name)
    recipe = grid["arms"][arm]
    steps = steps if steps is not None else recipe["steps"]
    shift = recipe["shift"]
    per_epoch = -(-len(train[1]) // grid["batch_size"])
    start = time.perf_counter()
    fit(
        model, train, None, lr=grid["lr"], batch_size=grid["batch_size"], device=device, seed=seed,
        weight_decay=grid["weight_decay"], warmup_epochs=grid["warmup_fraction"] * steps / per_epoch,
        steps=steps, augment=RandomShift(shift, seed) if shift else None,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    train_loss, train_acc = evaluate(model, train)
    _, test_acc = evaluate(model, data.test)
    return {
        "n_train": len(train[1]),
        "train_acc": train_acc,
        "train_loss": train_loss,
        "test_acc": test_acc,
        "time_s": round(seconds, 1),
        "steps": steps,
    }


def load_results(path: Union[str, Path] = RESULTS) -> dict[str, Any]:
    """The grid's JSON: ``{"provenance": ..., "grid": ..., "runs": {key: record}}``."""
    return json.loads(Path(path).read_text())


def summarise(results: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, float]]:
    """Mean, standard deviation (over seeds, ``ddof=1``; 0 for one seed), min and max of the test accuracy,
    and the lowest training accuracy, per ``(arm, model, n_train)``."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for key, rec in results["runs"].items():
        arm, model, _, _ = key.split("/")
        groups.setdefault((arm, model, rec["n_train"]), []).append(rec)
    out = {}
    for k, recs in sorted(groups.items()):
        acc = torch.tensor([r["test_acc"] for r in recs], dtype=torch.float64)
        out[k] = {
            "seeds": len(recs),
            "mean": acc.mean().item(),
            "std": acc.std().item() if len(recs) > 1 else 0.0,
            "min": acc.min().item(),
            "max": acc.max().item(),
            "min_train_acc": min(r["train_acc"] for r in recs),
        }
    return out


def _git_commit() -> Optional[str]:
    try:
        root = Path(__file__).resolve().parent.parent
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.data_hunger", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--seeds", type=int, nargs="*", help="only these seeds (several workers in parallel)")
    parser.add_argument("--arms", nargs="*", help="only these arms")
    parser.add_argument("--models", nargs="*", help="only these models")
    parser.add_argument("--merge", nargs="*", default=[], help="other workers' JSON to merge")
    parser.add_argument("--shard", default="0/1", help="K/N: run only every N-th run, starting at the K-th")
    args = parser.parse_args(argv)
    shard, _, shards = args.shard.partition("/")
    if not (shard.isdigit() and shards.isdigit() and int(shard) < int(shards)):
        parser.error(f"--shard takes K/N with 0 <= K < N (0/2 and 1/2 for two workers), not {args.shard!r}")
    shard, shards = int(shard), int(shards)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = load_results(out) if out.exists() else {"runs": {}}
    if results.get("grid", GRID) != json.loads(json.dumps(GRID)):
        raise SystemExit(f"{out} was made with another grid configuration; move it away to start afresh")
    results["grid"] = GRID
    results["provenance"] = {
        "script": "python -m course_lib.data_hunger (course_lib/data_hunger.py)",
        "course_lib": course_lib.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit_at_last_run": _git_commit(),
        "device": args.device,
        "threads": args.threads,
    }
    for other in args.merge:
        extra = load_results(other)
        if extra["grid"] != results["grid"]:
            raise SystemExit(f"{other} was made with another grid configuration")
        results["runs"].update(extra["runs"])
    if args.merge:
        out.write_text(json.dumps(results, indent=1) + "\n")
    data = load_digits_tensors()
    todo = [(arm, model, n, seed) for arm, recipe in GRID["arms"].items() for seed in GRID["seeds"]
            for model in recipe["models"] for n in recipe["sizes_per_class"]]
    done = 0
    for index, (arm, model, n, seed) in enumerate(todo):
        key = run_key(arm, model, n, seed)
        if index % shards != shard:
            continue
        wanted = (args.seeds is None or seed in args.seeds) and (args.arms is None or arm in args.arms)
        if key in results["runs"] or not wanted or (args.models is not None and model not in args.models):
            continue
        if args.max_runs is not None and done >= args.max_runs:
            break
        rec = run_point(model, n, seed, arm, data=data, device=args.device)
        results["runs"][key] = rec
        out.write_text(json.dumps(results, indent=1) + "\n")
        done += 1
        print(
            f"{key}: train {rec['train_acc']:.3f}, test {rec['test_acc']:.3f}, {rec['time_s']:.1f} s",
            flush=True,
        )
    print(f"{len(results['runs'])} of {len(todo)} runs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
