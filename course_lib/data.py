"""Small image data sets that work offline, and one real photograph.

Everything here runs without a network connection:

* :func:`load_digits_tensors` - scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes),
  split into train/test with a fixed seed, stratified by class, normalised, as ``(N, 1, 8, 8)`` tensors;
* :func:`subset` - the first ``n`` examples of each class, for "accuracy vs training-set size" curves;
* :func:`load_dataset` - ``"digits"`` or ``"cifar10"``; CIFAR-10 comes from torchvision when its files are
  already on disk (or when downloading is allowed and possible), otherwise it falls back to the digits with a
  printed message instead of an exception, so a notebook runs unchanged offline;
* :func:`sample_image` - Grace Hopper's portrait that ships with matplotlib, as a ``(3, 224, 224)`` tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Splits",
    "load_digits_tensors",
    "subset",
    "load_cifar10_tensors",
    "load_dataset",
    "sample_image",
    "DATASETS",
]

DATASETS = ("digits", "cifar10")

# Per-channel statistics of the CIFAR-10 training set (the values every tutorial uses).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass
class Splits:
    """A train/test split held in memory as tensors.

    Attributes:
        x_train: images ``(N_train, C, H, W)``, float32, normalised (zero mean, unit variance per channel
            over the training set).
        y_train: labels ``(N_train,)``, int64 in ``[0, num_classes)``.
        x_test: images ``(N_test, C, H, W)``, normalised with the *training* statistics.
        y_test: labels ``(N_test,)``.
        classes: class names, index = label.
        name: ``"digits"`` or ``"cifar10"`` (what was actually loaded, after any fallback).
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: tuple[str, ...]
    name: str

    @property
    def train(self) -> tuple[Tensor, Tensor]:
        """``(x_train, y_train)``, the form :func:`course_lib.training.fit` takes."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[Tensor, Tensor]:
        """``(x_test, y_test)``."""
        return self.x_test, self.y_test

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"Splits(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"image=({c}, {h}, {w}), classes={self.num_classes})"
        )


def _stratified_split(y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` with each class split in the same proportion (sklearn's algorithm)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    return np.sort(train_idx), np.sort(test_idx)


def _standardise(x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel zero mean / unit variance, statistics from the training images only."""
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    return (x_train - mean) / std, (x_test - mean) / std


def load_digits_tensors(test_size: float = 0.25, seed: int = 0, normalize: bool = True) -> Splits:
    """scikit-learn's 8x8 digits as tensors: ``x`` ``(N, 1, 8, 8)`` float32, ``y`` ``(N,)`` int64.

    The data ship inside scikit-learn (no download). The split is stratified (every digit keeps the same
    share in train and test) and fixed by ``seed``; with the defaults it is 1,347 train / 450 test images.

    Args:
        test_size: fraction of the 1,797 images held out for testing, in ``(0, 1)``.
        seed: seed of the split.
        normalize: standardise with the training set's mean and standard deviation; if ``False`` the
            pixels are scaled from ``0..16`` to ``[0, 1]``.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)  # (1797, 1, 8, 8) in [0, 1]
    y = torch.from_numpy(digits.target.astype(np.int64))
    train_idx, test_idx = _stratified_split(digits.target, test_size, seed)
    x_train, x_test = x[train_idx], x[test_idx]
    if normalize:
        x_train, x_test = _standardise(x_train, x_test)
    classes = tuple(str(i) for i in range(10))
    return Splits(x_train, y[train_idx], x_test, y[test_idx], classes, "digits")


def subset(x: Tensor, y: Tensor, n_per_class: Optional[int], seed: int = 0) -> tuple[Tensor, Tensor]:
    """A class-balanced random subset: ``n_per_class`` examples of every class.

    ``x`` is ``(N, ...)``, ``y`` ``(N,)``. The subsets are nested: for the same seed, the subset with
    ``n`` examples per class contains the one with fewer, so a learning curve adds data without swapping it.
    ``n_per_class=None`` returns everything. The result keeps the original order of ``x``.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]} labels")
    if n_per_class is None:
        return x, y
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    keep = []
    for c in torch.unique(y).tolist():
        members = order[y[order] == c]
        if len(members) < n_per_class:
            raise ValueError(
                f"class {c} has only {len(members)} examples, fewer than n_per_class={n_per_class}"
            )
        keep.append(members[:n_per_class])
    idx = torch.cat(keep).sort().values
    return x[idx], y[idx]


def load_cifar10_tensors(
    root: Union[str, Path] = "data", download: bool = False, max_train: Optional[int] = None
) -> Splits:
    """CIFAR-10 from torchvision as ``(N, 3, 32, 32)`` tensors, standardised with the usual statistics.

    Raises whatever torchvision raises when the files are missing (and ``download`` is off) or the download
    fails; :func:`load_dataset` turns that into the digits fallback.

    Args:
        root: folder holding (or receiving) ``cifar-10-batches-py``.
        download: let torchvision download the 170 MB archive if it is not in ``root``.
        max_train: keep only the first ``max_train`` training images (a quick run).
    """
    from torchvision.datasets import CIFAR10

    train = CIFAR10(str(root), train=True, download=download)
    test = CIFAR10(str(root), train=False, download=download)

    def to_tensor(ds) -> tuple[Tensor, Tensor]:
        # ds.data is (N, 32, 32, 3) uint8 -> (N, 3, 32, 32) float in [0, 1]
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
        return (x - mean) / std, torch.tensor(ds.targets, dtype=torch.int64)

    x_train, y_train = to_tensor(train)
    x_test, y_test = to_tensor(test)
    if max_train is not None:
        x_train, y_train = x_train[:max_train], y_train[:max_train]
    return Splits(x_train, y_train, x_test, y_test, CIFAR10_CLASSES, "cifar10")


def load_dataset(
    name: str = "digits",
    root: Union[str, Path] = "data",
    allow_download: bool = False,
    seed: int = 0,
    max_train: Optional[int] = None,
    verbose: bool = True,
) -> Splits:
    """Load ``"digits"`` or ``"cifar10"``; CIFAR-10 falls back to the digits instead of failing.

    CIFAR-10 is used when torchvision finds its files under ``root``, or, with ``allow_download=True``, when
    it can download them. Any failure (files missing, no network, a corrupt archive) prints one line saying
    why and returns :func:`load_digits_tensors` instead, so a notebook written for a GPU runtime with internet
    still runs offline. Check ``splits.name`` to see what was loaded.

    Args:
        name: ``"digits"`` or ``"cifar10"``.
        root: where CIFAR-10 lives or is downloaded to.
        allow_download: permit a download of CIFAR-10 (170 MB).
        seed: seed of the digits' train/test split.
        max_train: cap on the number of CIFAR-10 training images.
        verbose: print the fallback message.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    if name == "cifar10":
        try:
            return load_cifar10_tensors(root, download=allow_download, max_train=max_train)
        except Exception as err:  # noqa: BLE001 - any failure means "use the offline data instead"
            if verbose:
                why = " ".join(str(err).split()) or type(err).__name__
                print(f"CIFAR-10 is not available ({why}); using scikit-learn's 8x8 digits instead.")
    return load_digits_tensors(seed=seed)


def sample_image(size: int = 224) -> Tensor:
    """Grace Hopper's portrait from matplotlib's sample data, as a ``(3, size, size)`` float tensor in [0, 1].

    The 512x600 (width x height) photo is centre-cropped to a square and resized with antialiasing.
    It ships with matplotlib, so nothing is downloaded.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    img = torch.from_numpy(np.asarray(mpimg.imread(path)).copy())  # (H, W, 3) uint8
    img = img.permute(2, 0, 1).float() / 255.0  # (3, H, W)
    _, h, w = img.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = img[:, top : top + s, left : left + s]
    img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return img.clamp(0.0, 1.0)
