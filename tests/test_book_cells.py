"""What a reader of the book sees in its cells: code about attention, no test machinery, no speaker notes.

Static checks of the chapter notebooks and of the book's Sphinx extension (``scripts/offline_book.py``);
the built HTML itself is checked by ``tests/browser/test_notes_hidden.py``.
Independent references: nbval's own table of comment markers, nbformat, myst-nb's ``remove-cell`` tag.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import comment_markers

ROOT = Path(__file__).resolve().parents[1]
BOOK_NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))

_spec = importlib.util.spec_from_file_location("_book_offline_book", ROOT / "scripts" / "offline_book.py")
offline_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(offline_book)

# A comment that talks to nbval: "# NBVAL_IGNORE_OUTPUT", "# nbval-ignore-output: reason", "# nbval_skip",
# and nbval's older spelling "# PYTEST_VALIDATE_IGNORE_OUTPUT".
NBVAL_COMMENT = re.compile(r"^\s*#\s*(?:nbval|pytest_validate)[-_\w]*", re.IGNORECASE)


def nbval_comment_lines(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, line) of every comment line in a code cell that addresses nbval."""
    return [(index, line) for index, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for line in cell.source.splitlines() if NBVAL_COMMENT.match(line)]


def test_pattern_covers_nbval_own_markers() -> None:
    for marker in comment_markers:
        assert NBVAL_COMMENT.match(f"# {marker}"), marker
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# nbval-ignore-output: widget ids are random\nw"),
        nbformat.v4.new_code_cell("x = 1  # not a marker\n# the nbval docs say so"),
        nbformat.v4.new_markdown_cell("# nbval-skip in prose is fine"),
    ])
    assert nbval_comment_lines(nb) == [(0, "# nbval-ignore-output: widget ids are random")]


@pytest.mark.parametrize("path", BOOK_NOTEBOOKS, ids=lambda p: p.stem)
def test_book_code_cells_carry_no_nbval_comment(path: Path) -> None:
    """Test machinery stays out of the reader's view: use nbval's cell tags or tests/nbval_sanitize.cfg.

    (A widget view needs neither: nbval never compares ``application/vnd.jupyter.widget-view+json``.)
    """
    found = nbval_comment_lines(nbformat.read(path, as_version=4))
    assert not found, f"{path.name}: code cells address nbval in comments the reader sees: {found}"


def _cell(cell_type: str, slide_type: str | None, tags: list[str] | None = None) -> dict:
    metadata: dict = {}
    if slide_type:
        metadata["slideshow"] = {"slide_type": slide_type}
    if tags is not None:
        metadata["tags"] = tags
    return {"cell_type": cell_type, "metadata": metadata, "source": "text"}


def test_hide_notes_cells_tags_only_the_notes() -> None:
    nb = {"cells": [_cell("markdown", "slide"), _cell("markdown", "notes"), _cell("code", "-"),
                    _cell("markdown", "notes", ["hide-input"]), _cell("markdown", None)], "metadata": {}}
    out = json.loads(offline_book.hide_notes_cells(json.dumps(nb)))
    tags = [cell["metadata"].get("tags") for cell in out["cells"]]
    assert tags == [None, ["remove-cell"], None, ["hide-input", "remove-cell"], None]
    assert len(out["cells"]) == len(nb["cells"])  # tagged, not deleted: output indices stay put


def test_hide_notes_cells_tags_the_slide_only_cells_too() -> None:
    nb = {"cells": [_cell("markdown", "-", ["slide-only"]), _cell("markdown", "slide", ["on-slide"]),
                    _cell("markdown", "-", ["slide-notes"])], "metadata": {}}
    out = json.loads(offline_book.hide_notes_cells(json.dumps(nb)))
    tags = [cell["metadata"].get("tags") for cell in out["cells"]]
    assert tags == [["slide-only", "remove-cell"], ["on-slide"], ["slide-notes"]]


def test_hide_notes_cells_leaves_a_notebook_without_notes_as_it_is() -> None:
    text = json.dumps({"cells": [_cell("markdown", "slide")], "metadata": {}}, indent=1)
    assert offline_book.hide_notes_cells(text) is text


def test_every_chapter_notes_cell_would_be_removed_by_myst_nb() -> None:
    for path in BOOK_NOTEBOOKS:
        out = json.loads(offline_book.hide_notes_cells(path.read_text(encoding="utf-8")))
        for cell in out["cells"]:
            is_notes = (cell["metadata"].get("slideshow") or {}).get("slide_type") == "notes"
            is_notes = is_notes or "slide-only" in cell["metadata"].get("tags", [])
            assert is_notes == ("remove-cell" in cell["metadata"].get("tags", [])), path.name
