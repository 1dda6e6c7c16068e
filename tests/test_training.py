"""Tests of course_lib.training (the training loop) and course_lib.cnn (the CNN baseline)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.cnn import SmallCNN
from course_lib.complexity import count_parameters
from course_lib.data import load_digits_tensors, subset
from course_lib.training import History, cosine_lr, evaluate, fit, format_seconds


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is fastest, and it avoids thread oversubscription when the
    test suite runs in parallel (``-n 2``) on a small machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blobs(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian blobs in 4-D, shaped as ``(n, 1, 2, 2)`` 'images'."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    x = centres[y] + 0.5 * torch.randn(n, 4, generator=g)
    return x.view(n, 1, 2, 2), y


def _tiny_model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def test_cosine_lr_matches_the_formula():
    base, total = 1e-3, 100
    assert cosine_lr(0, total, base) == pytest.approx(base)
    assert cosine_lr(50, total, base) == pytest.approx(base / 2)
    assert cosine_lr(100, total, base) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(25, total, base) == pytest.approx(base * 0.5 * (1 + math.cos(math.pi / 4)))
    # Linear warm-up: 1/10, 2/10, ... of the peak, then the cosine starts at the peak.
    assert [cosine_lr(s, total, base, warmup_steps=10) for s in (0, 4, 9)] == pytest.approx(
        [base / 10, base / 2, base]
    )
    assert cosine_lr(10, total, base, warmup_steps=10) == pytest.approx(base)
    assert cosine_lr(100, total, base, min_lr=1e-5) == pytest.approx(1e-5)


def test_fit_lowers_the_loss_and_learns():
    x, y = _blobs(300)
    model = _tiny_model()
    hist = fit(model, (x[:200], y[:200]), (x[200:], y[200:]), epochs=15, lr=1e-2, batch_size=32, seed=0)
    assert isinstance(hist, History) and hist.epochs == 15
    assert len(hist.test_acc) == len(hist.lr) == len(hist.epoch_time) == 15
    assert hist.train_loss[-1] < 0.5 * hist.train_loss[0]
    assert hist.final_test_acc >= 0.9 and hist.best_test_acc >= hist.final_test_acc
    assert hist.lr[-1] < 1e-4  # the cosine schedule ended near zero
    assert all(t > 0 for t in hist.epoch_time) and hist.total_time == pytest.approx(sum(hist.epoch_time))
    assert not model.training  # fit leaves the model in eval mode


def test_fit_is_deterministic_with_the_same_seed():
    x, y = _blobs(120)
    runs = []
    for _ in range(2):
        model = _tiny_model(seed=0, dropout=0.3)  # dropout draws random numbers: they must be seeded too
        hist = fit(model, (x[:90], y[:90]), (x[90:], y[90:]), epochs=4, lr=1e-2, batch_size=16, seed=7)
        runs.append((hist, torch.cat([p.detach().flatten() for p in model.parameters()])))
    (h1, w1), (h2, w2) = runs
    assert h1.train_loss == h2.train_loss and h1.test_acc == h2.test_acc and h1.lr == h2.lr
    assert torch.equal(w1, w2)
    model = _tiny_model(seed=0, dropout=0.3)
    h3 = fit(model, (x[:90], y[:90]), (x[90:], y[90:]), epochs=4, lr=1e-2, batch_size=16, seed=8)
    assert h3.train_loss != h1.train_loss


def test_fit_does_not_decay_biases(monkeypatch):
    # The usual ViT recipe: weight decay on weight matrices only, not on biases, norms or embeddings.
    x, y = _blobs(30)
    model = _tiny_model()
    captured = {}
    original = torch.optim.AdamW.__init__

    def spy(self, params, **kwargs):
        captured["groups"] = params
        original(self, params, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "__init__", spy)
    fit(model, (x, y), (x, y), epochs=1, weight_decay=0.1)
    decay, no_decay = captured["groups"]
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {p.ndim for p in decay["params"]} == {2} and {p.ndim for p in no_decay["params"]} == {1}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_evaluate_matches_torch_cross_entropy():
    x, y = _blobs(70)
    model = _tiny_model(dropout=0.5)
    model.train()
    loss, acc = evaluate(model, (x, y), batch_size=16)  # several batches, the last one partial
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
    model.train()
    evaluate(model, (x, y))
    assert model.training  # mode restored


def test_bad_inputs():
    x, y = _blobs(10)
    with pytest.raises(ValueError, match="10 examples but y_train has 9"):
        fit(_tiny_model(), (x, y[:9]), (x, y))
    with pytest.raises(ValueError, match="epochs"):
        fit(_tiny_model(), (x, y), (x, y), epochs=0)
    with pytest.raises(ValueError, match="10 examples but y has 9"):
        evaluate(_tiny_model(), (x, y[:9]))


def test_format_seconds_is_what_the_sanitizer_replaces():
    assert format_seconds(0.01234) == "12.3 ms"
    assert format_seconds(4.56) == "4.6 s"
    assert format_seconds(75.0) == "75.0 s"
    for s in (0.0004, 0.5, 1.0, 12.0, 3600.0):
        assert re.fullmatch(r"\d+\.\d+ (ms|s)", format_seconds(s))


# --------------------------------------------------------------------------------------------------
# The CNN baseline
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_chans,size", [(1, 8), (3, 32), (3, 16)])
def test_cnn_shapes(in_chans, size):
    model = SmallCNN(in_chans=in_chans, num_classes=7).eval()
    x = torch.randn(2, in_chans, size, size)
    assert model(x).shape == (2, 7)
    assert model.forward_features(x).shape == (2, 64, size // 4, size // 4)


def test_cnn_size_is_comparable_to_the_small_transformers():
    n = count_parameters(SmallCNN())
    assert n == 109_802
    from course_lib.swin import create_swin
    from course_lib.vit import create_vit

    for model in (create_vit("vit_digits"), create_swin("swin_digits")):
        assert 1 / 1.5 <= n / count_parameters(model) <= 1.5


def test_cnn_bad_inputs():
    model = SmallCNN()
    with pytest.raises(ValueError, match=r"expected images \(B, 1, H, W\), got shape \(2, 3, 8, 8\)"):
        model(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="image size 10x10 is not divisible by 4"):
        model(torch.randn(2, 1, 10, 10))
    with pytest.raises(ValueError, match="at least one stage"):
        SmallCNN(channels=())


def test_cnn_learns_digits_quickly():
    d = load_digits_tensors()
    torch.manual_seed(0)
    model = SmallCNN()
    train = subset(d.x_train, d.y_train, 50)
    hist = fit(model, train, d.test, epochs=4, lr=3e-3, batch_size=64, seed=0)
    assert hist.final_test_acc > 0.85


# --------------------------------------------------------------------------------------------------
# A fixed number of steps, and augmentation
# --------------------------------------------------------------------------------------------------


def test_fit_with_steps_runs_exactly_that_many_optimiser_steps():
    x, y = _blobs(30)
    model = _tiny_model()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(m.training))
    hist = fit(model, (x, y), None, batch_size=8, steps=7, lr=1e-2)
    # 30 images in batches of 8 = 4 steps an epoch: 7 steps = one full epoch and 3 steps of a second.
    assert calls == [True] * 7 and hist.epochs == 2
    # The cosine schedule ends at step 7 (not at 2 full epochs = 8): the last step's rate is cosine_lr(6, 7).
    assert hist.lr[-1] == pytest.approx(cosine_lr(6, 7, 1e-2))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit(model, (x, y), None, steps=0)


def _shifted(img, dy, dx):
    """Reference shift by index clamping: out[i, j] = img[clamp(i - dy), clamp(j - dx)]."""
    _, H, W = img.shape
    rows = torch.clamp(torch.arange(H) - dy, 0, H - 1)
    cols = torch.clamp(torch.arange(W) - dx, 0, W - 1)
    return img[:, rows][:, :, cols]


def test_random_shift_is_a_clamped_translation():
    from course_lib.training import RandomShift, random_shift

    torch.manual_seed(0)
    x = torch.randn(200, 2, 5, 6)
    out = random_shift(x, 1, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    seen = set()
    for img, res in zip(x, out):
        offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        match = [o for o in offsets if torch.equal(res, _shifted(img, *o))]
        assert match, "every output is the input shifted by at most one pixel"
        seen.add(match[0])
    assert len(seen) == 9  # all nine offsets occur
    assert random_shift(x, 0) is x
    a, b = RandomShift(2, seed=5), RandomShift(2, seed=5)
    assert torch.equal(a(x), b(x))  # seeded: reproducible
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(x, -1)
