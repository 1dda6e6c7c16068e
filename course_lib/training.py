"""A small, readable training loop for image classifiers on tensors held in memory.

Nothing is hidden (in the spirit of nanoGPT): one optimiser (AdamW), one learning-rate schedule (linear
warm-up then cosine decay to zero, computed by :func:`cosine_lr`), cross-entropy, and a per-epoch record of
loss, accuracy and wall time in a :class:`History`. The data sets of the course are small (a few thousand
images), so they are moved to the device once and batches are sliced from them, without a ``DataLoader``.

Determinism: :func:`fit` seeds torch with ``seed`` before it starts and shuffles with its own generator, so
the same model initialisation, data, seed and thread count reproduce the same history.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["History", "fit", "evaluate", "cosine_lr", "format_seconds", "random_shift", "RandomShift"]


@dataclass
class History:
    """What happened during :func:`fit`, one entry per epoch.

    Attributes:
        train_loss: mean cross-entropy over the epoch's training batches.
        train_acc: accuracy on the training batches seen during the epoch (in ``[0, 1]``).
        test_loss, test_acc: loss and accuracy on the test set after the epoch (eval mode).
        lr: learning rate at the end of the epoch.
        epoch_time: wall time of each epoch in seconds (training and evaluation).
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    @property
    def total_time(self) -> float:
        """Seconds spent in :func:`fit` over all epochs."""
        return float(sum(self.epoch_time))

    @property
    def final_test_acc(self) -> float:
        return self.test_acc[-1] if self.test_acc else float("nan")

    @property
    def best_test_acc(self) -> float:
        return max(self.test_acc) if self.test_acc else float("nan")

    def summary(self) -> str:
        """One line: epochs, final losses and accuracies, total time (as ``12.3 s``)."""
        line = f"{self.epochs} epochs: train loss {self.train_loss[-1]:.4f}, acc {self.train_acc[-1]:.4f}"
        if self.test_acc:
            line += f"; test loss {self.test_loss[-1]:.4f}, acc {self.test_acc[-1]:.4f}"
        return f"{line}, time {format_seconds(self.total_time)}"


def format_seconds(seconds: float) -> str:
    """``0.0123 -> '12.3 ms'``, ``4.56 -> '4.6 s'``: always digits, a dot, digits and a unit, the form the
    book's nbval sanitize file replaces (timings differ from run to run)."""
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.1f} s"


def cosine_lr(
    step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, min_lr: float = 0.0
) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up over ``warmup_steps``, then cosine decay from
    ``base_lr`` to ``min_lr`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def random_shift(x: Tensor, max_shift: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """Shift every image of ``x`` ``(B, C, H, W)`` by its own random offset of ``-max_shift .. max_shift``
    pixels in each direction (the data augmentation of the digits' ViT recipe). The border is repeated into
    the uncovered strip (``replicate`` padding), so no new edge appears. Returns ``(B, C, H, W)``."""
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        return x
    B, _, H, W = x.shape
    m = max_shift
    padded = F.pad(x, (m, m, m, m), mode="replicate")  # (B, C, H + 2m, W + 2m)
    offsets = torch.randint(0, 2 * m + 1, (B, 2), generator=generator).tolist()
    return torch.stack([padded[b, :, dy : dy + H, dx : dx + W] for b, (dy, dx) in enumerate(offsets)])


class RandomShift:
    """``augment`` for :func:`fit`: :func:`random_shift` with its own seeded generator (reproducible)."""

    def __init__(self, max_shift: int, seed: int = 0) -> None:
        self.max_shift = max_shift
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: Tensor) -> Tensor:
        return random_shift(x, self.max_shift, self.generator)

    def __repr__(self) -> str:
        return f"RandomShift({self.max_shift})"


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: tuple[Tensor, Tensor],
    batch_size: int = 1024,
    device: Optional[Union[str, torch.device]] = None,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data = (x, y)``, in eval mode.

    ``x`` is ``(N, C, H, W)`` (or whatever the model takes), ``y`` ``(N,)`` class indices. Returns
    ``(loss, accuracy)`` with accuracy in ``[0, 1]``. The model's train/eval mode is restored afterwards.
    """
    x, y = data
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]} labels")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        logits = model(xb)
        total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(dim=-1) == yb).sum().item()
    model.train(was_training)
    n = max(1, len(y))
    return total_loss / n, correct / n


def fit(
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    test: Optional[tuple[Tensor, Tensor]] = None,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    device: Optional[Union[str, torch.device]] = None,
    seed: int = 0,
    weight_decay: float = 0.05,
    warmup_epochs: float = 0.0,
    label_smoothing: float = 0.0,
    grad_clip: Optional[float] = None,
    verbose: bool = False,
    steps: Optional[int] = None,
    augment: Optional[Callable[[Tensor], Tensor]] = None,
) -> History:
    """Train ``model`` with AdamW and a cosine schedule; evaluate on ``test`` after every epoch.

    Args:
        model: any classifier mapping ``(B, C, H, W)`` to logits ``(B, num_classes)``; trained in place.
        train, test: ``(x, y)`` tensors; ``x`` ``(N, C, H, W)``, ``y`` ``(N,)`` int64. ``test=None`` skips the
            evaluation after each epoch (``History.test_*`` stay empty): faster for many short epochs on a
            small training set; call :func:`evaluate` at the end instead.
        epochs: passes over the training set (ignored when ``steps`` is given).
        lr: peak learning rate.
        batch_size: examples per optimiser step (the last, smaller batch of an epoch is kept).
        device: where to train; defaults to the model's device. Model and data are moved there.
        seed: seeds torch (dropout, drop path) and the shuffling generator.
        weight_decay: AdamW's decoupled weight decay, applied to weights of rank >= 2 only (not to biases,
            norms, class tokens or position embeddings - the usual ViT recipe).
        warmup_epochs: linear warm-up length, in epochs (may be fractional).
        label_smoothing: passed to the cross-entropy.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        verbose: print :meth:`History` lines per epoch.
        steps: train for exactly this many optimiser steps, whatever the size of the training set (the
            last epoch may be partial; the schedule ends at ``steps``). ``None``: ``epochs`` full passes,
            that is ``epochs * ceil(N / batch_size)`` steps.
        augment: a function applied to every training batch ``(B, C, H, W)`` before the forward pass, e.g.
            :class:`RandomShift`; evaluation never augments.

    Returns:
        The :class:`History` of the run.
    """
    x_train, y_train = train
    if x_train.shape[0] != y_train.shape[0]:
        raise ValueError(f"x_train has {x_train.shape[0]} examples but y_train has {y_train.shape[0]} labels")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be >= 1")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)  # on the CPU: the same order on every device
    model.to(device)
    x_train, y_train = x_train.to(device), y_train.to(device)

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    n = len(y_train)
    steps_per_epoch = math.ceil(n / batch_size)
    if steps is not None:
        epochs = math.ceil(steps / steps_per_epoch)
    total_steps = steps if steps is not None else epochs * steps_per_epoch
    warmup_steps = round(warmup_epochs * steps_per_epoch)

    history = History()
    step = 0
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(0, n, batch_size):
            if step == total_steps:
                break
            idx = order[i : i + batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if augment is not None:
                xb = augment(xb)
            current_lr = cosine_lr(step, total_steps, lr, warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = current_lr
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            step += 1
            loss_sum += loss.item() * len(yb)
            correct += (logits.argmax(dim=-1) == yb).sum().item()
            seen += len(yb)
        history.train_loss.append(loss_sum / seen)
        history.train_acc.append(correct / seen)
        if test is not None:
            test_loss, test_acc = evaluate(model, test, device=device)
            history.test_loss.append(test_loss)
            history.test_acc.append(test_acc)
        history.lr.append(current_lr)
        history.epoch_time.append(time.perf_counter() - start)
        if verbose:
            line = (
                f"epoch {epoch + 1:3d}/{epochs}: train loss {loss_sum / seen:.4f}, acc {correct / seen:.4f}"
            )
            if test is not None:
                line += f" | test loss {test_loss:.4f}, acc {test_acc:.4f}"
            print(f"{line} | {format_seconds(history.epoch_time[-1])}")
    model.eval()
    return history
