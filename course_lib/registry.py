"""Named model configurations (``'vit_base_patch16_224'``, ``'swin_cifar'``...): look-up with overrides."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, Mapping, TypeVar

T = TypeVar("T")

__all__ = ["named_config"]


def named_config(registry: Mapping[str, T], family: str, name: str, overrides: Mapping[str, Any]) -> T:
    """The dataclass config ``registry[name]`` with ``overrides`` applied.

    Raises ``ValueError`` naming the unknown model (and the known ones) or the unknown options.
    """
    if name not in registry:
        raise ValueError(f"unknown {family} {name!r}; known: {', '.join(registry)}")
    unknown = set(overrides) - set(asdict(registry[name]))
    if unknown:
        raise ValueError(f"unknown {family} option(s) {sorted(unknown)}")
    return replace(registry[name], **overrides)
