"""The built book (``_build/html``, from ``make book``) shows no speaker notes and no slide-only cells; the
slides keep them.

A cell with ``slide_type: notes`` holds a lecturer's terse notes for the slide decks; a markdown cell tagged
``slide-only`` holds a slide's own short text. The book's local Sphinx extension
(``scripts/offline_book.py``) keeps both out of the HTML; this test reads every built page and fails if the
text of any such cell of any chapter appears in any of them (a phrase that the chapter's book prose also
uses proves nothing and is not counted). The matcher is checked
on the same pages: the text of the chapters' ordinary markdown cells must be found by it (so a page that
lost its prose, or an extraction that finds nothing, cannot pass for "no notes").
Static: reads files only, no browser.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOK_DIR = ROOT / "_build" / "html"
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
# Markup a page does not show verbatim: math, code spans, emphasis, list bullets, links.
MARKUP = re.compile(r"\$[^$]*\$|[`*\\{}\[\]()]|^\s*(?:[-*+]|\d+\.)\s+|^#+\s+", re.MULTILINE)
MIN_WORDS, MIN_CHARS = 4, 20  # a shorter fragment could occur in any prose


BLOCKS = {"p", "div", "li", "ul", "ol", "br", "pre", "section", "table", "tr", "td", "th", "dt", "dd",
          "details", "summary", "h1", "h2", "h3", "h4", "h5", "h6"}


class _PageText(HTMLParser):
    """The text of a page outside scripts and styles, a space between blocks (none between inline tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in {"script", "style"}:
            self._skip += 1
        elif tag in BLOCKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"} and self._skip:
            self._skip -= 1
        elif tag in BLOCKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _normalise(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").split())


def page_text(html: str) -> str:
    parser = _PageText()
    parser.feed(html)
    return _normalise("".join(parser.parts))


def fragments(markdown: str) -> list[str]:
    """Runs of plain words in a markdown text, split at markup, of at least MIN_WORDS words and MIN_CHARS."""
    pieces = []
    for line in markdown.splitlines():
        for piece in MARKUP.split(line):
            piece = _normalise(piece).strip(" .,:;-")
            if len(piece.split()) >= MIN_WORDS and len(piece) >= MIN_CHARS:
                pieces.append(piece)
    return pieces


def _slide_type(cell: dict) -> str | None:
    return (cell.get("metadata", {}).get("slideshow") or {}).get("slide_type")


def _cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


def _lecture_only(cell: dict) -> bool:
    return _slide_type(cell) == "notes" or "slide-only" in cell.get("metadata", {}).get("tags", [])


def _notes(path: Path) -> list[str]:
    """Sources of the chapter's lecture-only cells: speaker notes and slide-only cells."""
    return ["".join(c["source"]) for c in _cells(path) if _lecture_only(c)]


def _text_outputs(cell: dict) -> str:
    texts = []
    for out in cell.get("outputs", []):
        text = out.get("text") or out.get("data", {}).get("text/plain") or ""
        texts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(texts)


def _book_prose(path: Path) -> str:
    """What the book itself shows of the chapter (its markdown, code and printed output), as the matcher
    sees it: a slide may quote the book's code or numbers, which then prove nothing."""
    cells = json.loads(path.read_text())["cells"]
    shown = "\n".join("".join(c["source"]) + "\n" + _text_outputs(c) for c in cells
                      if c["cell_type"] == "code" or not _lecture_only(c))
    shown = re.sub(r"\]\([^)]*\)", "]", shown)  # a link shows its words, not its address
    shown = re.sub(r"\{[a-z]+\}`([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", shown)  # a role shows its text
    return " | ".join(_normalise(line) for line in MARKUP.sub(" ", shown).split("\n\n"))


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    files = sorted(BOOK_DIR.rglob("*.html"))
    if not files:
        pytest.fail(f"no HTML under {BOOK_DIR}: build the book first (e.g. `make book`)")
    return {str(p.relative_to(BOOK_DIR)): page_text(p.read_text(encoding="utf-8")) for p in files}


def test_matcher_finds_the_fragments_of_a_page() -> None:
    text = page_text("<main><p>Shuffle the <code>tokens</code>: the block's output</p>"
                     "<script>var notes = 'a hidden script line here';</script></main>")
    assert "Shuffle the tokens: the block's output" in text
    assert "hidden script" not in text
    assert fragments("- Shuffle the tokens: the block's output is $f(PX)$ the same set, shuffled.") == [
        "Shuffle the tokens: the block's output is", "the same set, shuffled"]


def test_the_chapters_have_speaker_notes() -> None:
    assert sum(len(_notes(path)) for path in CHAPTERS) >= len(CHAPTERS), "expected notes in every chapter"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_prose_is_found_in_its_page(path: Path, pages: dict[str, str]) -> None:
    """Control: the same matcher finds the chapter's ordinary prose in its page."""
    text = pages[f"book/{path.stem}.html"]
    prose = [f for c in _cells(path) if not _lecture_only(c) for f in fragments("".join(c["source"]))]
    found = sum(f in text for f in prose)
    assert prose and found >= 0.8 * len(prose), f"only {found} of {len(prose)} prose fragments found"


def test_no_speaker_notes_in_any_page(pages: dict[str, str]) -> None:
    shown = []
    for path in CHAPTERS:
        book = _book_prose(path)
        for note in _notes(path):
            for fragment in fragments(note):
                if fragment in book:
                    continue
                shown += [f"{page}: {fragment!r} (notes of {path.name})" for page, text in pages.items()
                          if fragment in text]
    assert not shown, "speaker notes or slide-only text appear in the book:\n" + "\n".join(shown)
