"""Small helpers for writing a part's ``cases(rng)``: every random draw goes through ``rng``."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["randn", "randint", "choice", "bool_mask", "integer_valued"]


def randn(rng: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    """Standard normal float32 ``shape`` times ``scale``."""
    return torch.randn(shape, generator=rng) * scale


def randint(rng: torch.Generator, low: int, high: int) -> int:
    """A Python int in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def choice(rng: torch.Generator, options: list):
    """One of ``options``."""
    return options[randint(rng, 0, len(options) - 1)]


def bool_mask(rng: torch.Generator, *shape: int, p_masked: float = 0.3) -> Tensor:
    """A boolean mask ``(..., N_q, N_k)``, ``True`` = may attend, with at least one ``True`` per row."""
    mask = torch.rand(shape, generator=rng) >= p_masked
    keep = torch.randint(0, shape[-1], shape[:-1], generator=rng)
    mask.scatter_(-1, keep[..., None], True)
    return mask


def integer_valued(rng: torch.Generator, *shape: int, high: int = 12) -> Tensor:
    """float32 with integer values in ``[-high, high]``: sums and products of them are exact, so two
    correct implementations agree to the last bit even where the values are huge."""
    return torch.randint(-high, high + 1, shape, generator=rng).float()
