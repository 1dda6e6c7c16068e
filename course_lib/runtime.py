"""Where the code runs: device choice and seeds, shared by every chapter and exercise."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["setup", "pick_device", "seed_everything", "on_colab"]


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


def setup(seed: int = 0, prefer: str | None = None) -> torch.device:
    """Seed everything and return the device to use. Called in every notebook's first cell."""
    seed_everything(seed)
    return pick_device(prefer)
