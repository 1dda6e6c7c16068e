"""Small image data sets that work offline, and one real photograph.

Everything here runs without a network connection:

* :func:`load_digits_tensors` - scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes),
  split into train/test with a fixed seed, stratified by class, normalised, as ``(N, 1, 8, 8)`` tensors;
* :func:`subset` - the first ``n`` examples of each class, for "accuracy vs training-set size" curves;
* :func:`load_dataset` - ``"digits"`` or ``"cifar10"``; CIFAR-10 comes from torchvision when its files are
  already on disk (or when downloading is allowed and possible), otherwise it falls back to the digits with a
  printed message instead of an exception, so a notebook runs unchanged offline;
* :func:`make_shapes` / :func:`load_shapes` - a generated data set of ten shapes on cluttered backgrounds,
  with each object's pixel mask, so that "where does the model look?" has a right answer;
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
    "SHAPE_CLASSES",
    "Shapes",
    "make_shapes",
    "load_shapes",
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
        name: ``"digits"``, ``"cifar10"`` (what was actually loaded, after any fallback) or ``"shapes"``.
        mask_train, mask_test: for ``"shapes"`` only, the object masks ``(N, H, W)`` bool (``True`` on the
            object's pixels); ``None`` for the other data sets.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: tuple[str, ...]
    name: str
    mask_train: Optional[Tensor] = None
    mask_test: Optional[Tensor] = None

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


# ------------------------------------------------------------------------------------------------
# A generated data set with object masks: ten shapes on cluttered backgrounds
# ------------------------------------------------------------------------------------------------

SHAPE_CLASSES = (
    "circle", "square", "triangle", "plus", "ring", "diamond", "horizontal bar", "vertical bar", "cross", "L",
)  # fmt: skip

# Every image depends only on (seed, index): the test images are drawn from indices starting here, so
# they never overlap a training set of any size; a training set of n images is the first n of a larger one.
_TEST_OFFSET = 1_000_000
# Fixed normalisation (pixels in [0, 1] -> about zero mean, unit variance), the same for every subset.
SHAPES_MEAN, SHAPES_STD = 0.5, 0.25


def _shape_inside(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of points ``(u, v)`` (object coordinates, the object spans about ``[-1, 1]^2``, ``v`` points
    down the image) in shape ``label``. Returns a bool array of the shape of ``u``."""
    au, av = np.abs(u), np.abs(v)
    r = np.sqrt(u**2 + v**2)
    if label == 0:  # circle
        return r <= 1.0
    if label == 1:  # square
        return np.maximum(au, av) <= 0.8
    if label == 2:  # triangle, apex up
        return (v <= 0.8) & (v >= -0.9) & (au <= 0.55 * (v + 0.9))
    if label == 3:  # plus
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    if label == 4:  # ring
        return (r <= 1.0) & (r >= 0.55)
    if label == 5:  # diamond
        return au + av <= 1.0
    if label == 6:  # horizontal bar
        return (au <= 1.0) & (av <= 0.3)
    if label == 7:  # vertical bar
        return (au <= 0.3) & (av <= 1.0)
    if label == 8:  # cross (an X)
        return (np.maximum(au, av) <= 0.9) & ((np.abs(u - v) <= 0.4) | (np.abs(u + v) <= 0.4))
    if label == 9:  # L
        return ((u >= -0.9) & (u <= -0.35) & (av <= 0.9)) | ((v >= 0.35) & (v <= 0.9) & (au <= 0.9))
    raise ValueError(f"unknown shape label {label}; there are {len(SHAPE_CLASSES)}")


def _smooth_noise(rng: np.random.Generator, size: int, cells: int = 4) -> np.ndarray:
    """A smooth random colour field ``(size, size, 3)`` in ``[0.15, 0.85]``: a ``cells x cells`` grid of
    random colours, bilinearly interpolated."""
    grid = rng.uniform(0.15, 0.85, size=(cells, cells, 3))
    t = np.linspace(0, cells - 1, size)
    i0 = np.clip(np.floor(t).astype(int), 0, cells - 2)
    f = (t - i0)[:, None]
    rows = grid[i0] * (1 - f[:, :, None]) + grid[i0 + 1] * f[:, :, None]  # (size, cells, 3)
    out = rows[:, i0] * (1 - f.T[:, :, None]) + rows[:, i0 + 1] * f.T[:, :, None]
    return out


def _render_shape(index: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One image of :func:`make_shapes`: ``(image (size, size, 3) float in [0, 1], mask (size, size) bool,
    label)``, from a random generator seeded with ``(seed, index)`` only."""
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(len(SHAPE_CLASSES)))
    scale = size / 32  # all lengths are chosen for 32 px and scale with the image
    img = _smooth_noise(rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    # Clutter: 2-5 small distractors (dots, blobs, short lines) in random colours, drawn under the object.
    for _ in range(int(rng.integers(2, 6))):
        kind = int(rng.integers(3))
        cx, cy = rng.uniform(0, size, size=2)
        if kind == 0:  # dot
            blob = (xx - cx) ** 2 + (yy - cy) ** 2 <= (1.0 * scale) ** 2
        elif kind == 1:  # blob
            blob = ((xx - cx) / rng.uniform(1.5, 2.5) / scale) ** 2 + (
                (yy - cy) / rng.uniform(1.5, 2.5) / scale
            ) ** 2 <= 1
        else:  # short line, random direction
            a = rng.uniform(0, np.pi)
            length = rng.uniform(3, 6) * scale
            along = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
            across = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
            blob = (np.abs(along) <= length / 2) & (np.abs(across) <= 0.6 * scale)
        img[blob] = rng.uniform(0, 1, size=3)
    # The object: half-size 6-10 px (at 32 px), rotated by up to 15 degrees, anywhere it fits.
    half = rng.uniform(6.0, 10.0) * scale
    cx, cy = rng.uniform(half, size - half, size=2)
    angle = np.deg2rad(rng.uniform(-15, 15))
    u = ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)) / half
    v = (-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)) / half
    mask = _shape_inside(label, u, v)
    # A colour at least 0.45 (RGB distance) from the mean background under the object (up to 50 draws).
    under = img[mask].mean(axis=0) if mask.any() else img.reshape(-1, 3).mean(axis=0)
    for _ in range(50):
        colour = rng.uniform(0, 1, size=3)
        if np.linalg.norm(colour - under) >= 0.45:
            break
    img[mask] = colour
    img = img + rng.normal(0, 0.03, size=img.shape)  # pixel noise
    return np.clip(img, 0, 1), mask, label


@dataclass
class Shapes:
    """Images of :func:`make_shapes`: ``images`` ``(N, 3, S, S)`` float32 in ``[0, 1]``, ``labels`` ``(N,)``
    int64, ``masks`` ``(N, S, S)`` bool (the object's pixels)."""

    images: Tensor
    labels: Tensor
    masks: Tensor


def make_shapes(n: int, seed: int = 0, size: int = 32, start: int = 0) -> Shapes:
    """Generate ``n`` images of ten shapes (:data:`SHAPE_CLASSES`) on cluttered backgrounds, with masks.

    The generator (all lengths for ``size=32``, scaled with ``size``):

    * background: a smooth random colour field (a 4x4 grid of colours in ``[0.15, 0.85]``, interpolated
      bilinearly), with 2-5 distractors in random colours: dots (radius 1 px), blobs (ellipses of radii
      1.5-2.5 px) and short lines (3-6 px long, in any direction);
    * the object: one of ten shapes, half-size 6-10 px (so 12-20 px across), rotated by up to 15 degrees,
      at a random position where it fits, in one random colour at least 0.45 (Euclidean RGB distance) from
      the mean background colour under it; it is drawn over the distractors;
    * pixel noise: Gaussian, standard deviation 0.03, then clipped to ``[0, 1]``.

    The label is uniform over the ten classes. Image ``i`` depends only on ``(seed, start + i)``, so the
    first ``k`` images of a larger call are exactly a smaller call's, whatever ``n``.

    Args:
        n: number of images (>= 0).
        seed: seed of the data set.
        size: image side in pixels (>= 16).
        start: index of the first image.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    images = np.zeros((n, 3, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    labels = np.zeros(n, dtype=np.int64)
    for i in range(n):
        img, mask, label = _render_shape(start + i, seed, size)
        images[i], masks[i], labels[i] = img.transpose(2, 0, 1), mask, label
    return Shapes(torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(masks))


def load_shapes(n_train: int = 8000, n_test: int = 2000, seed: int = 0, size: int = 32) -> Splits:
    """The shapes data set of :func:`make_shapes` as :class:`Splits`, with the object masks.

    Training images are indices ``0 .. n_train-1`` of the generator, test images start at index 1,000,000:
    a smaller training set is the beginning of a larger one, and the test set is the same for every
    ``n_train`` (``n_train=0``: only the test set). Pixels are normalised with fixed constants,
    ``(x - 0.5) / 0.25``, the same for every size.
    """
    if n_train < 0 or n_test < 1:
        raise ValueError(f"n_train ({n_train}) must be >= 0 and n_test ({n_test}) >= 1")
    train = make_shapes(n_train, seed, size)
    test = make_shapes(n_test, seed, size, start=_TEST_OFFSET)
    norm = lambda x: (x - SHAPES_MEAN) / SHAPES_STD  # noqa: E731
    return Splits(
        norm(train.images), train.labels, norm(test.images), test.labels, SHAPE_CLASSES, "shapes",
        mask_train=train.masks, mask_test=test.masks,
    )  # fmt: skip
