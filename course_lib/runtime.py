"""Where the code runs: device choice and seeds, shared by every chapter and exercise."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["setup", "pick_device", "seed_everything", "on_colab", "describe"]


def on_colab() -> bool:
    """True inside a Google Colab runtime."""
    import sys

    return "google.colab" in sys.modules


def pick_device(prefer: str | None = None) -> torch.device:
    """``cuda`` when a GPU is visible (Colab with a GPU runtime), else ``cpu``.

    ``prefer`` (or the environment variable ``COURSE_DEVICE``) forces a device, e.g. ``"cpu"``.
    """
    choice = prefer or os.environ.get("COURSE_DEVICE")
    if choice:
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and all GPUs) so that a re-run reproduces its outputs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def describe(device: torch.device) -> str:
    """One line saying what runs the notebook: course-lib's and torch's versions and the device.

    e.g. ``course-lib 0.1.0 | torch 2.14.1+cu130 | device: cpu`` or ``... | device: cuda (NVIDIA T4)``.
    """
    from course_lib import __version__

    where = str(device)
    if device.type == "cuda":
        where += f" ({torch.cuda.get_device_name(device)})"
    return f"course-lib {__version__} | torch {torch.__version__} | device: {where}"


def setup(seed: int = 0, prefer: str | None = None, verbose: bool = True) -> torch.device:
    """Seed everything and return the device to use. Called in every notebook's first cell.

    With ``verbose`` (the default) it prints :func:`describe`'s line, so a notebook's first output says
    which course-lib, which torch and which device it ran with.
    """
    seed_everything(seed)
    device = pick_device(prefer)
    if verbose:
        print(describe(device))
    return device
