"""Sphinx extension local to this book (``sphinx.local_extensions`` in ``_config.yml``).

Two jobs, both done at build time so that no chapter has to remember them:

1. **No CDN in any page.** jupyter-book 1 always loads ``sphinx_thebe``, which adds to every page an inline
   script naming a CDN (``const THEBE_JS_URL = "https://unpkg.com/thebe@..."``), twice over in this
   version, so the browser reports ``Identifier 'THEBE_JS_URL' has already been declared``, plus
   ``sphinx-thebe.js`` and its CSS. The book has no live-code (thebe) button (``launch_buttons.thebe`` is
   off), so this removes those assets.
2. **Speaker notes stay out of the book.** A cell with ``{"slideshow": {"slide_type": "notes"}}`` holds the
   lecturer's terse notes for the slide decks (``course_lib/slides.py`` puts them in reveal.js's speaker
   view). Before myst-nb parses a notebook, such cells get myst-nb's ``remove-cell`` tag, so the HTML book
   never shows them. Only the text handed to the parser changes: the ``.ipynb`` on disk (and so the slides,
   the Colab and download buttons) keeps the cells as they are. The same goes for the lecture's own text:
   markdown cells tagged ``slide-only`` (the short slide version of a paragraph the book explains in full;
   see ``course_lib/instructor/slides``). Removed before parsing, neither reaches the translation catalogs.
"""

from __future__ import annotations

import json
from typing import Any

THEBE_ASSETS = ("sphinx-thebe.js", "sphinx-thebe.css")
NOTES = "notes"
SLIDE_ONLY = "slide-only"  # course_lib.instructor.slides.lecture.SLIDE_ONLY (the book does not import it)
REMOVE_TAG = "remove-cell"  # myst-nb's tag: the cell is not rendered at all


def _is_thebe(asset: Any) -> bool:
    filename = getattr(asset, "filename", None) or str(asset)
    body = getattr(asset, "attributes", {}).get("body", "") or ""
    return filename.endswith(THEBE_ASSETS) or "THEBE_JS_URL" in body


def drop_thebe_assets(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context`` handler: filter this page's script and CSS lists in place.

    Sphinx restores both lists after each page, so the filter runs for every page.
    """
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if assets:
            assets[:] = [asset for asset in assets if not _is_thebe(asset)]


def is_notes_cell(cell: dict) -> bool:
    """True for a cell the slide decks show as speaker notes (``slideshow.slide_type == "notes"``)."""
    slideshow = cell.get("metadata", {}).get("slideshow") or {}
    return slideshow.get("slide_type") == NOTES


def is_lecture_only(cell: dict) -> bool:
    """True for a cell only the lecture decks show: speaker notes, or tagged ``slide-only``."""
    return is_notes_cell(cell) or SLIDE_ONLY in cell.get("metadata", {}).get("tags", [])


def hide_notes_cells(notebook_json: str) -> str:
    """The notebook text with every lecture-only cell (:func:`is_lecture_only`) tagged ``remove-cell``;
    unchanged if it has none.

    Cells are tagged rather than deleted, so the cell indices myst-nb uses to find outputs stay the same.
    """
    notebook = json.loads(notebook_json)
    changed = False
    for cell in notebook.get("cells", []):
        if is_lecture_only(cell):
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if REMOVE_TAG not in tags:
                tags.append(REMOVE_TAG)
                changed = True
    return json.dumps(notebook, ensure_ascii=False) if changed else notebook_json


def drop_notes_from_book(app, docname: str, source: list[str]) -> None:
    """``source-read`` handler: a notebook's notes and slide-only cells never reach the book's pages."""
    if str(app.env.doc2path(docname)).endswith(".ipynb"):
        source[0] = hide_notes_cells(source[0])


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", drop_thebe_assets)
    app.connect("source-read", drop_notes_from_book)
    return {"version": "1.1", "parallel_read_safe": True, "parallel_write_safe": True}
