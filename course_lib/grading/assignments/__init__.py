"""The registry of assignments: every module ``aNN_<name>.py`` here defines ``ASSIGNMENT``."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ..spec import Assignment

__all__ = ["all_assignments", "get_assignment"]


@cache
def all_assignments() -> tuple[Assignment, ...]:
    """Every assignment, in the order of their module names (a01, a02...)."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not (info.name.startswith("a") and info.name[1:3].isdigit()):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        assignment = getattr(module, "ASSIGNMENT", None)
        if not isinstance(assignment, Assignment):
            raise TypeError(f"{module.__name__} must define ASSIGNMENT = Assignment(...)")
        found.append(assignment)
    names = [a.name for a in found]
    if len(set(names)) != len(names):
        raise ValueError(f"assignment names must be unique, got {names}")
    return tuple(found)


def get_assignment(name: str) -> Assignment:
    """Look an assignment up by name (``"01_self_attention"``), number (``"1"``, ``"01"``) or
    notebook file name (``"01_self_attention.ipynb"``)."""
    key = str(name).strip()
    if key.endswith(".ipynb"):
        key = key[: -len(".ipynb")]
    key = key.rsplit("/", 1)[-1]
    everything = all_assignments()
    for a in everything:
        if a.name == key:
            return a
    if key.isdigit():
        for a in everything:
            if a.name.split("_", 1)[0].isdigit() and int(a.name.split("_", 1)[0]) == int(key):
                return a
    raise KeyError(f"unknown assignment {name!r}; known: {', '.join(a.name for a in everything)}")
