"""Run every chapter and exercise notebook the way a student gets them: a fresh environment, course_lib
installed from a built copy (not editable) with exactly what the notebooks' first cell installs on Colab.

What it does (``make student``):

1. A virtual environment under ``_build/student-env/venv`` made with this Python. Torch and torchvision
   come first, as Colab has them preinstalled: hard links to the files of the installed torch,
   torchvision and what they require (:func:`preinstalled_files`) in the course's own ``.venv``, so the
   5 GB of a CUDA build of torch are not written to disk a second time (a CI machine once ran out of
   disk doing that). Without that ``.venv`` (or on another file system), pip installs them, pinned by
   ``requirements/constraints.txt`` (torch lies on this machine's disk). The environment is kept for the
   next run while ``pyproject.toml``, the constraints, the first cell's requirement and the Python
   version stay the same; otherwise it is made again.
2. course_lib is copied out of the working tree and installed from that copy, as a built package, with
   the requirement of ``scripts/first_cell.py`` (``course-lib[book] @ git+...``), its URL pointed at the
   copy. In a kept environment only course_lib itself is reinstalled.
3. ``book/*.ipynb`` and ``exercises/*.ipynb`` are copied to a temporary folder outside the repository and
   executed there with nbclient, in a kernel of that environment, with no ``PYTHONPATH``,
   ``MPLBACKEND`` or ``COURSE_DEVICE`` (a student sets none). A last cell appended to each copy checks
   that course_lib was imported from the environment, not from the working tree.
4. Chapters must run without an error; an exercise may raise only ``NotImplementedError`` (its stubs).
   Prints each notebook's time and writes the table to ``_build/student-env/report.md``.

Usage: ``python3 scripts/student_env.py [--jobs 2] [--fresh] [NOTEBOOK ...]``. Only the standard library
is needed to start it; the notebooks run with nbclient, the front end Colab's Jupyter provides
(:data:`FRONT_END`, installed after the first cell's requirement and ``pip check``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from first_cell import FIRST_CELL, install_requirement  # noqa: E402

CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
PROBE = "STUDENT-ENV-PROBE"
PROBE_CELL = f"import sys, course_lib\nprint({PROBE!r}, sys.executable, course_lib.__file__, sep='\\n')"
ALLOWED_IN_EXERCISES = {"NotImplementedError"}
# What a student's session does not have; the Makefile exports some of these for the other checks.
DROPPED_ENV = ("PYTHONPATH", "MPLBACKEND", "COURSE_DEVICE", "PYTHONSTARTUP", "VIRTUAL_ENV", "JUPYTER_PATH",
               "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR")


# ---- the environment -----------------------------------------------------------------------------------


def local_requirement(source: Path, cell: str = FIRST_CELL) -> str:
    """The first cell's requirement with its ``git+`` URL replaced by the local copy ``source``.

    ``"course-lib[book] @ git+https://...@main"`` -> ``"course-lib[book] @ file:///tmp/.../src"``.
    """
    name, sep, url = install_requirement(cell).partition(" @ ")
    if not sep or not url.startswith("git+"):
        raise ValueError(f"the first cell's requirement is not 'NAME[EXTRAS] @ git+URL': {name}{sep}{url}")
    return f"{name} @ {source.resolve().as_uri()}"


# The notebook front end that starts the kernels and runs the cells: Colab's own Jupyter provides it, the
# first cell does not install it, and course-lib does not depend on it. Installed after `pip check`.
FRONT_END = ("nbclient",)


def cache_key(cell: str = FIRST_CELL) -> str:
    """What the kept environment depends on: the package's metadata, the pins, the first cell, Python."""
    digest = hashlib.sha256()
    for part in ((ROOT / "pyproject.toml").read_bytes(), CONSTRAINTS.read_bytes(),
                 install_requirement(cell).encode(), sys.version.encode(), " ".join(FRONT_END).encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def copy_package(dest: Path) -> Path:
    """Copy what building course-lib needs (pyproject.toml, README.md, course_lib/) into ``dest``."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "course_lib", dest / "course_lib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return dest


def pip(python: Path, args: list[str], log: Path) -> None:
    """``python -m pip ARGS``, its output appended to ``log``; fails with the log's tail."""
    with log.open("a") as out:
        out.write(f"\n$ pip {' '.join(args)}\n")
        out.flush()
        quiet = ["--progress-bar", "off"] if args[0] == "install" else []
        done = subprocess.run([str(python), "-m", "pip", *args, *quiet], stdout=out,
                              stderr=subprocess.STDOUT, cwd=log.parent)
    if done.returncode:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise SystemExit(f"student-env: pip {' '.join(args[:2])} failed (full log: {log}):\n{tail}")


def downloads(log: Path) -> list[str]:
    """What pip fetched over the network, from its log: ``["pillow-13.0.0-...whl (7.1 MB)", ...]``.

    Files taken from this machine's disk show as ``Processing /opt/...`` instead, and files from pip's
    cache as ``Using cached ...``.
    """
    return re.findall(r"^\s*Downloading (\S+(?: \([^)]*\))?)", log.read_text(), re.MULTILINE)


def megabytes(download: str) -> float:
    """The size pip printed for one download: ``"x.whl (7.1 MB)"`` -> 7.1, ``"(244 kB)"`` -> 0.244."""
    found = re.search(r"\(([\d.]+) (kB|MB|GB)\)$", download)
    if not found:
        return 0.0
    return float(found.group(1)) * {"kB": 1e-3, "MB": 1.0, "GB": 1e3}[found.group(2)]


# What Colab has installed before the first cell runs, and where this machine has it installed already.
PREINSTALLED = ("torch", "torchvision")
SOURCE_VENV = ROOT / ".venv"


def site_packages(python: Path) -> Path:
    """The ``site-packages`` folder of the environment whose interpreter is ``python``."""
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them: ``"Typing_Extensions"`` -> ``"typing-extensions"``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def preinstalled_files(names: tuple[str, ...] = PREINSTALLED) -> dict[str, list[str]]:
    """Run in the source environment: for the distributions ``names`` and everything they require there
    (markers evaluated, extras followed), each one's files relative to its ``site-packages``, from its
    ``RECORD``. Files a ``RECORD`` places outside ``site-packages`` (console scripts) are left out.

    ``{"torch": ["torch/__init__.py", ..., "torch-2.14.1.dist-info/RECORD"], "nvidia-cublas": [...], ...}``
    """
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    seen: set[tuple[str, tuple[str, ...]]] = set()
    files: dict[str, list[str]] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(name, ()) for name in names]
    while todo:
        name, extras = todo.pop()
        if (canonical(name), extras) in seen:
            continue
        seen.add((canonical(name), extras))
        dist = metadata.distribution(name)
        files[canonical(name)] = sorted(str(f) for f in dist.files or [] if not str(f).startswith(".."))
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or ("",)):
                todo.append((req.name, tuple(sorted(req.extras))))
    return files


def preinstall(python: Path, log: Path, source: Path = SOURCE_VENV) -> tuple[int, str]:
    """Hard-link torch, torchvision and what they require from ``source`` into ``python``'s environment.

    What the new environment has already (pip, setuptools) is left to pip. Returns the number of files
    linked and what was done; 0 and why if ``source`` cannot serve (missing, another Python, no torch,
    another file system): then nothing is left half-linked and the caller installs with pip. A hard link
    is the file itself, not a pointer into ``source``: pip may uninstall or upgrade a package on either
    side alone.
    """
    source_python = source / "bin" / "python"
    with log.open("a") as out:
        def skip(why: str) -> tuple[int, str]:
            out.write(f"\npreinstall: nothing linked from {source}: {why}\n")
            return 0, f"not linked from {source.name}: {why}"

        if not source_python.exists():
            return skip("no such environment")
        version = "import sys; print(*sys.version_info[:2], sep='.')"
        versions = {subprocess.run([str(p), "-c", version], capture_output=True, text=True).stdout.strip()
                    for p in (python, source_python)}
        if len(versions) != 1:
            return skip(f"another Python version ({' / '.join(sorted(versions))})")
        listed = subprocess.run([str(source_python), __file__, "--list-preinstalled"],
                                capture_output=True, text=True)
        if listed.returncode:
            return skip((listed.stderr.strip().splitlines() or ["listing its packages failed"])[-1])
        src, dest = site_packages(source_python), site_packages(python)
        present = {canonical(d.name.split("-")[0]) for d in dest.glob("*.dist-info")}
        wanted = {name: names for name, names in json.loads(listed.stdout).items() if name not in present}
        linked: list[Path] = []
        try:
            for name in (n for names in wanted.values() for n in names):
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(src / name, target)
                linked.append(target)
        except OSError as error:
            for target in linked:
                target.unlink()
            return skip(f"{type(error).__name__}: {error}")
        out.write(f"\npreinstall: {len(linked)} files of {len(wanted)} distributions hard-linked from {src}: "
                  f"{', '.join(sorted(wanted))}\n")
        return len(linked), f"hard-linked from {source.name} ({len(wanted)} packages, {len(linked)} files)"


def prepare(build: Path, fresh: bool = False) -> tuple[Path, float, bool, str]:
    """Make or reuse the environment, install course_lib into it.

    Returns (python, seconds, reused, how torch and torchvision came into the environment)."""
    start = time.perf_counter()
    venv = build / "venv"
    python = venv / "bin" / "python"
    key_file = venv / ".student-env-key"
    key = cache_key()
    reused = not fresh and python.exists() and key_file.exists() and key_file.read_text() == key
    log = build / "pip.log"
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="course-lib-src-") as tmp:
        source = copy_package(Path(tmp) / "src")
        requirement = local_requirement(source)
        if reused:
            # Same dependencies as last time: rebuild and reinstall course_lib alone (with the setuptools
            # torch brought into the environment, rather than a fresh isolated build environment).
            name = requirement.split("[", 1)[0].split(" @ ", 1)[0]
            pip(python, ["install", "--no-deps", "--force-reinstall", "--no-build-isolation",
                         f"{name} @ {source.as_uri()}"], log)
            how = "kept from the last run"
        else:
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            # Colab's torch is preinstalled; here it is linked from .venv, or installed from the pins.
            # --no-compile: the kernels compile what they import, not all of torch up front.
            linked, how = preinstall(python, log)
            if not linked:
                pip(python, ["install", "--no-compile", "-c", str(CONSTRAINTS), *PREINSTALLED], log)
                how = f"installed by pip from the pins ({how})"
            pip(python, ["install", "--no-compile", "-c", str(CONSTRAINTS), requirement], log)
            pip(python, ["check"], log)
            pip(python, ["install", "--no-compile", "-c", str(CONSTRAINTS), *FRONT_END], log)
            key_file.write_text(key)
    return python, time.perf_counter() - start, reused, how


def kernelspec(python: Path, where: Path) -> Path:
    """A kernelspec ``student-env`` running ``python``'s ipykernel; returns the folder for JUPYTER_PATH."""
    spec = where / "kernels" / "student-env"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "student-env", "language": "python",
    }))
    return where


def student_environ(jupyter_path: Path) -> dict[str, str]:
    """This process's environment without what a student would not have, with the kernelspec's path."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["JUPYTER_PATH"] = str(jupyter_path)
    env["JUPYTER_DATA_DIR"] = str(jupyter_path)  # not ~/.local/share/jupyter: only the student-env kernel
    env["PYTHONNOUSERSITE"] = "1"
    return env


# ---- executing and judging one notebook ------------------------------------------------------------------


def errors_of(nb: dict) -> list[dict]:
    """Every error output of an executed notebook: ``{"cell", "ename", "evalue"}`` (cell: 0-based index)."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            if out.get("output_type") == "error":
                evalue = out.get("evalue", "")[:300]
                found.append({"cell": index, "ename": out.get("ename"), "evalue": evalue})
    return found


def probe_of(nb: dict) -> list[str]:
    """The lines the appended probe cell printed: the marker, sys.executable, course_lib.__file__."""
    text = "".join(
        "".join(out.get("text", "")) for out in nb["cells"][-1].get("outputs", [])
        if out.get("output_type") == "stream"
    )
    lines = text.splitlines()
    return lines[lines.index(PROBE):] if PROBE in lines else []


def judge(kind: str, nb: dict, venv: Path) -> list[str]:
    """What is wrong with an executed notebook copy (``kind``: ``"book"`` or ``"exercises"``)."""
    problems = []
    for err in errors_of(nb):
        if kind == "exercises" and err["ename"] in ALLOWED_IN_EXERCISES:
            continue
        problems.append(f"cell {err['cell']}: {err['ename']}: {err['evalue']}")
    probe = probe_of(nb)
    if len(probe) < 3:
        problems.append("the probe cell printed nothing: the notebook did not run to its end")
    else:
        executable, module = Path(probe[1]), Path(probe[2]).resolve()
        if not str(executable).startswith(str(venv)):
            problems.append(f"the kernel ran {executable}, not the student environment's Python")
        if venv.resolve() not in module.parents:  # e.g. <repo>/course_lib/__init__.py
            problems.append(f"course_lib was imported from {module}, not from the installed package")
    return problems


def execute_one(path: Path, timeout: int) -> int:
    """Run in the student environment: execute ``path`` in place (errors recorded, not raised)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE_CELL))
    client = NotebookClient(nb, timeout=timeout, kernel_name="student-env", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    nbformat.write(nb, path)
    return 0


def stored_seconds(path: Path) -> float:
    """How long the notebook's stored run took, from its cells' execution timestamps (0 if none)."""
    from datetime import datetime

    stamps = [cell.get("metadata", {}).get("execution", {}) for cell in json.loads(path.read_text())["cells"]]
    starts = [s["iopub.execute_input"] for s in stamps if "iopub.execute_input" in s]
    ends = [s["shell.execute_reply"] for s in stamps if "shell.execute_reply" in s]
    if not starts or not ends:
        return 0.0
    parse = lambda stamp: datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # noqa: E731
    return (parse(max(ends)) - parse(min(starts))).total_seconds()


def run_notebook(python: Path, path: Path, env: dict[str, str], timeout: int) -> tuple[float, str]:
    """Execute ``path`` with the environment's Python; return (seconds, stderr tail if it crashed)."""
    start = time.perf_counter()
    done = subprocess.run([str(python), __file__, "--execute-one", str(path), "--timeout", str(timeout)],
                          env=env, cwd=path.parent, capture_output=True, text=True)
    crash = "" if done.returncode == 0 else "\n".join(done.stderr.splitlines()[-15:])
    return time.perf_counter() - start, crash


# ---- the whole run ---------------------------------------------------------------------------------------


def notebooks(selected: list[str]) -> list[Path]:
    found = sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))
    if selected:
        wanted = {(ROOT / s).resolve() if not Path(s).is_absolute() else Path(s) for s in selected}
        found = [p for p in found if p.resolve() in wanted]
        if len(found) != len(wanted):
            raise SystemExit(f"student-env: not a chapter or exercise notebook: {sorted(map(str, wanted))}")
    if not found:
        raise SystemExit("student-env: no notebooks in book/ or exercises/")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="only these (default: book/*.ipynb, exercises/*.ipynb)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at the same time")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--fresh", action="store_true", help="make the environment again even if kept")
    parser.add_argument("--build", type=Path, default=ROOT / "_build" / "student-env")
    parser.add_argument("--execute-one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--list-preinstalled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list_preinstalled:
        print(json.dumps(preinstalled_files()))
        return 0
    if args.execute_one:
        return execute_one(args.execute_one, args.timeout)

    paths = notebooks(args.notebooks)
    args.build.mkdir(parents=True, exist_ok=True)
    python, install_s, reused, how = prepare(args.build, args.fresh)
    fetched = downloads(args.build / "pip.log")
    large = [name for name in fetched if megabytes(name) >= 1]
    print(f"student-env: {'kept environment, course_lib reinstalled' if reused else 'new environment'} "
          f"in {install_s:.1f} s; pip downloaded {len(fetched)} file(s), "
          f"{sum(map(megabytes, fetched)):.1f} MB; torch and torchvision {how}"
          + "".join(f"\n  {name}" for name in large))

    rows: list[tuple[str, float, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="course-notebooks-") as tmp:
        work = Path(tmp)
        if ROOT in work.resolve().parents:
            raise SystemExit(f"student-env: the temporary folder {work} lies inside the repository")
        env = student_environ(kernelspec(python, work / "jupyter"))
        # Kernels side by side share the cores instead of each starting one thread per core.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, args.jobs))))
        copies = []
        for path in paths:
            kind = path.parent.name
            (work / kind).mkdir(exist_ok=True)
            copies.append((kind, shutil.copy2(path, work / kind / path.name)))
        start = time.perf_counter()
        # Longest first (by the stored run), so that the last one to finish is a short one.
        order = sorted(range(len(copies)), key=lambda i: -stored_seconds(paths[i]))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {i: pool.submit(run_notebook, python, Path(copies[i][1]), env, args.timeout)
                       for i in order}
            results = [futures[i].result() for i in range(len(copies))]
        execute_s = time.perf_counter() - start
        for (kind, copy), (seconds, crash) in zip(copies, results):
            problems = [f"nbclient failed:\n{crash}"] if crash else []
            if not crash:
                problems = judge(kind, json.loads(Path(copy).read_text()), python.parent.parent)
            rows.append((f"{kind}/{Path(copy).name}", seconds, problems))

    lines = ["| notebook | seconds | result |", "|---|---:|---|"]
    lines += [f"| {name} | {s:.1f} | {'ok' if not p else 'FAILED: ' + '; '.join(p)} |" for name, s, p in rows]
    lines.append(f"| environment ({'kept' if reused else 'new'}) | {install_s:.1f} | |")
    lines.append(f"| all notebooks, {args.jobs} at a time | {execute_s:.1f} | |")
    report = "\n".join(lines)
    (args.build / "report.md").write_text(report + "\n")
    print(report)
    failed = [name for name, _, p in rows if p]
    if failed:
        print(f"student-env: {len(failed)} notebook(s) failed as a student runs them: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    print(f"student-env: {len(rows)} notebooks ran as a student runs them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
