"""Tests of course_lib.data: the offline data sets and the sample photo.

No test here may reach the network: an autouse fixture makes every socket connection and DNS lookup fail,
so a code path that tries to download is caught (and must fall back instead of raising).
"""

from __future__ import annotations

import os
import pickle
import socket

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from course_lib.data import (
    CIFAR10_CLASSES,
    SHAPE_CLASSES,
    Splits,
    load_cifar10_tensors,
    load_dataset,
    load_digits_tensors,
    load_shapes,
    make_shapes,
    sample_image,
    subset,
)


class NetworkUsed(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every attempt to open a connection or resolve a name raises :class:`NetworkUsed`."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise NetworkUsed(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return calls


# --------------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sk_digits():
    return load_digits()


def test_digits_shapes_and_types():
    d = load_digits_tensors()
    assert isinstance(d, Splits)
    assert d.x_train.shape == (1347, 1, 8, 8) and d.x_test.shape == (450, 1, 8, 8)
    assert d.y_train.shape == (1347,) and d.y_test.shape == (450,)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.image_shape == (1, 8, 8) and d.num_classes == 10 and d.name == "digits"
    assert d.train[0] is d.x_train and d.test[1] is d.y_test


def test_digits_split_is_a_stratified_partition_of_sklearns_data(sk_digits):
    d = load_digits_tensors(normalize=False)
    # Unnormalised pixels are sklearn's 0..16 values / 16.
    raw = torch.cat([d.x_train, d.x_test]).reshape(-1, 64) * 16
    assert torch.allclose(raw, raw.round()) and raw.min() == 0 and raw.max() == 16
    # Every (image, label) pair of sklearn appears exactly once across train + test.
    ours = sorted(
        (tuple(r.round().int().tolist()), int(lab)) for r, lab in zip(raw, torch.cat([d.y_train, d.y_test]))
    )
    ref = sorted(
        (tuple(r.astype(int).tolist()), int(lab)) for r, lab in zip(sk_digits.data, sk_digits.target)
    )
    assert ours == ref
    # Stratified: each class's share of the test set matches its share of the whole set (within one image).
    counts = np.bincount(sk_digits.target, minlength=10)
    test_counts = torch.bincount(d.y_test, minlength=10).numpy()
    assert np.all(np.abs(test_counts - counts * 450 / 1797) <= 1.0)


def test_digits_normalised_with_training_statistics():
    d = load_digits_tensors()
    assert abs(d.x_train.mean().item()) < 1e-5
    assert abs(d.x_train.std().item() - 1.0) < 1e-4
    # Test data uses the training statistics, so it is close to but not exactly standardised.
    raw = load_digits_tensors(normalize=False)
    mean, std = raw.x_train.mean(), raw.x_train.std()
    assert torch.allclose(d.x_test, (raw.x_test - mean) / std, atol=1e-5)


def test_digits_deterministic_and_seeded():
    a, b = load_digits_tensors(seed=0), load_digits_tensors(seed=0)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    c = load_digits_tensors(seed=1)
    assert not torch.equal(a.y_train, c.y_train)


def test_digits_bad_test_size():
    with pytest.raises(ValueError, match="test_size"):
        load_digits_tensors(test_size=1.5)


# --------------------------------------------------------------------------------------------------
# subset
# --------------------------------------------------------------------------------------------------


def test_subset_balanced_nested_and_ordered():
    d = load_digits_tensors()
    x10, y10 = subset(d.x_train, d.y_train, 10)
    assert x10.shape == (100, 1, 8, 8)
    assert torch.bincount(y10, minlength=10).tolist() == [10] * 10
    x30, y30 = subset(d.x_train, d.y_train, 30)
    # Nested: every image of the 10-per-class subset is also in the 30-per-class one.
    rows30 = {tuple(r.tolist()) for r in x30.reshape(len(x30), -1)}
    assert all(tuple(r.tolist()) in rows30 for r in x10.reshape(len(x10), -1))
    # Rows stay paired with their labels: find each subset row in the full set.
    full = {tuple(r.tolist()): int(lab) for r, lab in zip(d.x_train.reshape(len(d.x_train), -1), d.y_train)}
    assert all(full[tuple(r.tolist())] == int(lab) for r, lab in zip(x30.reshape(len(x30), -1), y30))
    # Same seed, same subset; None = everything.
    assert torch.equal(subset(d.x_train, d.y_train, 10)[0], x10)
    assert subset(d.x_train, d.y_train, None)[0] is d.x_train


def test_subset_errors():
    x, y = torch.zeros(20, 1, 2, 2), torch.arange(2).repeat(10)
    with pytest.raises(ValueError, match="fewer than n_per_class=11"):
        subset(x, y, 11)
    with pytest.raises(ValueError, match="n_per_class"):
        subset(x, y, 0)
    with pytest.raises(ValueError, match="20 examples but y has 19"):
        subset(x, y[:19], 1)


# --------------------------------------------------------------------------------------------------
# load_dataset and the CIFAR-10 fallback
# --------------------------------------------------------------------------------------------------


def test_load_dataset_digits():
    d = load_dataset("digits")
    assert d.name == "digits" and torch.equal(d.x_train, load_digits_tensors().x_train)


def test_cifar10_falls_back_offline_without_download(tmp_path, capsys, no_network):
    d = load_dataset("cifar10", root=tmp_path, allow_download=False)
    assert d.name == "digits" and d.x_train.shape == (1347, 1, 8, 8)
    out = capsys.readouterr().out
    assert "CIFAR-10 is not available" in out and "digits" in out
    assert no_network == []


def test_cifar10_falls_back_when_the_download_fails(tmp_path, capsys, no_network):
    # Downloads allowed, but the network is unreachable (the fixture): still no exception.
    d = load_dataset("cifar10", root=tmp_path, allow_download=True)
    assert d.name == "digits"
    assert "CIFAR-10 is not available" in capsys.readouterr().out
    assert len(no_network) >= 1  # the download was attempted and refused, not skipped silently


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        load_dataset("mnist")


def _write_fake_cifar(root, n_per_batch=4):
    """Files in torchvision's CIFAR-10 layout (python pickles), with random pixels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        batches[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, f)
    return batches


def test_cifar10_on_disk_is_used(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    batches = _write_fake_cifar(tmp_path)
    # Our fake files have other md5 sums than the real ones: accept any file that exists.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    d = load_dataset("cifar10", root=tmp_path)
    assert d.name == "cifar10" and d.classes == CIFAR10_CLASSES
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    # Pixel (channel 0, row 0, col 0) of the first test image: CIFAR stores R plane, G plane, B plane.
    data, labels = batches["test_batch"]
    expected = (data[0, 0] / 255.0 - 0.4914) / 0.2470
    assert d.x_test[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-5)
    assert d.x_test[0, 2, 31, 31].item() == pytest.approx((data[0, 3071] / 255.0 - 0.4465) / 0.2616, abs=1e-5)
    assert d.y_test.tolist() == labels
    assert load_cifar10_tensors(tmp_path, max_train=7).x_train.shape[0] == 7


# --------------------------------------------------------------------------------------------------
# sample_image
# --------------------------------------------------------------------------------------------------


def test_sample_image_shape_range_and_content():
    img = sample_image()
    assert img.shape == (3, 224, 224) and img.dtype == torch.float32
    assert 0.0 <= img.min().item() and img.max().item() <= 1.0
    # Independent reference: PIL's own centre crop + resize of the same file.
    import matplotlib.cbook as cbook
    from PIL import Image

    pil = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    w, h = pil.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    ref = pil.crop((left, top, left + s, top + s)).resize((224, 224), Image.BILINEAR)
    ref = torch.from_numpy(np.array(ref)).permute(2, 0, 1).float() / 255.0
    assert (img - ref).abs().mean().item() < 0.02
    assert sample_image(32).shape == (3, 32, 32)


def test_sample_image_bad_size():
    with pytest.raises(ValueError, match="size"):
        sample_image(0)


# --------------------------------------------------------------------------------------------------
# The generated shapes
# --------------------------------------------------------------------------------------------------


def test_shapes_shapes_ranges_and_masks():
    s = make_shapes(60, seed=0)
    assert s.images.shape == (60, 3, 32, 32) and s.images.dtype == torch.float32
    assert s.masks.shape == (60, 32, 32) and s.masks.dtype == torch.bool
    assert 0.0 <= s.images.min().item() and s.images.max().item() <= 1.0
    assert set(s.labels.tolist()) <= set(range(len(SHAPE_CLASSES))) and len(set(s.labels.tolist())) >= 8
    area = s.masks.flatten(1).float().mean(1)
    # Objects 12-20 px across on 32x32: between a small bar (about 4%) and a large disc (about 31%).
    assert (area > 0.03).all() and (area < 0.35).all()
    # The object is drawn in one colour (plus pixel noise of std 0.03): inside the mask, the pixels' spread
    # is the noise's; the mean background under it differs by at least 0.45 in RGB distance minus noise.
    for img, mask in zip(s.images, s.masks):
        inside = img[:, mask]  # (3, n)
        assert inside.std(dim=1).max().item() < 0.06


def test_shapes_are_deterministic_and_prefix_stable():
    a = make_shapes(20, seed=3)
    b = make_shapes(30, seed=3)
    assert torch.equal(a.images, b.images[:20]) and torch.equal(a.masks, b.masks[:20])
    c = make_shapes(10, seed=3, start=10)
    assert torch.equal(c.images, b.images[10:20]) and torch.equal(c.labels, b.labels[10:20])
    assert not torch.equal(make_shapes(20, seed=4).images, a.images)


def test_shape_masks_match_geometry():
    # Independent check of the drawn geometry: the mask of a circle is (nearly) a disc, so its area equals
    # pi * r^2 for the radius recovered from its bounding box; a square's fills its rotated bounding box.
    s = make_shapes(400, seed=1)
    for label, name in ((0, "circle"), (5, "diamond")):
        idx = (s.labels == label).nonzero().flatten()[:10]
        for i in idx:
            m = s.masks[i]
            rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
            h = (rows.max() - rows.min() + 1).item()
            w = (cols.max() - cols.min() + 1).item()
            area = m.sum().item()
            expected = np.pi * h * w / 4 if name == "circle" else h * w / 2
            assert abs(area - expected) / expected < 0.3, (name, area, expected)


def test_load_shapes_splits():
    d = load_shapes(n_train=50, n_test=20, seed=0)
    assert d.name == "shapes" and d.classes == SHAPE_CLASSES and d.num_classes == 10
    assert d.x_train.shape == (50, 3, 32, 32) and d.mask_test.shape == (20, 32, 32)
    raw = make_shapes(50, seed=0)
    assert torch.allclose(d.x_train, (raw.images - 0.5) / 0.25)
    assert torch.equal(d.mask_train, raw.masks)
    # The test set is the same whatever the training size, and disjoint from it.
    assert torch.equal(load_shapes(n_train=10, n_test=20).x_test, d.x_test)
    assert not any(torch.equal(t, x) for t in d.x_test for x in d.x_train)
    assert load_shapes(5, 5, size=48).x_train.shape == (5, 3, 48, 48)


def test_shapes_bad_inputs():
    with pytest.raises(ValueError, match="size must be >= 16"):
        make_shapes(2, size=8)
    with pytest.raises(ValueError, match="n must be >= 0"):
        make_shapes(-1)
    with pytest.raises(ValueError, match="n_train"):
        load_shapes(n_train=-1)
