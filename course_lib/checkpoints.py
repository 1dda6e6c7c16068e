"""Models trained by the course, reproducibly: the recipes, the training command and the loader.

``python -m course_lib.checkpoints`` (``make checkpoints``) trains every model of :data:`RECIPES` - a small
CNN, ViT and Swin on the generated shapes (:func:`course_lib.data.load_shapes`) and on scikit-learn's digits -
and writes ``course_lib/trained/<name>.pt`` (a plain ``state_dict``, loadable with
``torch.load(weights_only=True)``) and ``course_lib/trained/manifest.json``: for every checkpoint the
recipe, the model's configuration, the data set's parameters, the seed, the command, versions, training
time, and train and test accuracy. It is resumable: a checkpoint already in the manifest is skipped unless
``--force`` is given.

:func:`load_checkpoint` rebuilds a model from the manifest and loads its weights; the chapters use it, and
``tests/test_checkpoints.py`` checks that every stored checkpoint still scores its manifest's test accuracy.

The models are built only through the course's public factories (``create_vit``, ``create_swin`` with
overrides of a named configuration, and ``SmallCNN``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from course_lib.cnn import SmallCNN
from course_lib.data import Splits, load_digits_tensors, load_shapes
from course_lib.swin import create_swin
from course_lib.training import RandomShift, evaluate, fit
from course_lib.vit import create_vit

__all__ = [
    "Recipe",
    "RECIPES",
    "CHECKPOINT_DIR",
    "xavier_init",
    "build_model",
    "load_data",
    "train_recipe",
    "load_manifest",
    "load_checkpoint",
    "main",
]

# The committed checkpoints ship inside the package (so a pip install from git, e.g. on Colab, has them);
# the environment variable COURSE_CHECKPOINTS points elsewhere (e.g. at a freshly trained set).
CHECKPOINT_DIR = Path(os.environ.get("COURSE_CHECKPOINTS", Path(__file__).resolve().parent / "trained"))

# The generated data set the shapes models are trained on (load_shapes's arguments).
SHAPES_DATA = {"n_train": 8000, "n_test": 2000, "seed": 0, "size": 32}


@dataclass(frozen=True)
class Recipe:
    """How one checkpoint is trained.

    Attributes:
        dataset: ``"digits"`` or ``"shapes"``.
        arch: ``"cnn"``, ``"vit"`` or ``"swin"``.
        base: the named configuration the model starts from (``create_vit(base, **model)``...), or
            ``"SmallCNN"``.
        model: keyword overrides of that configuration (or ``SmallCNN``'s arguments).
        steps, batch_size, lr, weight_decay, warmup_steps, label_smoothing: the optimisation (AdamW, linear
            warm-up, cosine decay to zero; see :func:`course_lib.training.fit`).
        shift: random-shift augmentation of up to ``shift`` pixels (0: none).
        seed: seeds the initial weights, the batch order and the augmentation.
        init: ``"timm"`` (the models' own initialisation: truncated normal, std 0.02, for linear layers) or
            ``"xavier"`` (Xavier-uniform weights for every linear layer but the classifier, as the original
            ViT code in JAX and timm's ``"jax"`` mode; see :func:`xavier_init`).
        data: overrides of :data:`SHAPES_DATA` for this recipe (e.g. ``{"n_train": 20000}``); the test
            images are the same whatever ``n_train``.
    """

    dataset: str
    arch: str
    base: str
    model: dict[str, Any] = field(default_factory=dict)
    steps: int = 1000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    label_smoothing: float = 0.0
    shift: int = 0
    seed: int = 0
    init: str = "timm"
    data: dict[str, Any] = field(default_factory=dict)


_SHAPES_VIT = dict(embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0)  # 32x32, 4x4 patches: 8x8 tokens
_SHAPES_SWIN = dict(patch_size=4, embed_dim=32, depths=(2, 2, 2), num_heads=(2, 4, 8), window_size=4)

RECIPES: dict[str, Recipe] = {
    # The digits (8x8, 1,347 training images). The ViT gets the DeiT lesson: augmentation (random shifts
    # of one pixel), label smoothing, stochastic depth, many more steps than chapter 7's 600, and the
    # original ViT's Xavier initialisation (with timm's std 0.02 the same recipe underfit at 2,500 steps).
    "digits_cnn": Recipe("digits", "cnn", "SmallCNN", {"in_chans": 1}, steps=1000, batch_size=32, lr=4e-3),
    "digits_vit": Recipe(
        "digits",
        "vit",
        "vit_digits",
        {"drop_path_rate": 0.1},
        steps=6000,
        batch_size=64,
        lr=2e-3,
        warmup_steps=300,
        label_smoothing=0.1,
        shift=1,
        init="xavier",
    ),  # fmt: skip
    "digits_swin": Recipe(
        "digits",
        "swin",
        "swin_digits",
        {"drop_path_rate": 0.1},
        steps=800,
        batch_size=64,
        lr=2e-3,
        warmup_steps=300,
        label_smoothing=0.1,
        shift=1,
    ),  # fmt: skip
    # The shapes (32x32 RGB). The CNN learns them from 8,000 images in 400 steps. The ViT and Swin sat at
    # chance for 600-1,000 steps with the models' default initialisation (std 0.02: attention starts uniform
    # and stays so); with Xavier initialisation (`xavier_init`) and 20,000 generated images (the generator
    # is free: the Transformers get the data they are hungry for) they learn within their budgets.
    "shapes_cnn": Recipe(
        "shapes",
        "cnn",
        "SmallCNN",
        {"in_chans": 3, "channels": (16, 32, 64)},
        steps=400,
        batch_size=32,
        lr=3e-3,
        warmup_steps=40,
    ),  # fmt: skip
    "shapes_swin": Recipe(
        "shapes", "swin", "swin_cifar", _SHAPES_SWIN, steps=5000, batch_size=32, lr=1e-3, warmup_steps=300,
        init="xavier", data={"n_train": 20000},
    ),  # fmt: skip
    "shapes_vit": Recipe(
        "shapes", "vit", "vit_cifar", _SHAPES_VIT, steps=10000, batch_size=32, lr=1e-3, warmup_steps=300,
        init="xavier", data={"n_train": 20000},
    ),  # fmt: skip
}


@torch.no_grad()
def xavier_init(model: nn.Module) -> nn.Module:
    """Re-initialise every ``nn.Linear`` but the classifier ``head`` with Xavier-uniform weights (biases
    unchanged), in place; returns ``model``.

    This is the original ViT's initialisation (its JAX code, timm's ``init_weights(mode="jax")``) for the
    linear layers. The course's models start from timm's default, a truncated normal of std 0.02: with it the
    query and key projections are so small that every attention row starts almost uniform and its gradient
    (a product of the two small matrices) is tiny, so a small ViT trained from scratch sits at chance for
    hundreds of steps. Xavier's scale (std ``sqrt(2 / (fan_in + fan_out))``, 0.09 for 64 -> 192) gives
    attention that varies from the first step.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name != "head":
            nn.init.xavier_uniform_(module.weight)
    return model


def build_model(recipe: Recipe) -> nn.Module:
    """A freshly initialised model of ``recipe`` (seeded with ``recipe.seed``)."""
    torch.manual_seed(recipe.seed)
    if recipe.arch == "cnn":
        model = SmallCNN(**recipe.model)
    elif recipe.arch == "vit":
        model = create_vit(recipe.base, **recipe.model)
    elif recipe.arch == "swin":
        model = create_swin(recipe.base, **recipe.model)
    else:
        raise ValueError(f"unknown architecture {recipe.arch!r}; expected 'cnn', 'vit' or 'swin'")
    if recipe.init == "xavier":
        xavier_init(model)
    elif recipe.init != "timm":
        raise ValueError(f"unknown init {recipe.init!r}; expected 'timm' or 'xavier'")
    return model


def load_data(dataset: str, params: Optional[dict[str, Any]] = None) -> Splits:
    """The data set a recipe trains on: ``"digits"`` (the default split) or ``"shapes"`` (``params``
    override :data:`SHAPES_DATA`, :func:`course_lib.data.load_shapes`'s arguments)."""
    if dataset == "digits":
        return load_digits_tensors()
    if dataset == "shapes":
        return load_shapes(**{**SHAPES_DATA, **(params or {})})
    raise ValueError(f"unknown data set {dataset!r}; expected 'digits' or 'shapes'")


def _data_params(recipe: Recipe) -> dict[str, Any]:
    if recipe.dataset == "digits":
        return {"loader": "load_digits_tensors", "test_size": 0.25, "seed": 0}
    return {"loader": "load_shapes", **SHAPES_DATA, **recipe.data}


def _model_config(model: nn.Module, recipe: Recipe) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is not None:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    return dict(recipe.model)


def train_recipe(
    name: str,
    recipe: Recipe,
    data: Splits,
    device: Union[str, torch.device] = "cpu",
    steps: Optional[int] = None,
    verbose: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``recipe`` on ``data``; return the model (on the CPU, eval mode) and its manifest entry.

    ``steps`` overrides ``recipe.steps`` (a shorter run, used by the tests); the warm-up shrinks with it.
    """
    steps = recipe.steps if steps is None else steps
    warmup = min(recipe.warmup_steps, steps // 10) if steps < recipe.steps else recipe.warmup_steps
    model = build_model(recipe)
    per_epoch = math.ceil(len(data.y_train) / recipe.batch_size)
    start, cpu_start = time.perf_counter(), time.process_time()
    augment = RandomShift(recipe.shift, recipe.seed) if recipe.shift else None
    fit(
        model, data.train, None, lr=recipe.lr, batch_size=recipe.batch_size, device=device,
        seed=recipe.seed, weight_decay=recipe.weight_decay, warmup_epochs=warmup / per_epoch,
        label_smoothing=recipe.label_smoothing, steps=steps, augment=augment, verbose=verbose,
    )  # fmt: skip
    train_time = time.perf_counter() - start
    train_cpu = time.process_time() - cpu_start  # what the run cost, whatever else shared the machine
    model = model.cpu().eval()
    _, train_acc = evaluate(model, data.train)
    _, test_acc = evaluate(model, data.test)
    entry = {
        "name": name,
        "file": f"{name}.pt",
        "recipe": {**asdict(recipe), "steps": steps, "warmup_steps": warmup},
        "model_config": _model_config(model, recipe),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": _data_params(recipe),
        "n_train": len(data.y_train),
        "n_test": len(data.y_test),
        "train_acc": train_acc,
        "test_acc": test_acc,
        "test_correct": round(test_acc * len(data.y_test)),
        "train_time_s": round(train_time, 1),
        "train_cpu_s": round(train_cpu, 1),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": None,  # set by main()
    }
    return model, entry


def load_manifest(directory: Union[str, Path] = CHECKPOINT_DIR) -> dict[str, dict[str, Any]]:
    """``manifest.json`` of ``directory`` as ``{name: entry}`` (empty if there is none yet)."""
    path = Path(directory) / "manifest.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())["checkpoints"]


def _recipe_of(entry: dict[str, Any]) -> Recipe:
    r = dict(entry["recipe"])  # entries written before a field existed get its default
    r["model"] = {k: tuple(v) if isinstance(v, list) else v for k, v in r["model"].items()}
    return Recipe(**r)


def load_checkpoint(
    name: str, directory: Union[str, Path] = CHECKPOINT_DIR
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model ``name`` (eval mode, CPU) and its manifest entry.

    The model is rebuilt from the recipe stored in the manifest and its weights are loaded with
    ``torch.load(..., weights_only=True)`` (no code is unpickled).
    """
    manifest = load_manifest(directory)
    if name not in manifest:
        known = ", ".join(manifest) or "none (run `make checkpoints`)"
        raise ValueError(f"no checkpoint {name!r} in {Path(directory) / 'manifest.json'}; known: {known}")
    entry = manifest[name]
    model = build_model(_recipe_of(entry))
    state = torch.load(Path(directory) / entry["file"], map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval(), entry


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_manifest(directory: Path, entries: dict[str, dict[str, Any]]) -> None:
    doc = {
        "about": "Models trained by `python -m course_lib.checkpoints` (`make checkpoints`), "
        "recipes in course_lib/checkpoints.py.",
        "checkpoints": entries,
    }
    (directory / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.checkpoints", description=__doc__.split("\n")[0]
    )
    parser.add_argument("names", nargs="*", help=f"recipes to train (default: all of {', '.join(RECIPES)})")
    parser.add_argument("--out", default=str(CHECKPOINT_DIR), help="folder of the checkpoints and manifest")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--force", action="store_true", help="re-train names already in the manifest")
    parser.add_argument("--verbose", action="store_true", help="print the training loss after every epoch")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries = load_manifest(out)
    for name in args.names or list(RECIPES):
        if name in entries and not args.force and (out / entries[name]["file"]).exists():
            print(
                f"{name}: already trained (test accuracy {entries[name]['test_acc']:.4f}); --force re-trains"
            )
            continue
        recipe = RECIPES[name]
        data = load_data(recipe.dataset, recipe.data)
        print(
            f"{name}: training {recipe.steps} steps on {recipe.dataset} ({len(data.y_train)} images)...",
            flush=True,
        )
        model, entry = train_recipe(name, recipe, data, device=args.device, verbose=args.verbose)
        entry["command"] = "python -m course_lib.checkpoints " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        torch.save(model.state_dict(), out / entry["file"])
        entry["sha256"] = _sha256(out / entry["file"])
        entries = load_manifest(out)  # another process may have added entries meanwhile
        entries[name] = entry
        _write_manifest(out, entries)
        print(
            f"{name}: train acc {entry['train_acc']:.4f}, test acc {entry['test_acc']:.4f}, "
            f"{entry['train_time_s']:.1f} s, {entry['parameters']:,} parameters",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
