"""course_lib.runtime: the device, the seeds and the one line every notebook's first cell prints.

References: pyproject.toml read by tomllib (the version a built package carries), torch's own
``__version__`` and ``cuda.is_available``, and Python's and NumPy's generators re-seeded by hand.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

import course_lib
from course_lib import runtime

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_is_the_packaged_one() -> None:
    assert course_lib.__version__ == PYPROJECT["project"]["version"]


def test_setup_prints_one_line_with_versions_and_device(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    device = runtime.setup(seed=0)
    out = capsys.readouterr().out
    assert device == torch.device("cpu")
    assert out.count("\n") == 1 and out.endswith("\n")
    assert out == f"course-lib {PYPROJECT['project']['version']} | torch {torch.__version__} | device: cpu\n"


def test_setup_can_be_quiet(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    runtime.setup(verbose=False)
    assert capsys.readouterr().out == ""


def test_cuda_is_picked_when_present_and_named(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    device = runtime.pick_device()
    assert device == torch.device("cuda")
    assert re.search(r"\| device: cuda \(Tesla T4\)$", runtime.describe(device))


def test_cpu_without_a_gpu_and_the_environment_variable_wins(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.pick_device() == torch.device("cpu")
    assert runtime.pick_device("meta") == torch.device("meta")


def test_setup_seeds_python_numpy_and_torch(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    runtime.setup(seed=7, verbose=False)
    got = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(7)
    np.random.seed(7)
    gen = torch.Generator().manual_seed(7)
    assert got == (random.random(), np.random.rand(), torch.rand(1, generator=gen).item())


@pytest.mark.parametrize("colab", [False, True])
def test_on_colab_reads_the_loaded_modules(colab: bool, monkeypatch) -> None:
    import sys
    import types

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert runtime.on_colab() is colab
