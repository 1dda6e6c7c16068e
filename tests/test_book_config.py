"""Static checks of the book's configuration and notebooks: nothing is built, nothing is executed.

Independent references used: nbval's own sanitize-file parser and cell-marker tables, nbformat's reader,
PyYAML, and the values the course fixed in its issue (repository, chapter list, the standard first cell).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import load_script
from nbval.plugin import comment_markers, get_sanitize_patterns, metadata_tags

ROOT = Path(__file__).resolve().parents[1]


_first_cell = load_script("first_cell")
FIRST_CELL = _first_cell.FIRST_CELL
_vendor = load_script("vendor")
MATHJAX, WIDGETS = _vendor.MATHJAX, _vendor.WIDGETS

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
REPOSITORY = "https://github.com/tfv-course/transformers-for-vision"
CHAPTERS = [
    "book/01_self_attention",
    "book/02_multi_head_attention",
    "book/03_positional_encoding",
    "book/04_transformer_block_and_cost",
    "book/05_vision_transformer",
    "book/06_swin_transformer",
    "book/07_training_on_small_data",
    "book/08_what_trained_models_learn",
]
BOOK_NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
ALL_NOTEBOOKS = sorted(
    p for folder in ("book", "solutions", "exercises") for p in (ROOT / folder).glob("*.ipynb")
)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---- _config.yml ---------------------------------------------------------------------------------


def test_config_identity_and_repository() -> None:
    assert CONFIG["title"] == "Transformers for Vision"
    assert CONFIG["author"] == "The Transformers for Vision course team"
    assert CONFIG["repository"] == {"url": REPOSITORY, "path_to_book": "", "branch": "main"}
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["sphinx"]["config"]["html_theme_options"]["use_download_button"] is True


def test_config_builds_offline_without_executing() -> None:
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    sphinx = CONFIG["sphinx"]["config"]
    assert sphinx["html_static_path"] == ["_vendor"], "not _static: jupyter-book injects every file in it"
    vendored = {dst for _, dst in MATHJAX + WIDGETS} | {"widgets/compat.js"}
    assert sphinx["mathjax_path"] in vendored, "mathjax_path must name a file scripts/vendor.py writes"
    for script in sphinx["nb_ipywidgets_js"]:
        assert not re.match(r"(https?:)?//", script), f"widget script from the network: {script}"
        assert script in vendored, f"{script} is not written by scripts/vendor.py"
    # require.js before the AMD widget manager, the compat shim before both.
    order = ["widgets/compat.js", "widgets/require.js", "widgets/embed-amd.js"]
    assert list(sphinx["nb_ipywidgets_js"]) == order


@pytest.mark.parametrize(
    "folder",
    ["exercises", "solutions", "node_modules", ".venv", "_build", "_vendor", "tests", "bench", "README.md"],
)
def test_config_excludes_non_book_folders(folder: str) -> None:
    patterns = CONFIG["exclude_patterns"]
    assert folder in patterns or (folder.startswith(".") and ".*" in patterns), f"{folder} not excluded"


# ---- _toc.yml and the chapter files ----------------------------------------------------------------


def test_toc_lists_the_chapters_in_order() -> None:
    assert TOC["format"] == "jb-book"
    assert TOC["root"] == "book/00_preface"
    assert [entry["file"] for entry in TOC["chapters"]] == CHAPTERS


def test_every_toc_entry_exists_and_every_book_notebook_is_listed() -> None:
    assert (ROOT / "book/00_preface.md").exists()
    missing = [c for c in CHAPTERS if not (ROOT / f"{c}.ipynb").exists()]
    assert not missing, f"chapters named in _toc.yml but missing: {missing}"
    unlisted = [_rel(p) for p in BOOK_NOTEBOOKS if _rel(p)[: -len(".ipynb")] not in CHAPTERS]
    assert not unlisted, f"notebooks in book/ that _toc.yml does not list: {unlisted}"


def test_preface_links_every_chapter_with_checked_references() -> None:
    text = (ROOT / "book/00_preface.md").read_text()
    linked = set(re.findall(r"\{doc\}`([^`]+)`", text))
    assert {Path(c).name for c in CHAPTERS} <= linked


# ---- notebooks ----------------------------------------------------------------------------------


def test_first_cell_installs_from_the_configured_repository() -> None:
    url = f"git+{CONFIG['repository']['url']}@{CONFIG['repository']['branch']}"
    assert f'"course-lib[book] @ {url}"' in FIRST_CELL
    assert _first_cell.install_requirement() == f"course-lib[book] @ {url}"
    assert FIRST_CELL.splitlines()[0].startswith("# Setup:")
    compile(FIRST_CELL, "<first cell>", "exec")


def _run_first_cell(monkeypatch, colab: bool) -> tuple[list, dict]:
    """Execute FIRST_CELL as a kernel would, with subprocess.run recorded instead of run."""
    import subprocess
    import sys
    import types

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    namespace: dict = {}
    exec(compile(FIRST_CELL, "<first cell>", "exec"), namespace)
    return calls, namespace


def test_first_cell_installs_only_on_colab_and_prints_one_line(monkeypatch, capsys) -> None:
    import sys

    import torch

    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls, namespace = _run_first_cell(monkeypatch, colab=False)
    assert calls == [], "the first cell must not pip install outside Colab"
    assert namespace["device"] == torch.device("cpu")
    assert re.fullmatch(r"course-lib \S+ \| torch \S+ \| device: cpu\n", capsys.readouterr().out)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    calls, namespace = _run_first_cell(monkeypatch, colab=True)
    url = f"git+{CONFIG['repository']['url']}@{CONFIG['repository']['branch']}"
    assert calls == [(([sys.executable, "-m", "pip", "install", "-q", f"course-lib[book] @ {url}"],),
                      {"check": True})]
    assert namespace["device"] == torch.device("cuda"), "a GPU runtime must get the GPU"
    assert capsys.readouterr().out.endswith("| device: cuda (Tesla T4)\n")


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a notebook's code cells import."""
    import ast

    names = set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_what_the_notebooks_import_is_what_the_first_cell_installs() -> None:
    """Each third-party module a notebook imports belongs to a distribution that course-lib or the extra in
    the first cell declares: `pip install course-lib[book]` alone runs every notebook (`make student`)."""
    import sys
    from importlib.metadata import packages_distributions

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = re.fullmatch(r"course-lib\[(\w+)\] @ .*", _first_cell.install_requirement()).group(1)
    declared = project["dependencies"] + project["optional-dependencies"][extra]
    declared = {_normalise(re.match(r"[A-Za-z0-9_.-]+", req).group(0)) for req in declared}
    owners = packages_distributions()
    # IPython comes with ipykernel, which is declared (every Jupyter kernel has it).
    provided = {"course_lib", "IPython"} | set(sys.stdlib_module_names)
    for path in ALL_NOTEBOOKS:
        for module in sorted(_imported_modules(path) - provided):
            dists = {_normalise(d) for d in owners.get(module, [])}
            assert dists & declared, (
                f"{_rel(path)} imports {module} ({sorted(dists) or 'not installed'}), which neither "
                f"course-lib's dependencies nor its [{extra}] extra declare"
            )


def _published(repository: str) -> str:
    """GitHub Pages' address of a repository's site: github.com/ORG/REPO -> https://ORG.github.io/REPO."""
    org, repo = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", repository).groups()
    return f"https://{org.lower()}.github.io/{repo}"


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.ipynb")), ids=_rel)
def test_exercises_link_back_to_their_chapter_with_absolute_links(path: Path) -> None:
    """From Colab there is no ../book/: the link goes to the published book and the chapter's Colab page."""
    nb = nbformat.read(path, as_version=4)
    intro = next(c for c in nb.cells if c.cell_type == "markdown" and "These exercises practise" in c.source)
    chapter = next(c for c in CHAPTERS if Path(c).name == path.stem)
    repository, branch = CONFIG["repository"]["url"], CONFIG["repository"]["branch"]
    github = repository.split("github.com/")[1]
    colab = f"{CONFIG['launch_buttons']['colab_url']}/github/{github}/blob/{branch}"
    links = re.findall(r"\]\(([^)\s]+)\)", intro.source)
    assert f"{_published(repository)}/{chapter}.html" in links
    assert f"{colab}/{chapter}.ipynb" in links
    relative = [link for link in links if not re.match(r"https://", link)]
    assert not relative, f"{_rel(path)}: relative links do not work on Colab: {relative}"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_rel)
def test_notebook_starts_with_the_standard_first_cell(path: Path) -> None:
    """Chapters (book/) and exercise notebooks (solutions/ -> exercises/) alike."""
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, f"{_rel(path)} has no code cell"
    assert code[0].source == FIRST_CELL, f"{_rel(path)}: first code cell differs from scripts/first_cell.py"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_rel)
def test_notebook_is_valid_and_stored_with_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
    unexecuted = [i for i, cell in enumerate(code) if cell.execution_count is None]
    assert not unexecuted, f"{_rel(path)}: code cells never executed (book builds show stored outputs)"


# nbval's own tables: markers that excuse a cell from output comparison, or from running at all.
# nbval maps each to an (option, value) pair: ("check", False) = do not compare, ("skip", True) = do not run.
def _excuses(table: dict) -> set[str]:
    pairs = {name: (marker, True) if isinstance(marker, str) else marker for name, marker in table.items()}
    return {name for name, pair in pairs.items() if pair in {("check", False), ("skip", True)}}


EXCUSE_TAGS = _excuses(metadata_tags)
EXCUSE_COMMENTS = _excuses(comment_markers)
# "# nbval-ignore-output: widget views carry random model ids" (a reason of at least three words).
REASON = re.compile(r"^\s*#\s*(?:nbval|NBVAL)[-_\w]*\s*:\s*\S+\s+\S+\s+\S+", re.MULTILINE)


def excused_cells_without_reason(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of code cells nbval skips or does not compare that give no ``# nbval-...: reason`` comment."""
    bad = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        comments = {
            line.strip().lstrip("#").strip()
            for line in cell.source.splitlines()
            if line.strip().startswith("#")
        }
        if (tags & EXCUSE_TAGS or comments & EXCUSE_COMMENTS) and not REASON.search(cell.source):
            bad.append(index)
    return bad


def test_excuse_markers_come_from_nbval() -> None:
    assert {"nbval-ignore-output", "nbval-skip"} <= EXCUSE_TAGS
    assert {"NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP"} <= EXCUSE_COMMENTS
    assert "raises-exception" not in EXCUSE_TAGS  # an expected error is still checked by nbval


def test_reason_check_flags_a_bare_tag_and_accepts_a_reason() -> None:
    bare = nbformat.v4.new_code_cell("w = slider()\nw", metadata={"tags": ["nbval-ignore-output"]})
    reasoned = nbformat.v4.new_code_cell(
        "# nbval-ignore-output: widget views carry random model ids\nw = slider()\nw",
        metadata={"tags": ["nbval-ignore-output"]},
    )
    marker_only = nbformat.v4.new_code_cell("# NBVAL_SKIP\nslow()")
    plain = nbformat.v4.new_code_cell("x = 1")
    nb = nbformat.v4.new_notebook(cells=[bare, reasoned, marker_only, plain])
    assert excused_cells_without_reason(nb) == [0, 2]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_rel)
def test_cells_excused_from_nbval_say_why(path: Path) -> None:
    bad = excused_cells_without_reason(nbformat.read(path, as_version=4))
    assert not bad, (
        f"{_rel(path)}: cells {bad} are tagged nbval-ignore-output/nbval-skip without a reason; add a "
        "comment in the cell like '# nbval-ignore-output: widget views carry random model ids'"
    )


# ---- nbval sanitizers ------------------------------------------------------------------------------

SANITIZE = get_sanitize_patterns((ROOT / "tests/nbval_sanitize.cfg").read_text())


def sanitize(text: str) -> str:
    """Applied exactly as nbval applies the file (IPyNbFile.sanitize)."""
    for regex, replace in SANITIZE:
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize(
    "first, second",
    [
        ("epoch 3 done in 12.3 s", "epoch 3 done in 0.7 s"),
        ("forward: 45.6 ms", "forward: 3.2 ms"),
        ("7 µs per call", "12 µs per call"),
        ("trained in 1.5 min", "trained in 2.0 min"),
        ("<function f at 0x7f3a2c1b4d30>", "<function f at 0x55d1e2f3a4b0>"),
        ("100%|██████████| 50/50 [00:03<00:00, 12.34it/s]", "100%|██████████| 50/50 [00:05<00:00, 9.80it/s]"),
        ("throughput 1234.5 img/s", "throughput 987.0 img/s"),
        ("/tmp/ipykernel_1234/2345.py:3: UserWarning: x", "/tmp/ipykernel_99/88.py:3: UserWarning: x"),
        (
            "/work/main/.venv/lib/python3.11/site-packages/torch/nn/f.py:5: UserWarning",
            "/home/u/env/lib/python3.12/site-packages/torch/nn/f.py:5: UserWarning",
        ),
    ],
)
def test_sanitizer_hides_what_varies(first: str, second: str) -> None:
    assert first != second
    assert sanitize(first) == sanitize(second)


@pytest.mark.parametrize(
    "text, changed",
    [
        ("test accuracy 0.9531", "test accuracy 0.9532"),
        ("torch.Size([2, 197, 768])", "torch.Size([2, 196, 768])"),
        ("12 heads, 86.6 M parameters", "12 heads, 86.5 M parameters"),
        ("17.6 GFLOPs", "17.5 GFLOPs"),
        ("loss 2.3026 after 5 steps", "loss 2.3025 after 5 steps"),
        ("max |diff| = 3.1e-07", "max |diff| = 3.2e-07"),
    ],
)
def test_sanitizer_keeps_the_results(text: str, changed: str) -> None:
    assert sanitize(text) != sanitize(changed), f"the sanitizer hides a real difference: {text!r}"


# ---- npm assets -------------------------------------------------------------------------------------

NPM_PINS = {
    "mathjax": "3.2.2",
    "mathjax2": "npm:mathjax@2.7.7",
    "requirejs": "2.3.4",
    "@jupyter-widgets/html-manager": "1.0.6",
    "reveal.js": "4.0.2",
    "jquery": "2.2.4",
}


def test_package_json_pins_the_vendored_assets() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    assert package["private"] is True
    assert package["dependencies"] == NPM_PINS


def test_package_lock_matches_package_json() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["lockfileVersion"] >= 2
    assert lock["packages"][""]["dependencies"] == NPM_PINS
    for name, spec in NPM_PINS.items():
        version = spec.rsplit("@", 1)[1] if spec.startswith("npm:") else spec
        entry = lock["packages"][f"node_modules/{name}"]
        assert entry["version"] == version, f"{name}: lock has {entry['version']}, package.json {spec}"
        assert entry["integrity"].startswith("sha512-"), f"{name}: no integrity hash in the lock"


# ---- Makefile and GitHub Pages workflow ---------------------------------------------------------------


def test_make_test_runs_the_checks_in_order() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: lint unit nbval html browser student$", makefile, re.MULTILINE)
    assert "jupyter-book build . -W -n --keep-going" in makefile


def _steps(job: dict) -> list[dict]:
    return job["steps"]


def _uses(steps: list[dict], action: str) -> dict:
    found = [s for s in steps if str(s.get("uses", "")).split("@")[0] == action]
    assert len(found) == 1, f"expected one step using {action}, found {len(found)}"
    return found[0]


def test_pages_workflow_builds_and_deploys_the_book() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/book.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "main" in triggers["push"]["branches"]
    assert workflow["permissions"]["pages"] == "write"
    assert workflow["permissions"]["id-token"] == "write"

    build = workflow["jobs"]["build"]
    steps = _steps(build)
    order = [
        steps.index(_uses(steps, "actions/checkout")),
        steps.index(_uses(steps, "actions/setup-python")),
        steps.index(_uses(steps, "actions/setup-node")),
        next(i for i, s in enumerate(steps) if "make book" in str(s.get("run", ""))),
        steps.index(_uses(steps, "actions/upload-pages-artifact")),
    ]
    assert order == sorted(order), "steps out of order: checkout, python, node, make book, upload"
    assert str(_uses(steps, "actions/setup-python")["with"]["python-version"]) == "3.11"
    assert _uses(steps, "actions/upload-pages-artifact")["with"]["path"] == "_build/html"

    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build" or "build" in deploy["needs"]
    assert deploy["environment"]["name"] == "github-pages"
    _uses(_steps(deploy), "actions/deploy-pages")
