"""Noticing when a graded function calls the reference implementation of what it should implement.

While a graded call runs, a profile hook (:func:`sys.setprofile`) watches every Python and C call:

* a Python function or method is recognised by its code's file and qualified name, so an alias
  (``from course_lib.attention import scaled_dot_product_attention as f``) or a reloaded module is
  still caught;
* a builtin (``torch.nn.functional.scaled_dot_product_attention``) by identity;
* a ``Tensor`` method (``torch.Tensor.softmax``) by its name on a tensor;
* a class (``torch.nn.MultiheadAttention``) by any of its own non-dunder methods (``forward``...).

This is a tripwire for honest mistakes and casual shortcuts, not a sandbox: the expected answers
never come from the student's process, so the worst a determined student can do is hide a call.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from typing import Any, Iterable, Optional

import torch

__all__ = ["Tripwire", "resolve", "TAMPERED"]

#: Why a call whose tracing was switched off earns no credit.
TAMPERED = "switched off the grader's call tracing"


def resolve(dotted: str) -> Optional[Any]:
    """Import ``a.b.c.d`` as deep a module as exists, then follow attributes; ``None`` if absent."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _code_key(fn: Any) -> Optional[tuple[str, str]]:
    fn = inspect.unwrap(fn) if callable(fn) else fn
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    return (code.co_filename, getattr(code, "co_qualname", code.co_name))


class Tripwire:
    """Watch graded calls for the callables named in ``forbidden`` (dotted names).

    Usage::

        wire = Tripwire(["course_lib.attention.scaled_dot_product_attention"])
        with wire:
            out = student_fn(q, k, v)
        if wire.hit: ...  # wire.hit is the dotted name that was reached
    """

    def __init__(self, forbidden: Iterable[str]) -> None:
        self.code: dict[tuple[str, str], str] = {}
        self.builtins: dict[int, tuple[Any, str]] = {}
        self.methods: dict[str, str] = {}
        for name in forbidden:
            obj = resolve(name)
            if obj is not None:
                self._add(obj, name)
        self.hit: Optional[str] = None
        self.tampered = False
        self._previous = None

    def _add(self, obj: Any, name: str) -> None:
        if isinstance(obj, type):
            for attr, member in vars(obj).items():
                if attr.startswith("__"):
                    continue
                member = getattr(member, "__func__", member)
                key = _code_key(member)
                if key:
                    self.code[key] = name
            return
        if isinstance(obj, types.MethodDescriptorType) or type(obj).__name__ in (
            "method_descriptor",
            "wrapper_descriptor",
        ):
            self.methods[obj.__name__] = name
            return
        key = _code_key(obj)
        if key:
            self.code[key] = name
        else:
            self.builtins[id(obj)] = (obj, name)

    @property
    def empty(self) -> bool:
        return not (self.code or self.builtins or self.methods)

    def _hook(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if self.hit is not None:
            return
        if event == "call":
            code = frame.f_code
            name = self.code.get((code.co_filename, getattr(code, "co_qualname", code.co_name)))
            if name:
                self.hit = name
        elif event == "c_call":
            found = self.builtins.get(id(arg))
            if found is not None and found[0] is arg:
                self.hit = found[1]
            elif self.methods:
                method = self.methods.get(getattr(arg, "__name__", ""))
                if method and isinstance(getattr(arg, "__self__", None), torch.Tensor):
                    self.hit = method

    def verdict(self) -> Optional[str]:
        """After a call: why it earns no credit (``"calls <name>"``, or the hook was switched off), or
        ``None``. The one rule that both ``check()`` and the batch grader apply."""
        if self.hit:
            return f"calls {self.hit}"
        if self.tampered:
            return TAMPERED
        return None

    def __enter__(self) -> Tripwire:
        self.hit = None
        self.tampered = False
        if not self.empty:
            self._previous = sys.getprofile()
            sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.empty:
            return
        current = sys.getprofile()
        sys.setprofile(self._previous)
        # A function that removed or replaced the hook could have hidden a call.
        if current is None or getattr(current, "__self__", None) is not self:
            self.tampered = True
