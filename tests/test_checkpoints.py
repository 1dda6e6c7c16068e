"""The committed checkpoints (course_lib/trained/): they load, they score what the manifest says, they
reproduce, and together they stay small."""

from __future__ import annotations

import hashlib

import pytest
import torch

from course_lib.checkpoints import (
    CHECKPOINT_DIR,
    RECIPES,
    load_checkpoint,
    load_data,
    load_manifest,
    train_recipe,
)
from course_lib.training import evaluate

MANIFEST = load_manifest()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def datasets():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_data(name)
        return cache[name]

    return get


def test_every_recipe_has_a_checkpoint_and_they_are_small():
    assert set(MANIFEST) == set(RECIPES), "run `make checkpoints` to train the missing ones"
    total = sum((CHECKPOINT_DIR / e["file"]).stat().st_size for e in MANIFEST.values())
    assert total < 20e6, f"the checkpoints take {total / 1e6:.1f} MB, over the 20 MB budget"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_checkpoint_loads_and_scores_its_manifest_accuracy(name, datasets):
    entry = MANIFEST[name]
    path = CHECKPOINT_DIR / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    state = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors, no pickled code
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model, _ = load_checkpoint(name)
    assert sum(p.numel() for p in model.parameters()) == entry["parameters"]
    data = datasets(entry["recipe"]["dataset"])
    assert len(data.y_test) == entry["n_test"]
    _, acc = evaluate(model, data.test)
    # The same weights on the same images: equal, up to one image whose top two logits are within rounding
    # (another CPU's kernels may sum in another order).
    assert abs(round(acc * entry["n_test"]) - entry["test_correct"]) <= 1


def test_the_cheapest_checkpoint_reproduces(datasets):
    # digits_cnn: 1,000 steps of a 0.1M-parameter CNN on 8x8 images, seconds on one core. Re-trained with its
    # recipe and seed, it must land where the manifest says (exactly, on the same CPU and thread count).
    name = "digits_cnn"
    entry = MANIFEST[name]
    _, fresh = train_recipe(name, RECIPES[name], datasets(RECIPES[name].dataset))
    assert fresh["test_acc"] == pytest.approx(entry["test_acc"], abs=0.01)
    assert fresh["train_acc"] == pytest.approx(entry["train_acc"], abs=0.01)


def test_unknown_checkpoint_is_a_clear_error():
    with pytest.raises(ValueError, match="no checkpoint 'nope'.*known: "):
        load_checkpoint("nope")


def test_manifest_recipes_are_the_code_recipes():
    # `make checkpoints` must re-create what is committed: the recipe in the code is the one stored.
    from dataclasses import asdict

    for name, entry in MANIFEST.items():
        recipe = asdict(RECIPES[name])
        recipe["model"] = {k: list(v) if isinstance(v, tuple) else v for k, v in recipe["model"].items()}
        assert entry["recipe"] == recipe, name
