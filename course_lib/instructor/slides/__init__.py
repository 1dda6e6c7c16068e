"""Lecture slides: one offline reveal.js deck per chapter notebook.

The decks are generated from the chapter notebooks themselves, so a cell's role in the lecture is decided
where the cell is written. ``make slides`` (or ``course-lib slides [CHAPTER ...]``) writes::

    _build/slides/index.html                  links to every deck (and PDF)
    _build/slides/01_self_attention.slides.html
    _build/slides/01_self_attention.pdf       only with --pdf (one page per slide)
    _build/slides/01_self_attention.contact.png   only with --pdf: every slide as a thumbnail
    _build/slides/vendor/                     reveal.js, MathJax 2, require.js, jQuery, widget manager

Every URL in a deck is relative and points into ``vendor/``, so the folder works from a web server, from
``file://`` and from a USB stick in a lecture hall without a network. The assets are copied from
``node_modules/`` (``make vendor`` installs them from the npm registry).

Guide for chapter authors
-------------------------
Give a cell the metadata ``{"slideshow": {"slide_type": T}}`` (Jupyter: View > Cell toolbar > Slideshow;
JupyterLab: the property inspector) with ``T`` one of

* ``"slide"``    starts a new slide (a new column in reveal.js);
* ``"subslide"`` starts a new slide below the current one (same topic);
* ``"fragment"`` appears on the current slide at the next key press;
* ``"-"``        continues the current slide (this is also what a cell WITHOUT metadata does);
* ``"skip"``     is left out of the deck (long derivations, set-up code, asides for readers);
* ``"notes"``    becomes speaker notes of the current slide (press ``s`` in the deck).

The lecture's own text. A slide is for the lecture: a title that states the point, a figure or a few
short bullets, short code; the talking goes to the speaker notes. Limits, checked in headless Chromium by
``tests/browser/test_slide_limits.py`` (``python tests/browser/slide_audit.py`` prints them per slide):
at most 12 words of title and about 40 words of other text, 12 lines of code and 8 lines of printed output
(table rows count as output lines), nothing cut off or scrolling at 1280x720, speaker notes on every slide
but the title. The chapter stays the single source; cell tags (Jupyter: the property inspector, "Cell Tags")
decide what the slide shows:

* a book markdown cell (no tag) keeps its headings, display equations (``$$ ... $$``) and images on the
  slide; its paragraphs, lists, tables and quotes become the speaker notes of that slide;
* ``on-slide``: a (short) book markdown cell shown on the slide as written;
* ``slide-notes``: a book markdown cell that is all speaker notes (its heading too: give the slide its own
  title with a slide-only cell). A cell that opened a slide passes that on to the next cell shown;
* ``slide-only``: a markdown cell for the lecture alone (the short version of a paragraph the book explains
  in full); the book removes it (``scripts/offline_book.py``), so it is not translated either;
* ``slide-output-only``: a code cell whose slide shows its output without the code (long figure-making code,
  a key figure on a slide of its own; its figure is drawn larger); ``slide-code-only``: code without output;
* ``"notes"`` cells (slide type) are notes written for the lecture only; the book hides them.

All notes of one slide are merged into one block (reveal.js shows one). Questions from the book: the question
``on-slide`` (or a slide-only short version), its model answer tagged ``slide-notes``.

What the generator adds or decides for you:

* a title slide (chapter title from the notebook's first ``# `` heading, the course name, "Lecture
  slides"). The heading line itself is removed from its cell so the title is not shown twice; a cell that
  held nothing but the heading disappears;
* a "Today" slide listing the chapter's level-2 sections (numbers, questions, takeaways and exercises left
  out); the chapter's introduction becomes its notes. A slide-only cell headed ``## Today`` replaces it;
* the first code cell (the set-up cell: imports, ``setup()``) is skipped unless it has slideshow metadata;
* the first visible cell of the chapter always starts a slide of its own (never the title slide);
* jupyter-book tags are honoured: ``remove-cell`` skips the cell, ``remove-input`` / ``hide-input`` show only
  the output (good for figure-making code), ``remove-output`` shows only the code;
* the deck ends with the chapter's exercise summary: the last markdown section whose heading is
  "Exercises" (any level, optionally numbered). Its heading cell always starts a slide and the section is
  moved to the end if something follows it. Without such a section a final slide points to
  ``exercises/<chapter>.ipynb``.

Stored outputs are used as they are (decks never execute a notebook): figures, tables, math and widget
states come through. Local images referenced from markdown are embedded in the HTML.

Slide count: reveal.js counts every ``<section>`` without child sections, i.e. one per ``slide`` or
``subslide`` cell (after the lecture tags above), plus the injected title, agenda (and exercise) slides.

Parts: :mod:`.lecture` (chapter notebook -> lecture notebook), :mod:`.assets` (offline reveal.js and
MathJax), :mod:`.build` (nbconvert), :mod:`.index` (the index page), :mod:`.pdf` (printing with Chromium),
:mod:`.contact` (contact sheets).
Needs the ``[instructor]`` extra (nbconvert, pyyaml, playwright).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .assets import find_node_modules, install_vendor
from .build import build_all, build_deck
from .contact import contact_sheet, contact_sheets
from .index import Deck, write_index
from .lecture import (
    COURSE_NAME,
    chapter_title,
    count_slides,
    myst_to_markdown,
    prepare_lecture,
    split_for_slide,
)
from .pdf import chromium_path, export_pdf, export_pdfs

__all__ = [
    "COURSE_NAME",
    "Deck",
    "prepare_lecture",
    "count_slides",
    "chapter_title",
    "myst_to_markdown",
    "split_for_slide",
    "install_vendor",
    "find_node_modules",
    "build_deck",
    "build_all",
    "export_pdf",
    "contact_sheet",
    "contact_sheets",
    "export_pdfs",
    "chromium_path",
    "write_index",
    "add_parser",
    "run",
    "main",
]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``slides [CHAPTER ...] [--book-dir book] [--out _build/slides] [--pdf] [--cdn]``."""
    parser = subparsers.add_parser(
        "slides",
        help="build the offline reveal.js lecture decks",
        description="Build offline reveal.js lecture decks from the chapter notebooks.",
    )
    parser.add_argument("chapters", nargs="*", metavar="CHAPTER",
                        help="notebook path, stem (01_self_attention) or number (1); default: all chapters")
    parser.add_argument("--book-dir", default="book", help="folder of the chapter notebooks (default: book)")
    parser.add_argument("--out", default="_build/slides", help="output folder (default: _build/slides)")
    parser.add_argument("--pdf", action="store_true",
                        help="also print each deck to PDF and draw its contact sheet, with headless Chromium")
    parser.add_argument("--cdn", action="store_true",
                        help="load reveal.js and MathJax from CDNs instead of vendor/ (needs a network)")
    parser.add_argument("--course", default=None, help="course name on the title slides")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the decks, the index and (``--pdf``) the PDFs; exit status 2 on a bad chapter or folder."""
    start = time.perf_counter()
    try:
        decks = build_all(args.book_dir, args.out, args.chapters or None, course=args.course,
                          offline=not args.cdn, pdf=args.pdf)
    except (ValueError, FileNotFoundError) as err:
        print(f"course-lib slides: error: {err}", file=sys.stderr)
        return 2
    for deck in decks:
        pdf = f" + {deck.pdf.name}" if deck.pdf else ""
        print(f"{deck.html}{pdf}: {deck.num_slides} slides ({deck.title})")
    seconds = time.perf_counter() - start
    print(f"{len(decks)} deck(s), index: {Path(args.out) / 'index.html'} ({seconds:.1f} s)")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``course-lib slides ARGS`` (:func:`course_lib.instructor.cli.main` with ``slides`` first)."""
    from ..cli import main as course_lib_main

    return course_lib_main(["slides", *(sys.argv[1:] if argv is None else argv)])
