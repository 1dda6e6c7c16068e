"""Lecture slides: one offline reveal.js deck per chapter notebook.

The decks are generated from the chapter notebooks themselves, so a cell's role in the lecture is decided
where the cell is written. ``make slides`` (or ``course-lib slides [CHAPTER ...]``) writes::

    _build/slides/index.html                  links to every deck (and PDF)
    _build/slides/01_self_attention.slides.html
    _build/slides/01_self_attention.pdf       only with --pdf
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

What the generator adds or decides for you:

* a title slide (chapter title from the notebook's first ``# `` heading, the course name, "Lecture
  slides"). The heading line itself is removed from its cell so the title is not shown twice; a cell that
  held nothing but the heading disappears;
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
``subslide`` cell, plus the injected title (and exercise) slide.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

__all__ = [
    "COURSE_NAME",
    "Deck",
    "prepare_lecture",
    "count_slides",
    "chapter_title",
    "myst_to_markdown",
    "install_vendor",
    "find_node_modules",
    "build_deck",
    "build_all",
    "export_pdf",
    "export_pdfs",
    "chromium_path",
    "write_index",
    "main",
]

COURSE_NAME = "Transformers for Vision"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
VENDOR = "vendor"

# Relative URLs (from a deck in out_dir) of the vendored assets; see install_vendor for the file layout.
REVEAL_PREFIX = f"{VENDOR}/reveal.js"
REQUIRE_JS = f"{VENDOR}/require.js"
JQUERY = f"{VENDOR}/jquery.min.js"
MATHJAX = f"{VENDOR}/mathjax2/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
WIDGETS = f"{VENDOR}/widgets/embed-amd.js"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_EXERCISES = re.compile(r"^(?:\d+(?:\.\d+)*\.?\s+)?exercises?\b", re.IGNORECASE)
_VISIBLE_START = {"slide", "subslide"}


@dataclass
class Deck:
    """One built deck: where it is and what it holds."""

    chapter: str  # notebook stem, e.g. "01_self_attention"
    title: str
    html: Path
    num_slides: int
    pdf: Optional[Path] = None


# ---- notebook -> lecture notebook ------------------------------------------------------------------------


def _slide_type(cell: Any) -> Optional[str]:
    """The explicit slide type of a cell, or None when it has no slideshow metadata."""
    slideshow = cell.get("metadata", {}).get("slideshow") or {}
    return slideshow.get("slide_type")


def _set_slide_type(cell: Any, slide_type: str) -> None:
    cell.setdefault("metadata", {}).setdefault("slideshow", {})["slide_type"] = slide_type


def _source(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _heading_lines(cell: Any) -> list[tuple[int, int, str]]:
    """(line index, level, text) of every ATX heading of a markdown cell, ignoring fenced code."""
    if cell.get("cell_type") != "markdown":
        return []
    found, fenced = [], False
    for index, line in enumerate(_source(cell).splitlines()):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append((index, len(match.group(1)), match.group(2)))
    return found


def _headings(cell: Any) -> list[tuple[int, str]]:
    """(level, text) of every heading of a markdown cell."""
    return [(level, text) for _, level, text in _heading_lines(cell)]


def chapter_title(nb: Any, default: str = "") -> str:
    """Text of the notebook's first level-1 heading (``default`` when there is none)."""
    for cell in nb.cells:
        for level, text in _headings(cell):
            if level == 1:
                return text
    return default


# MyST (jupyter-book) syntax that plain markdown would show as is.
_MYST_TARGET = re.compile(r"^\s*\([\w\-.:]+\)=\s*$")
_MYST_ROLE = re.compile(r"\{([a-z][\w:-]*)\}`([^`]*)`")
_MYST_FENCE = re.compile(r"^(`{3,}|:{3,})\{([\w-]+)\}\s*(.*?)\s*$")
_MYST_OPTION = re.compile(r"^:[\w-]+:")
_EQ_LABEL = re.compile(r"(\$\$)\s*\([\w\-.:]+\)\s*$")
_CHAPTER_LINK = re.compile(r"\]\((?!\w+://)([^)#\s]+)\.ipynb(#[^)]*)?\)")
_ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger", "error",
                "seealso", "admonition"}


def _role(match: re.Match) -> str:
    name, text = match.group(1), match.group(2)
    if name == "math":
        return f"${text}$"
    # {ref}`words <target>` shows "words"; {ref}`target` shows the target
    explicit = re.match(r"^(.*?)\s*<[^>]*>$", text, re.S)
    return explicit.group(1) if explicit else text


def myst_to_markdown(source: str) -> str:
    """Turn the MyST constructs chapters use into plain markdown that nbconvert renders.

    Drops ``(label)=`` targets and ``$$ ... $$ (label)`` equation labels, shows roles as their text
    (``{math}`` as ``$...$``), renders ``{note}``-style directives as a quote and ``{math}`` as display
    math, and points links to sibling chapters (``02_x.ipynb``) at their decks (``02_x.slides.html``).
    """
    out: list[str] = []
    fence: Optional[tuple[str, str]] = None  # (closing marker, directive name)
    for line in source.splitlines():
        if fence is not None:
            marker, name = fence
            if line.strip() == marker:
                out.append("$$" if name == "math" else "")
                fence = None
            elif _MYST_OPTION.match(line.strip()):
                continue
            else:
                out.append(("> " + line) if name in _ADMONITIONS else line)
            continue
        match = _MYST_FENCE.match(line)
        if match:
            marker, name, argument = match.groups()
            fence = (marker, name)
            if name == "math":
                out.append("$$")
            elif name in _ADMONITIONS:
                out.append(f"> **{argument or name.capitalize()}**\n>")
            continue
        if _MYST_TARGET.match(line):
            continue
        line = _EQ_LABEL.sub(r"\1", line)
        line = _MYST_ROLE.sub(_role, line)
        line = _CHAPTER_LINK.sub(lambda m: f"]({m.group(1)}.slides.html{m.group(2) or ''})", line)
        out.append(line)
    return "\n".join(out)


def _chapter_label(stem: str) -> str:
    """'01_self_attention' -> 'Chapter 1'; '' when the name carries no number."""
    match = re.match(r"^(\d+)[_\-. ]", stem)
    return f"Chapter {int(match.group(1))}" if match else ""


def _title_cell(title: str, course: str, label: str) -> Any:
    import nbformat

    subtitle = " · ".join(part for part in ("Lecture slides", label) if part)
    if label:  # "1. Self-attention" + "Chapter 1" would show the number twice
        title = re.sub(r"^(?:chapter\s+)?\d+[.:]?\s+", "", title, flags=re.IGNORECASE) or title
    # Raw HTML, so that the title slide does not get an anchor link or a table-of-contents id.
    source = (
        '<div class="tfv-title-slide">\n'
        f"<h1>{html.escape(title)}</h1>\n"
        f'<p class="tfv-course">{html.escape(course)}</p>\n'
        f'<p class="tfv-subtitle">{html.escape(subtitle)}</p>\n'
        "</div>"
    )
    cell = nbformat.v4.new_markdown_cell(source)
    _set_slide_type(cell, "slide")
    cell.metadata["tfv_injected"] = "title"
    return cell


def _exercise_cell(stem: str) -> Any:
    import nbformat

    cell = nbformat.v4.new_markdown_cell(
        "## Exercises\n\n"
        f"The exercises for this chapter are in `exercises/{stem}.ipynb`: open it in Jupyter or Colab, "
        "fill in the marked cells and run the check cell after each exercise."
    )
    _set_slide_type(cell, "slide")
    cell.metadata["tfv_injected"] = "exercises"
    return cell


def _section_end(cells: Sequence[Any], start: int, level: int) -> int:
    """Index one past the section that starts at ``cells[start]`` with a heading of ``level``."""
    for index in range(start + 1, len(cells)):
        if any(lvl <= level for lvl, _ in _headings(cells[index])):
            return index
    return len(cells)


def prepare_lecture(nb: Any, chapter: str, course: str = COURSE_NAME) -> Any:
    """Return a copy of chapter notebook ``nb`` ready for nbconvert's SlidesExporter.

    Applies the rules listed in the module docstring (title slide, set-up cell, jupyter-book tags, exercise
    summary at the end). ``chapter`` is the notebook's stem, e.g. ``"01_self_attention"``.
    """
    nb = copy.deepcopy(nb)
    cells = list(nb.cells)
    title = chapter_title(nb, default=chapter.replace("_", " "))

    # The title line moves to the title slide; a cell left empty disappears.
    for cell in cells:
        h1 = [index for index, level, _ in _heading_lines(cell) if level == 1]
        if h1:
            lines = _source(cell).splitlines()
            rest = "\n".join(lines[: h1[0]] + lines[h1[0] + 1 :]).strip()
            cell.source = rest
            if not rest:
                _set_slide_type(cell, "skip")
            break

    first_code = next((c for c in cells if c.get("cell_type") == "code"), None)
    if first_code is not None and _slide_type(first_code) is None:
        _set_slide_type(first_code, "skip")

    for cell in cells:
        if cell.get("cell_type") == "markdown":
            cell.source = myst_to_markdown(_source(cell))
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "remove-cell" in tags:
            _set_slide_type(cell, "skip")
        if cell.get("cell_type") == "code":
            if tags & {"remove-input", "hide-input"}:
                cell.metadata["transient"] = {"remove_source": True}
            if "remove-output" in tags:
                cell.outputs = []

    # The exercise summary closes the deck.
    exercise_start = None
    for index, cell in enumerate(cells):
        heads = _headings(cell)
        if heads and _EXERCISES.match(heads[0][1]):
            exercise_start = index
    if exercise_start is None:
        cells.append(_exercise_cell(chapter))
    else:
        level = _headings(cells[exercise_start])[0][0]
        end = _section_end(cells, exercise_start, level)
        section = cells[exercise_start:end]
        cells = cells[:exercise_start] + cells[end:] + section
        if _slide_type(section[0]) not in _VISIBLE_START:
            _set_slide_type(section[0], "slide")

    # The chapter's first visible cell opens its own slide instead of continuing the title slide.
    for cell in cells:
        if _slide_type(cell) not in {"skip", "notes"}:
            if _slide_type(cell) not in _VISIBLE_START:
                _set_slide_type(cell, "slide")
            break

    nb.cells = [_title_cell(title, course, _chapter_label(chapter))] + cells
    return nb


def count_slides(lecture_nb: Any) -> int:
    """Number of slides reveal.js will show for a notebook returned by :func:`prepare_lecture`."""
    from nbconvert.exporters.slides import _RevealMetadataPreprocessor

    processed, _ = _RevealMetadataPreprocessor().preprocess(lecture_nb, {})
    return sum(1 for cell in processed.cells if cell.metadata.get("subslide_start", False))


# ---- assets ----------------------------------------------------------------------------------------------


def find_node_modules(node_modules: Optional[os.PathLike] = None) -> Path:
    """Folder holding the npm packages (``reveal.js``, ``mathjax2``, ...).

    Looked for in this order: the argument, ``$COURSE_LIB_NODE_MODULES``, ``./node_modules``, the
    ``node_modules`` next to this package's source tree.
    """
    candidates = [node_modules, os.environ.get("COURSE_LIB_NODE_MODULES"), Path.cwd() / "node_modules",
                  Path(__file__).resolve().parents[1] / "node_modules"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "reveal.js" / "dist" / "reveal.js").is_file():
            return Path(candidate)
    raise FileNotFoundError(
        "reveal.js not found in node_modules (looked in: "
        + ", ".join(str(c) for c in candidates if c)
        + "); run `make vendor` (npm ci) first"
    )


# (source inside node_modules, destination inside vendor/, patterns to leave out)
_ASSETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("reveal.js/dist", "reveal.js/dist", ("*.map", "*.esm.js")),
    ("reveal.js/plugin/notes", "reveal.js/plugin/notes", ("*.esm.js",)),
    ("reveal.js/LICENSE", "reveal.js/LICENSE", ()),
    ("requirejs/require.js", "require.js", ()),
    ("jquery/dist/jquery.min.js", "jquery.min.js", ()),
    ("@jupyter-widgets/html-manager/dist", "widgets", ("*.map", "embed.js", "*.LICENSE.txt")),
    # MathJax 2, trimmed from 71 MB to the CommonHTML output with the TeX fonts.
    ("mathjax2/MathJax.js", "mathjax2/MathJax.js", ()),
    ("mathjax2/LICENSE", "mathjax2/LICENSE", ()),
    ("mathjax2/config/TeX-AMS_CHTML-full.js", "mathjax2/config/TeX-AMS_CHTML-full.js", ()),
    ("mathjax2/config/Safe.js", "mathjax2/config/Safe.js", ()),
    ("mathjax2/extensions", "mathjax2/extensions", ()),
    ("mathjax2/jax/element", "mathjax2/jax/element", ()),
    ("mathjax2/jax/input/TeX", "mathjax2/jax/input/TeX", ()),
    ("mathjax2/jax/output/CommonHTML", "mathjax2/jax/output/CommonHTML", ()),
    ("mathjax2/jax/output/PreviewHTML", "mathjax2/jax/output/PreviewHTML", ()),
    ("mathjax2/jax/output/NativeMML", "mathjax2/jax/output/NativeMML", ()),
    ("mathjax2/jax/output/PlainSource", "mathjax2/jax/output/PlainSource", ()),
    ("mathjax2/fonts/HTML-CSS/TeX/woff", "mathjax2/fonts/HTML-CSS/TeX/woff", ()),
    ("mathjax2/fonts/HTML-CSS/TeX/otf", "mathjax2/fonts/HTML-CSS/TeX/otf", ()),
    ("mathjax2/localization/en", "mathjax2/localization/en", ()),
)


def _package_version(node_modules: Path, name: str) -> str:
    try:
        return json.loads((node_modules / name / "package.json").read_text())["version"]
    except (OSError, KeyError, ValueError):
        return "?"


def install_vendor(out_dir: os.PathLike, node_modules: Optional[os.PathLike] = None) -> Path:
    """Copy reveal.js, MathJax 2, require.js, jQuery and the widget manager to ``out_dir/vendor``.

    Skipped when the copy is already there for the same package versions (a stamp file records them).
    """
    source = find_node_modules(node_modules)
    dest = Path(out_dir) / VENDOR
    packages = ("reveal.js", "mathjax2", "requirejs", "jquery", "@jupyter-widgets/html-manager")
    stamp_text = json.dumps({p: _package_version(source, p) for p in packages}, sort_keys=True)
    stamp = dest / ".vendor-stamp.json"
    if stamp.is_file() and stamp.read_text() == stamp_text:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    for src_rel, dst_rel, ignore in _ASSETS:
        src, dst = source / src_rel, dest / dst_rel
        if not src.exists():
            raise FileNotFoundError(f"{src} is missing; run `make vendor` (npm ci) again")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*ignore) if ignore else None)
        else:
            shutil.copy2(src, dst)
    stamp.write_text(stamp_text)
    return dest


# ---- building --------------------------------------------------------------------------------------------


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
        reveal_scroll=True,
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
    """The book title from ``_config.yml`` (plain ``title:`` line), else :data:`COURSE_NAME`."""
    config = root / "_config.yml"
    if config.is_file():
        for line in config.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^title:\s*(.+?)\s*$", line)
            if match:
                return match.group(1).strip("\"'")
    return COURSE_NAME


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
    deck present in ``out_dir``, also those built earlier.
    """
    book_dir, out_dir = Path(book_dir), Path(out_dir)
    if course is None:
        course = _course_name(book_dir.resolve().parent)
    notebooks = _resolve_chapters(book_dir, chapters)
    if not notebooks:
        raise ValueError(f"no chapter notebooks (*.ipynb) in {book_dir}")
    decks = [_build(nb, out_dir, course, offline, node_modules) for nb in notebooks]
    if pdf:
        for deck, pdf_path in zip(decks, export_pdfs([d.html for d in decks])):
            deck.pdf = pdf_path
    write_index(out_dir, decks, course=course)
    return decks


def write_index(out_dir: os.PathLike, decks: Sequence[Deck], course: str = COURSE_NAME) -> Path:
    """Write ``out_dir/index.html`` linking ``decks`` and any other deck already in ``out_dir``."""
    out_dir = Path(out_dir)
    by_chapter = {d.chapter: d for d in decks}
    for path in sorted(out_dir.glob("*.slides.html")):
        stem = path.name[: -len(".slides.html")]
        if stem not in by_chapter:
            pdf = out_dir / f"{stem}.pdf"
            by_chapter[stem] = Deck(stem, _html_title(path) or stem, path, -1, pdf if pdf.is_file() else None)
    rows = []
    for stem in sorted(by_chapter):
        deck = by_chapter[stem]
        count = f"{deck.num_slides} slides" if deck.num_slides >= 0 else ""
        pdf = f' · <a href="{html.escape(deck.pdf.name)}">PDF</a>' if deck.pdf else ""
        rows.append(
            f'<li><a class="deck" href="{html.escape(deck.html.name)}">{html.escape(deck.title)}</a>'
            f' <span class="meta">{count}{pdf}</span></li>'
        )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(course)}: lecture slides</title>
<style>
body {{ font-family: sans-serif; max-width: 46em; margin: 3em auto; line-height: 1.6; }}
.meta {{ color: #666; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>{html.escape(course)}: lecture slides</h1>
<p>One reveal.js deck per chapter; works offline (also from <code>file://</code>). Keys: arrows to move,
<kbd>s</kbd> speaker notes, <kbd>o</kbd> overview, <kbd>f</kbd> full screen. Print to PDF: add
<code>?print-pdf</code> to a deck's address and print from Chromium.</p>
<ol>
{chr(10).join(rows)}
</ol>
</body>
</html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _html_title(path: Path) -> str:
    match = re.search(r"<title>(.*?)(?: slides)?</title>", path.read_text(encoding="utf-8")[:4000], re.S)
    return html.unescape(match.group(1).strip()) if match else ""


# ---- PDF -------------------------------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium to drive: ``$CHROMIUM`` or the first of chromium / chromium-browser / google-chrome."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    raise FileNotFoundError("no Chromium found; install it (apt-get install chromium) or set $CHROMIUM")


def export_pdfs(
    decks_html: Sequence[os.PathLike], timeout_s: float = 60.0, browser: Any = None
) -> list[Path]:
    """Print decks to PDF (one page per slide, ``<stem>.pdf`` next to each) through reveal.js's
    ``?print-pdf`` view in headless Chromium.

    ``browser``: a Playwright ``Browser`` to reuse; by default one is started on the system Chromium (see
    :func:`chromium_path`; Playwright never downloads a browser here).
    """
    if browser is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            own = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                return export_pdfs(decks_html, timeout_s, own)
            finally:
                own.close()

    written = []
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = context.new_page()
        for deck_html in decks_html:
            deck_html = Path(deck_html).resolve()
            pdf_path = deck_html.with_name(deck_html.name.replace(".slides.html", "") + ".pdf")
            page.goto(deck_html.as_uri() + "?print-pdf", wait_until="load", timeout=timeout_s * 1000)
            page.wait_for_function("document.documentElement.getAttribute('data-deck-ready') === '1'",
                                   timeout=timeout_s * 1000)
            page.evaluate("() => new Promise(done => window.MathJax ? MathJax.Hub.Queue(done) : done())")
            # reveal.js sets @page to the slide size; each .pdf-page is one page.
            page.pdf(path=str(pdf_path), print_background=True, prefer_css_page_size=True)
            written.append(pdf_path)
    finally:
        context.close()
    return written


def export_pdf(deck_html: os.PathLike, timeout_s: float = 60.0, browser: Any = None) -> Path:
    """Print one deck to ``<stem>.pdf`` next to it; see :func:`export_pdfs`."""
    return export_pdfs([deck_html], timeout_s, browser)[0]


# ---- command line ----------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``course-lib slides [CHAPTER ...] [--book-dir book] [--out _build/slides] [--pdf] [--cdn]``."""
    parser = argparse.ArgumentParser(
        prog="course-lib slides",
        description="Build offline reveal.js lecture decks from the chapter notebooks.",
    )
    parser.add_argument("chapters", nargs="*", metavar="CHAPTER",
                        help="notebook path, stem (01_self_attention) or number (1); default: all chapters")
    parser.add_argument("--book-dir", default="book", help="folder of the chapter notebooks (default: book)")
    parser.add_argument("--out", default="_build/slides", help="output folder (default: _build/slides)")
    parser.add_argument("--pdf", action="store_true",
                        help="also print each deck to PDF with headless Chromium")
    parser.add_argument("--cdn", action="store_true",
                        help="load reveal.js and MathJax from CDNs instead of vendor/ (needs a network)")
    parser.add_argument("--course", default=None, help="course name on the title slides")
    args = parser.parse_args(list(argv) if argv is not None else None)

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


if __name__ == "__main__":
    raise SystemExit(main())
