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


def test_xavier_init_has_glorots_scale_and_leaves_the_head():
    # Glorot & Bengio (2010): uniform on [-a, a] with a = sqrt(6 / (fan_in + fan_out)), so the standard
    # deviation is sqrt(2 / (fan_in + fan_out)).
    from course_lib.checkpoints import Recipe, build_model

    timm_default = build_model(
        Recipe("shapes", "vit", "vit_cifar", {"embed_dim": 64, "depth": 2, "num_heads": 4})
    )
    xavier = build_model(
        Recipe("shapes", "vit", "vit_cifar", {"embed_dim": 64, "depth": 2, "num_heads": 4}, init="xavier")
    )
    for name, module in xavier.named_modules():
        if isinstance(module, torch.nn.Linear):
            w = module.weight
            if name == "head":
                assert torch.equal(w, timm_default.head.weight)
            else:
                fan_out, fan_in = w.shape
                bound = (6 / (fan_in + fan_out)) ** 0.5
                assert w.abs().max() <= bound
                assert w.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.1)


def test_xavier_init_makes_attention_non_uniform_from_the_start():
    # The reason for the shapes Transformers' init (see xavier_init): with timm's std 0.02 the first layer's
    # attention rows are almost uniform (entropy ~ log N); with Xavier they are not.
    from dataclasses import replace

    from course_lib.checkpoints import RECIPES, build_model

    x = load_data("shapes", {"n_train": 0, "n_test": 32}).x_test

    def entropy_gap(model):
        a = model.attention_maps(x)[0]  # (B, heads, T, T)
        h = -(a * a.clamp_min(1e-12).log()).sum(-1).mean()
        return (torch.log(torch.tensor(float(a.shape[-1]))) - h).item()

    with torch.no_grad():
        gap_timm = entropy_gap(build_model(replace(RECIPES["shapes_vit"], init="timm")).eval())
        gap_xavier = entropy_gap(build_model(RECIPES["shapes_vit"]).eval())
    assert gap_timm < 0.01 < 0.1 < gap_xavier
