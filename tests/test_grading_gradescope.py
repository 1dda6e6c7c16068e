"""``course-lib autograder`` builds Gradescope's autograder.zip; its ``run_autograder``, replayed against a
fake ``/autograder`` tree (``$AUTOGRADER_ROOT``), grades what a student uploads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from course_lib.instructor.cli import main

ROOT = Path(__file__).resolve().parents[1]

# Gradescope's documented fields of results.json (https://gradescope-autograders.readthedocs.io,
# "Autograder specifications": top level and per test).
TOP_FIELDS = {
    "score",
    "execution_time",
    "output",
    "output_format",
    "test_output_format",
    "test_name_format",
    "visibility",
    "stdout_visibility",
    "extra_data",
    "tests",
    "leaderboard",
}
TEST_FIELDS = {
    "score",
    "max_score",
    "status",
    "name",
    "name_format",
    "number",
    "output",
    "output_format",
    "tags",
    "visibility",
    "extra_data",
}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def validate_results(results: dict) -> None:
    """Check ``results`` against Gradescope's documented format."""
    assert isinstance(results, dict) and set(results) <= TOP_FIELDS, set(results) - TOP_FIELDS
    assert isinstance(results.get("tests", []), list)
    assert "score" in results or all("score" in t for t in results["tests"])
    if "score" in results:
        assert isinstance(results["score"], (int, float))
    assert isinstance(results.get("output", ""), str)
    for key in ("visibility", "stdout_visibility"):
        if key in results:
            assert results[key] in VISIBILITY
    for t in results["tests"]:
        assert set(t) <= TEST_FIELDS, set(t) - TEST_FIELDS
        assert isinstance(t["score"], (int, float)) and isinstance(t["max_score"], (int, float))
        assert 0 <= t["score"] <= t["max_score"]
        assert t.get("status", "passed") in ("passed", "failed")
        assert isinstance(t.get("name", ""), str) and isinstance(t.get("output", ""), str)
        assert t.get("visibility", "visible") in VISIBILITY
    if "score" in results and results["tests"]:
        assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bundle")
    seed = tmp / "seed.txt"
    seed.write_text("gradescope-secret\n")
    out = tmp / "autograder.zip"
    assert main(["autograder", "--assignment", "01", "--out", str(out), "--seed-file", str(seed)]) == 0
    return out


def test_bundle_holds_what_gradescope_expects(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        config = json.loads(zf.read("autograder.json"))
        zf.extractall(tmp_path)
    assert {
        "setup.sh",
        "run_autograder",
        "autograder.json",
        "requirements.txt",
        "constraints.txt",
        "seed",
    } <= names
    assert (
        "course_lib/grading/gradescope.py" in names and "course_lib/grading/assignments/__init__.py" in names
    )
    assert not any("__pycache__" in n for n in names)
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    assert config["assignment"] == "01_self_attention"
    setup = (tmp_path / "setup.sh").read_text()
    assert "torch==" in setup and "download.pytorch.org/whl/cpu" in setup
    for script in ("setup.sh", "run_autograder"):
        assert subprocess.run(["bash", "-n", str(tmp_path / script)]).returncode == 0
    assert "torch" in (tmp_path / "requirements.txt").read_text()


def _replay(bundle: Path, root: Path, files: dict[str, bytes]) -> subprocess.Popen:
    """The container's layout in ``root``: the zip in source/, the upload in submission/."""
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    for name, data in files.items():
        (root / "submission" / name).write_bytes(data)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    env = {
        **os.environ,
        "AUTOGRADER_ROOT": str(root),
        "COURSE_LIB_PYTHON": sys.executable,
        "PYTHONPATH": "",  # the bundle's own copy of course_lib, nothing else
    }
    return subprocess.Popen(
        ["bash", str(root / "run_autograder")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_run_autograder_in_a_fake_container(bundle: Path, tmp_path: Path) -> None:
    uploads = {
        "solution": {
            "01_self_attention.ipynb": (ROOT / "solutions" / "01_self_attention.ipynb").read_bytes()
        },
        "exercise": {
            "01_self_attention.ipynb": (ROOT / "exercises" / "01_self_attention.ipynb").read_bytes()
        },
        "broken": {"01_self_attention.ipynb": b"my homework, sorry it is not a notebook"},
        "no_notebook": {"answers.py": b"print('hello')\n"},
    }
    results = {}
    for start in range(0, len(uploads), 2):  # two at a time: the machine has two cores
        running = {
            name: _replay(bundle, tmp_path / name, files)
            for name, files in list(uploads.items())[start : start + 2]
        }
        for name, proc in running.items():
            log = proc.communicate(timeout=300)[0].decode(errors="replace")
            assert proc.returncode == 0, log[-3000:]
            path = tmp_path / name / "results" / "results.json"
            assert path.exists(), log[-3000:]
            results[name] = json.loads(path.read_text())
    for r in results.values():
        validate_results(r)
    assert results["solution"]["score"] == 15
    assert all(t["status"] == "passed" for t in results["solution"]["tests"])
    assert results["exercise"]["score"] == 0
    assert "not implemented" in json.dumps(results["exercise"]["tests"])
    assert results["broken"]["score"] == 0 and "not valid JSON" in results["broken"]["output"]
    assert results["no_notebook"]["score"] == 0
    assert (
        "No Jupyter notebook (.ipynb) in your submission (found: answers.py)"
        in results["no_notebook"]["output"]
    )
    # the secret shipped in the bundle seeds the hidden tests, shows up nowhere, and is deleted before
    # the notebook runs (without namespaces, as in Docker, the notebook could read the file)
    assert "gradescope-secret" not in json.dumps(results)
    assert not (tmp_path / "solution" / "source" / "seed").exists()
