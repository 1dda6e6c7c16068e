"""Decks built with nbconvert's ``SlidesExporter`` and the ``reveal_offline`` template (in ``templates/``),
one ``<chapter>.slides.html`` per chapter notebook."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional

from .assets import JQUERY, MATHJAX, REQUIRE_JS, REVEAL_PREFIX, WIDGETS, install_vendor
from .contact import contact_sheets
from .index import Deck, write_index
from .lecture import COURSE_NAME, chapter_title, count_slides, prepare_lecture
from .pdf import chromium, export_pdf, export_pdfs

__all__ = ["TEMPLATE_DIR", "build_deck", "build_all"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def _exporter(offline: bool) -> Any:
    from nbconvert import SlidesExporter

    exporter = SlidesExporter(
        extra_template_basedirs=[str(TEMPLATE_DIR)],
        template_name="reveal_offline",
        reveal_theme="white",  # "simple", nbconvert's default, imports a Google font
        reveal_transition="slide",
        reveal_number="c/t",
        reveal_width="1280",
        reveal_height="720",
        reveal_scroll=False,  # nothing scrolls: a slide that does not fit is a bug (tests/browser)
        embed_images=True,
        exclude_anchor_links=True,
        exclude_input_prompt=True,  # no "In [3]:" on a slide
        exclude_output_prompt=True,
    )
    if offline:
        exporter.reveal_url_prefix = REVEAL_PREFIX
        exporter.require_js_url = REQUIRE_JS
        exporter.jquery_url = JQUERY
        exporter.mathjax_url = MATHJAX
        exporter.widget_renderer_url = WIDGETS
    return exporter


def _build(
    notebook_path: Path,
    out_dir: Path,
    course: str,
    offline: bool,
    node_modules: Optional[os.PathLike],
) -> Deck:
    import nbformat

    notebook_path = Path(notebook_path)
    if notebook_path.suffix != ".ipynb" or not notebook_path.is_file():
        raise ValueError(f"not a notebook file: {notebook_path}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if offline:
        install_vendor(out_dir, node_modules)

    chapter = notebook_path.stem
    nb = nbformat.read(notebook_path, as_version=4)
    lecture = prepare_lecture(nb, chapter, course)
    title = chapter_title(nb, default=chapter.replace("_", " "))
    lecture.metadata["title"] = title
    resources = {"metadata": {"name": chapter, "path": str(notebook_path.parent.resolve())}}
    body, _ = _exporter(offline).from_notebook_node(lecture, resources=resources)
    target = out_dir / f"{chapter}.slides.html"
    target.write_text(body, encoding="utf-8")
    return Deck(chapter=chapter, title=title, html=target, num_slides=count_slides(lecture))


def build_deck(
    notebook_path: os.PathLike,
    out_dir: os.PathLike = "_build/slides",
    *,
    course: str = COURSE_NAME,
    offline: bool = True,
    node_modules: Optional[os.PathLike] = None,
    pdf: bool = False,
) -> Path:
    """Build the reveal.js deck of one chapter notebook; return the path of ``<stem>.slides.html``.

    ``offline=False`` loads reveal.js and MathJax from nbconvert's default CDNs instead of ``vendor/``
    (for a machine without ``node_modules``). ``pdf=True`` also prints ``<stem>.pdf`` with headless Chromium.
    """
    deck = _build(Path(notebook_path), Path(out_dir), course, offline, node_modules)
    if pdf:
        export_pdf(deck.html)
    return deck.html


def _resolve_chapters(book_dir: Path, chapters: Optional[Iterable[str]]) -> list[Path]:
    notebooks = sorted(p for p in book_dir.glob("*.ipynb") if not p.name.startswith("."))
    if not chapters:
        return notebooks
    chosen = []
    for name in chapters:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path)
            continue
        # "01_self_attention", "01_self_attention.ipynb", "01" or "1"
        stem = path.stem if path.suffix == ".ipynb" else name
        matches = [p for p in notebooks if p.stem == stem]
        if not matches and stem.isdigit():
            matches = [p for p in notebooks if re.match(rf"0*{int(stem)}[_\-. ]", p.stem)]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in notebooks) or "none"
            raise ValueError(f"unknown chapter {name!r} in {book_dir} (chapters: {known})")
        chosen.append(matches[0])
    return chosen


def _course_name(root: Path) -> str:
    """The book's ``title`` in ``_config.yml``, else :data:`COURSE_NAME`."""
    config = root / "_config.yml"
    if not config.is_file():
        return COURSE_NAME
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    title = data.get("title") if isinstance(data, dict) else None
    return str(title) if title else COURSE_NAME


def build_all(
    book_dir: os.PathLike = "book",
    out_dir: os.PathLike = "_build/slides",
    chapters: Optional[Iterable[str]] = None,
    *,
    course: Optional[str] = None,
    offline: bool = True,
    node_modules: Optional[os.PathLike] = None,
    pdf: bool = False,
) -> list[Deck]:
    """Build the decks of ``chapters`` (default: every ``book_dir/*.ipynb``) and the index page.

    A chapter is a notebook path, a stem (``01_self_attention``) or a number (``1``). The index lists every
    deck present in ``out_dir``, also those built earlier. ``pdf=True`` also writes each deck's PDF and its
    contact sheet (``<stem>.pdf``, ``<stem>.contact.png``: every slide as a thumbnail), in one Chromium.
    """
    book_dir, out_dir = Path(book_dir), Path(out_dir)
    if course is None:
        course = _course_name(book_dir.resolve().parent)
    notebooks = _resolve_chapters(book_dir, chapters)
    if not notebooks:
        raise ValueError(f"no chapter notebooks (*.ipynb) in {book_dir}")
    decks = [_build(nb, out_dir, course, offline, node_modules) for nb in notebooks]
    if pdf:
        with chromium() as browser:
            pages = [d.html for d in decks]
            for deck, pdf_path, sheet in zip(decks, export_pdfs(pages, browser=browser),
                                             contact_sheets(pages, browser=browser)):
                deck.pdf, deck.contact = pdf_path, sheet
    write_index(out_dir, decks, course=course)
    return decks
