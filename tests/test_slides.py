"""Lecture decks without a browser: structure of the generated HTML, offline URLs, single source, CLI.

The browser checks (JavaScript errors, network, Reveal's own slide count, math, images) are in
``tests/browser/test_slides.py``.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import slides_expect as expect

from course_lib.instructor import slides

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "slides_sample.ipynb"
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))

# Building a deck copies reveal.js and MathJax from node_modules/ (`make vendor`).
needs_vendor = pytest.mark.skipif(
    not (ROOT / "node_modules" / "reveal.js").is_dir(), reason="node_modules missing: run `make vendor`"
)


class _Deck(HTMLParser):
    """Collects reveal.js's view of a deck: leaf <section>s with their text, notes, fragments, assets."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[dict] = []  # open <section>s
        self.slides: list[dict] = []  # closed leaf sections, in document order
        self.assets: list[str] = []  # src/href of <script>, <link>, <img>
        self.fragments = 0
        self.in_notes = 0
        self.depth_at_notes: list[int] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "section":
            if self.stack:
                self.stack[-1]["has_child"] = True
            self.stack.append({"text": [], "notes": [], "has_child": False})
        if tag == "aside" and "notes" in (attrs.get("class") or ""):
            self.in_notes += 1
        if "fragment" in (attrs.get("class") or "").split():
            self.fragments += 1
        for key in ("src", "href"):
            if tag in ("script", "link", "img") and attrs.get(key):
                self.assets.append(attrs[key])

    def handle_endtag(self, tag: str) -> None:
        if tag == "aside" and self.in_notes:
            self.in_notes -= 1
        if tag == "section":
            section = self.stack.pop()
            if not section["has_child"]:
                self.slides.append(section)

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.stack[-1]["notes" if self.in_notes else "text"].append(data)


def parse(path: Path) -> _Deck:
    deck = _Deck()
    deck.feed(path.read_text(encoding="utf-8"))
    return deck


def text(section: dict) -> str:
    return " ".join("".join(section["text"]).split())


@pytest.fixture(scope="module")
def sample_deck(tmp_path_factory) -> Path:
    return slides.build_deck(SAMPLE, tmp_path_factory.mktemp("slides"))


@needs_vendor
@pytest.mark.parametrize("notebook", [SAMPLE, *CHAPTERS], ids=lambda p: p.stem)
def test_deck_has_one_section_per_slide_cell(notebook: Path, tmp_path: Path) -> None:
    nb = expect.read(notebook)
    deck = parse(slides.build_deck(notebook, tmp_path))
    assert len(deck.slides) == expect.slide_count(nb)
    # title slide first: chapter title (without its number) and course name
    first = text(deck.slides[0])
    assert re.sub(r"^\d+\.\s*", "", expect.title(nb)) in first
    assert expect.COURSE in first and "Lecture slides" in first
    # the exercise summary closes the deck
    assert re.search(r"Exercises?\b", text(deck.slides[-1]))


@needs_vendor
def test_sample_content(sample_deck: Path) -> None:
    nb = expect.read(SAMPLE)
    deck = parse(sample_deck)
    html = sample_deck.read_text(encoding="utf-8")
    assert "SKIPPED-DERIVATION-MARKER" not in html  # skip cell
    assert "import ipywidgets as widgets" not in html  # set-up cell skipped by default
    assert "ax.set_title" not in html  # hide-input: the figure shows, its code does not
    embedded = [a for a in deck.assets if a.startswith("data:image/")]
    assert len(embedded) == expect.raster_images(nb)  # figure outputs and the markdown image, inlined
    for note in expect.notes(nb):  # speaker notes inside <aside class="notes"> of their slide
        assert any(note.split(":")[1].strip()[:30] in "".join(s["notes"]) for s in deck.slides)
    fragment_cells = [r for r in expect.roles(nb) if r == "fragment"]
    assert deck.fragments == len(fragment_cells)
    # Exercises moved after "Further reading", the last section of the notebook
    titles = [text(s) for s in deck.slides]
    assert titles[-2].startswith("Further reading") and titles[-1].startswith("Exercises")
    assert "Show that the weights of every query sum to one" in titles[-1]  # its fragment moved along
    # the title slide's heading is not repeated on the first content slide
    assert expect.title(nb) not in titles[1]


@needs_vendor
def test_every_url_is_relative_and_vendored(sample_deck: Path) -> None:
    out = sample_deck.parent
    deck = parse(sample_deck)
    html = sample_deck.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    without_data = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "", html)
    for host in ("unpkg.com", "cdnjs", "jsdelivr", "googleapis", "mathjax.org"):
        assert host not in without_data
    assert "import mermaid" not in html
    local = [a.split("?")[0] for a in deck.assets if not a.startswith("data:")]
    assert {"vendor/require.js", "vendor/jquery.min.js", "vendor/mathjax2/MathJax.js"} <= set(local)
    for asset in local:
        assert (out / asset).is_file(), asset
    for path in (
        "reveal.js/dist/reveal.js",
        "reveal.js/plugin/notes/notes.js",
        "reveal.js/dist/theme/white.css",
        "widgets/embed-amd.js",
        "mathjax2/config/TeX-AMS_CHTML-full.js",
    ):
        assert (out / "vendor" / path).is_file(), path
    # reveal.js, MathJax and the widget renderer are loaded by require.js / script at run time
    assert '"vendor/reveal.js/dist/reveal.js"' in html and "'vendor/widgets/embed-amd.js'" in html
    # no theme pulls in a web font from the network
    css = (out / "vendor/reveal.js/dist/theme/white.css").read_text()
    assert "http" not in re.sub(r"/\*.*?\*/", "", css, flags=re.S)


@needs_vendor
def test_deck_follows_its_notebook(tmp_path: Path) -> None:
    """Single source: edit a cell of a copy of the chapter and the deck changes with it."""
    chapter = tmp_path / "book" / "09_copy.ipynb"
    chapter.parent.mkdir()
    shutil.copy(SAMPLE, chapter)
    shutil.copy(SAMPLE.with_name("slides_sample_diagram.png"), chapter.parent)
    before = parse(slides.build_deck(chapter, tmp_path / "out"))

    nb = nbformat.read(chapter, as_version=4)
    table = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("| model"))
    table.source = "## A slide added by the test\n\nEDITED-IN-THE-NOTEBOOK"
    table.metadata["slideshow"] = {"slide_type": "slide"}  # was "-": continued the figure's slide
    nbformat.write(nb, chapter)
    after = parse(slides.build_deck(chapter, tmp_path / "out"))

    assert len(after.slides) == len(before.slides) + 1 == expect.slide_count(nb)
    assert any("EDITED-IN-THE-NOTEBOOK" in text(s) for s in after.slides)
    assert not any("ViT-Ti/16" in text(s) for s in after.slides)
    assert any("ViT-Ti/16" in text(s) for s in before.slides)
    assert "Chapter 9" in text(after.slides[0])


@needs_vendor
def test_missing_exercises_get_a_final_slide(tmp_path: Path) -> None:
    nb = nbformat.read(SAMPLE, as_version=4)
    nb.cells = [
        c for c in nb.cells if "Exercises" not in c.source and "weights of every query" not in c.source
    ]
    path = tmp_path / "03_no_exercises.ipynb"
    nbformat.write(nb, path)
    shutil.copy(SAMPLE.with_name("slides_sample_diagram.png"), tmp_path)
    deck = parse(slides.build_deck(path, tmp_path / "out"))
    assert len(deck.slides) == expect.slide_count(nb)
    assert "exercises/03_no_exercises.ipynb" in text(deck.slides[-1])


@pytest.mark.parametrize("notebook", [SAMPLE, *CHAPTERS], ids=lambda p: p.stem)
def test_lecture_notebook_slide_count(notebook: Path) -> None:
    """The count shown in the index (nbconvert's slide/subslide logic) agrees with the documented rules."""
    nb = expect.read(notebook)
    lecture = slides.prepare_lecture(nb, notebook.stem)
    assert slides.count_slides(lecture) == expect.slide_count(nb)
    assert lecture.cells[0].metadata["slideshow"]["slide_type"] == "slide"
    assert nb.cells == expect.read(notebook).cells  # the chapter itself is left untouched


def test_myst_is_turned_into_markdown() -> None:
    source = (
        "(sec-label)=\n"
        "## Scaling {ref}`the section <sec-label>` and {math}`x^2`, "
        "see [ch. 5](05_vision_transformer.ipynb#a) and [web](https://example.org/a.ipynb)\n"
        "```{note} Careful\n:class: dropdown\nbody line\n```\n"
        "```{math}\n:label: eq-1\na=b\n```\n"
        "$$ y = x $$ (eq-2)"
    )
    assert slides.myst_to_markdown(source).splitlines() == [
        "## Scaling the section and $x^2$, see [ch. 5](05_vision_transformer.slides.html#a)"
        " and [web](https://example.org/a.ipynb)",
        "> **Careful**",
        ">",
        "> body line",
        "",
        "$$",
        "a=b",
        "$$",
        "$$ y = x $$",
    ]


@needs_vendor
def test_build_all_index_and_cli(tmp_path: Path, capsys) -> None:
    book = tmp_path / "book"
    book.mkdir()
    for name in ("01_first.ipynb", "02_second.ipynb"):
        shutil.copy(SAMPLE, book / name)
    shutil.copy(SAMPLE.with_name("slides_sample_diagram.png"), book)
    out = tmp_path / "slides"

    assert slides.main(["2", "--book-dir", str(book), "--out", str(out)]) == 0
    assert [p.name for p in out.glob("*.slides.html")] == ["02_second.slides.html"]
    count = expect.slide_count(expect.read(SAMPLE))
    assert f"02_second.slides.html: {count} slides" in capsys.readouterr().out.replace(str(out) + "/", "")

    decks = slides.build_all(book, out, course="My course")
    assert [d.chapter for d in decks] == ["01_first", "02_second"]
    assert all(d.num_slides == expect.slide_count(expect.read(SAMPLE)) for d in decks)
    index = (out / "index.html").read_text()
    assert 'href="01_first.slides.html"' in index and 'href="02_second.slides.html"' in index
    assert "My course" in index and "My course" in (out / "01_first.slides.html").read_text()

    assert slides.main(["99", "--book-dir", str(book), "--out", str(out)]) == 2
    assert "unknown chapter '99'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a notebook"):
        slides.build_deck(book / "missing.ipynb", out)


@needs_vendor
def test_vendor_copied_once(tmp_path: Path) -> None:
    vendor = slides.install_vendor(tmp_path)
    stamp = (vendor / ".vendor-stamp.json").stat().st_mtime_ns
    reveal = (vendor / "reveal.js/dist/reveal.js").stat().st_mtime_ns
    slides.install_vendor(tmp_path)
    assert (vendor / ".vendor-stamp.json").stat().st_mtime_ns == stamp
    assert (vendor / "reveal.js/dist/reveal.js").stat().st_mtime_ns == reveal
    size = sum(p.stat().st_size for p in vendor.rglob("*") if p.is_file())
    assert size < 40e6  # MathJax trimmed (the npm package alone is 71 MB)


def test_book_prose_is_split_between_slide_and_notes() -> None:
    cell = (
        "## Masks\n\nA mask removes keys a query may not see.\n\n"
        "$$\nA = \\mathrm{softmax}(\\ldots)\n\n$$\n\n"
        "- padding\n- the future\n\n![a picture](p.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    slide, notes = slides.split_for_slide(cell)
    assert slide == "## Masks\n\n$$\nA = \\mathrm{softmax}(\\ldots)\n\n$$\n\n![a picture](p.png)"
    assert notes == (
        "A mask removes keys a query may not see.\n\n- padding\n- the future\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |"
    )
    assert slides.split_for_slide("Only prose here.") == ("", "Only prose here.")


@needs_vendor
def test_lecture_text_tags(sample_deck: Path) -> None:
    """slide-only text on the slide, the slide-notes paragraph in that slide's notes, one notes block per
    slide, the agenda second."""
    html = sample_deck.read_text(encoding="utf-8")
    deck = parse(sample_deck)
    slide = next(s for s in deck.slides if "SLIDE-ONLY-LINE" in text(s))
    assert "READERS-PARAGRAPH" not in text(slide)
    assert "READERS-PARAGRAPH" in "".join(slide["notes"])
    assert "A paragraph for readers" in "".join(slide["notes"])  # its heading went along
    assert text(deck.slides[1]).startswith("Today")
    for item in expect.agenda(expect.read(SAMPLE)):
        assert item.replace("$", "") in text(deck.slides[1]) or "sqrt" in item
    sections = re.findall(r"<section\b(.*?)</section>", html, flags=re.S)
    assert all(section.count('<aside class="notes">') <= 1 for section in sections)
