"""Shared test set-up: deterministic seeds and one Hypothesis profile for the whole suite.

Property tests run derandomized by default so that CI is reproducible; set
``HYPOTHESIS_PROFILE=explore`` to draw fresh random examples (and more of them).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

settings.register_profile("course", deadline=None, max_examples=20, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same torch RNG state."""
    torch.manual_seed(0)


def tol(dtype: torch.dtype) -> dict:
    """``assert_close`` tolerances of the issue: 1e-6 in float32, 1e-12 in float64."""
    eps = 1e-12 if dtype == torch.float64 else 1e-6
    return {"atol": eps, "rtol": eps}


def assert_same_function(ours: torch.nn.Module, ref: torch.nn.Module, x: torch.Tensor) -> None:
    """Eval-mode outputs within 1e-5 and input gradients within 1e-4 (issue 3's float32 bounds).

    ``x`` must have ``requires_grad=True``.
    """
    ours.eval()
    ref.eval()
    a = ref(x)
    b = ours(x)
    assert (a - b).abs().max().item() <= 1e-5
    (ga,) = torch.autograd.grad(a.square().sum(), x)
    (gb,) = torch.autograd.grad(b.square().sum(), x)
    assert (ga - gb).abs().max().item() <= 1e-4


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (training tests: faster and reproducible on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load_script(name: str):
    """Import ``scripts/<name>.py`` under a private module name (scripts/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_course_scripts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
