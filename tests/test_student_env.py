"""scripts/student_env.py, the `make student` run, without building its environment (that is `make student`).

What is checked here: that it installs exactly the first cell's requirement (read independently, with
packaging's parser), pointed at a local copy; that a chapter may raise nothing and an exercise only the
stubs' NotImplementedError; that a course_lib imported from the working tree is caught; and that the
package copy holds what a build needs and no byte code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from conftest import load_script
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


student = load_script("student_env")
first_cell = load_script("first_cell")


def test_installs_the_first_cells_requirement_from_a_local_copy(tmp_path: Path) -> None:
    colab = Requirement(first_cell.install_requirement())
    local = Requirement(student.local_requirement(tmp_path))
    assert (local.name, local.extras) == (colab.name, colab.extras) == ("course-lib", {"book"})
    assert colab.url.startswith("git+https://github.com/")
    assert local.url == tmp_path.resolve().as_uri()


def test_a_first_cell_without_a_git_url_is_refused(tmp_path: Path) -> None:
    cell = first_cell.FIRST_CELL.replace("course-lib[book] @ git+", "course-lib[book] @ https+")
    with pytest.raises(ValueError, match="git"):
        student.local_requirement(tmp_path, cell)
    with pytest.raises(ValueError, match="no course-lib"):
        first_cell.install_requirement("import sys")


def test_the_environment_is_remade_when_the_first_cell_changes() -> None:
    assert student.cache_key() == student.cache_key()
    assert student.cache_key() != student.cache_key(first_cell.FIRST_CELL.replace("[book]", "[dev]"))


def test_the_package_copy_builds_and_carries_no_byte_code(tmp_path: Path) -> None:
    source = student.copy_package(tmp_path / "src")
    assert (source / "pyproject.toml").read_text() == (ROOT / "pyproject.toml").read_text()
    assert (source / "README.md").exists() and (source / "course_lib" / "__init__.py").exists()
    assert not list(source.rglob("__pycache__")) and not list(source.rglob("*.pyc"))


def _executed(errors: list[str], probe: list[str] | None) -> dict:
    """An executed notebook: one code cell per ename in ``errors``, then the probe cell's output."""
    cells = [nbformat.v4.new_code_cell("x = 1")]
    for ename in errors:
        cell = nbformat.v4.new_code_cell("f()")
        cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue="boom", traceback=[])]
        cells.append(cell)
    probe_cell = nbformat.v4.new_code_cell(student.PROBE_CELL)
    if probe is not None:
        probe_cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(probe) + "\n")]
    cells.append(probe_cell)
    return nbformat.v4.new_notebook(cells=cells)


VENV = Path("/tmp/student/venv")
INSTALLED = [student.PROBE, f"{VENV}/bin/python",
             f"{VENV}/lib/python3.11/site-packages/course_lib/__init__.py"]


def test_a_clean_run_passes() -> None:
    assert student.judge("book", _executed([], INSTALLED), VENV) == []


@pytest.mark.parametrize("ename", ["ModuleNotFoundError", "NameError", "NotImplementedError"])
def test_a_chapter_may_raise_nothing(ename: str) -> None:
    problems = student.judge("book", _executed([ename], INSTALLED), VENV)
    assert problems == [f"cell 1: {ename}: boom"]


def test_an_exercise_may_raise_only_the_stubs_error() -> None:
    assert student.judge("exercises", _executed(["NotImplementedError"] * 3, INSTALLED), VENV) == []
    executed = _executed(["NotImplementedError", "ModuleNotFoundError"], INSTALLED)
    problems = student.judge("exercises", executed, VENV)
    assert problems == ["cell 2: ModuleNotFoundError: boom"]


def test_course_lib_from_the_working_tree_is_caught() -> None:
    from_repo = [student.PROBE, f"{VENV}/bin/python", str(ROOT / "course_lib" / "__init__.py")]
    (problem,) = student.judge("book", _executed([], from_repo), VENV)
    assert "not from the installed package" in problem
    other_python = [student.PROBE, sys.executable, INSTALLED[2]]
    (problem,) = student.judge("book", _executed([], other_python), VENV)
    assert "not the student environment's Python" in problem


def test_a_notebook_that_stopped_early_is_caught() -> None:
    (problem,) = student.judge("book", _executed([], None), VENV)
    assert "did not run to its end" in problem


def test_downloads_are_read_from_pips_log(tmp_path: Path) -> None:
    log = tmp_path / "pip.log"
    log.write_text(
        "Processing /opt/pypi-more/files/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl\n"
        "  Downloading pillow-13.0.0-cp311-cp311-manylinux_2_28_x86_64.whl (7.1 MB)\n"
        "  Using cached filelock-4.3.1-py3-none-any.whl (244 kB)\n"
    )
    assert student.downloads(log) == ["pillow-13.0.0-cp311-cp311-manylinux_2_28_x86_64.whl (7.1 MB)"]
    assert student.megabytes("pillow.whl (7.1 MB)") == 7.1
    assert student.megabytes("filelock.whl (244 kB)") == pytest.approx(0.244)
    assert student.megabytes("odd") == 0.0


def test_what_a_student_does_not_have_is_left_out(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    env = student.student_environ(tmp_path)
    assert not {"PYTHONPATH", "COURSE_DEVICE", "MPLBACKEND"} & set(env)
    assert env["JUPYTER_PATH"] == str(tmp_path)


def test_notebooks_are_the_chapters_and_the_exercises() -> None:
    found = student.notebooks([])
    assert found == sorted(ROOT.glob("book/*.ipynb")) + sorted(ROOT.glob("exercises/*.ipynb"))
    chapter = "book/05_vision_transformer.ipynb"
    assert student.notebooks([chapter]) == [ROOT / chapter]
    with pytest.raises(SystemExit, match="not a chapter"):
        student.notebooks(["solutions/01_self_attention.ipynb"])


def test_the_longest_stored_run_is_known(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"), nbformat.v4.new_code_cell("2")])
    nb.cells[0].metadata["execution"] = {"iopub.execute_input": "2026-11-26T11:04:07.263028Z",
                                         "shell.execute_reply": "2026-11-26T11:04:08.000000Z"}
    nb.cells[1].metadata["execution"] = {"iopub.execute_input": "2026-11-26T11:04:09.000000Z",
                                         "shell.execute_reply": "2026-11-26T11:04:59.763028Z"}
    nbformat.write(nb, tmp_path / "a.ipynb")
    assert student.stored_seconds(tmp_path / "a.ipynb") == pytest.approx(52.5)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "b.ipynb")
    assert student.stored_seconds(tmp_path / "b.ipynb") == 0.0


# ---- torch as Colab has it: preinstalled, here hard-linked from .venv --------------------------------------


def _pip_requires(name: str) -> set[str]:
    """What pip (not the code under test) says ``name`` requires in this environment, canonical names."""
    import subprocess

    shown = subprocess.run([sys.executable, "-m", "pip", "show", name], capture_output=True, text=True,
                           check=True).stdout
    (line,) = [line for line in shown.splitlines() if line.startswith("Requires:")]
    return {student.canonical(n.strip()) for n in line.split(":", 1)[1].split(",") if n.strip()}


def test_the_preinstalled_set_is_torch_torchvision_and_all_they_require() -> None:
    files = student.preinstalled_files()
    assert {"torch", "torchvision"} <= set(files)
    for name in ("torch", "torchvision"):
        assert _pip_requires(name) <= set(files), name
    assert "torch/__init__.py" in files["torch"]
    assert any(f.endswith(".dist-info/RECORD") for f in files["torch"])
    assert not [f for names in files.values() for f in names if f.startswith("..")]  # console scripts


def test_torch_is_linked_into_a_new_environment_without_a_copy(tmp_path: Path) -> None:
    import os
    import subprocess

    source = Path(sys.prefix)
    if os.stat(tmp_path).st_dev != os.stat(source).st_dev:
        pytest.skip("the temporary folder is on another file system than this environment")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python, log = venv / "bin" / "python", tmp_path / "pip.log"
    linked, how = student.preinstall(python, log, source)
    assert linked > 1000 and how.startswith("hard-linked"), how
    dest = student.site_packages(python)
    init = dest / "torch" / "__init__.py"
    assert init.samefile(Path(__import__("torch").__file__))  # the same file: no second copy on disk
    probe = "import torch, torchvision; print(torch.__file__); print(float(torch.ones(3).sum()))"
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True,
                         env={"PATH": os.environ["PATH"], "PYTHONNOUSERSITE": "1"}).stdout.split()
    assert out == [str(init), "3.0"]
    init.unlink()  # uninstalling on one side leaves the other whole
    assert Path(__import__("torch").__file__).exists()


def test_without_a_source_environment_pip_installs_torch(tmp_path: Path) -> None:
    log = tmp_path / "pip.log"
    log.write_text("")
    linked, how = student.preinstall(tmp_path / "venv" / "bin" / "python", log, tmp_path / "nowhere")
    assert (linked, how) == (0, "not linked from nowhere: no such environment")
    assert "nothing linked" in log.read_text()
