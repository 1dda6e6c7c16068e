"""Write a minimal, executed placeholder notebook for every chapter in ``_toc.yml`` that does not exist yet.

A placeholder lets the whole pipeline (nbval, the offline book build, the browser checks) run before the
chapter authors deliver. It holds: a title, one line of math, the standard first cell
(:data:`scripts.first_cell.FIRST_CELL`), a small labelled matplotlib figure and, in the first chapter, an
``ipywidgets`` slider so the widget path of the book is exercised too. An existing notebook is never touched.

Usage: ``python scripts/make_placeholders.py`` (from the repository root).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from first_cell import FIRST_CELL  # noqa: E402
from run_notebooks import execute  # noqa: E402

FIGURE_CELL = """\
import matplotlib.pyplot as plt
import torch

x = torch.linspace(-4, 4, 101)
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(x, torch.softmax(torch.stack([x, torch.zeros_like(x)]), dim=0)[0])
ax.set_title("softmax of two logits")
ax.set_xlabel("logit difference")
ax.set_ylabel("weight of the first key")
fig.tight_layout()
plt.show()"""

WIDGET_CELL = """\
import ipywidgets as widgets

widgets.IntSlider(value=4, min=1, max=12, description="heads")"""


def chapter_files(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """The ``file:`` entries of the toc's chapters, e.g. ``book/01_self_attention``."""
    data = yaml.safe_load(toc.read_text())
    return [entry["file"] for entry in data["chapters"]]


def placeholder(title: str, with_widget: bool) -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_markdown_cell(
            f"# {title}\n\nThis chapter is being written. Scaled dot-product attention:\n\n"
            r"$$\mathrm{softmax}(QK^\top/\sqrt{d_k})V$$"
        ),
        nbformat.v4.new_code_cell(FIRST_CELL),
        nbformat.v4.new_code_cell(FIGURE_CELL),
    ]
    if with_widget:
        cells.append(nbformat.v4.new_code_cell(WIDGET_CELL))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> int:
    for index, stem in enumerate(chapter_files()):
        path = ROOT / f"{stem}.ipynb"
        if path.exists():
            continue
        title = path.stem.split("_", 1)[1].replace("_", " ").capitalize()
        nbformat.write(placeholder(title, with_widget=index == 0), path)
        execute(path)
        print(f"wrote placeholder {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
