"""A chapter notebook turned into a lecture notebook: title and agenda slides, set-up cell skipped, MyST made
plain, jupyter-book tags honoured, the book's prose moved to the speaker notes, one notes block per slide,
the exercise summary at the end (rules: :mod:`course_lib.instructor.slides`)."""

from __future__ import annotations

import copy
import html
import re
from typing import Any, Optional, Sequence

__all__ = [
    "COURSE_NAME",
    "SLIDE_ONLY",
    "ON_SLIDE",
    "SLIDE_NOTES",
    "SLIDE_OUTPUT_ONLY",
    "SLIDE_CODE_ONLY",
    "prepare_lecture",
    "count_slides",
    "chapter_title",
    "myst_to_markdown",
    "split_for_slide",
]

COURSE_NAME = "Transformers for Vision"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_EXERCISES = re.compile(r"^(?:\d+(?:\.\d+)*\.?\s+)?exercises?\b", re.IGNORECASE)
_VISIBLE_START = {"slide", "subslide"}
_AGENDA_SKIP = re.compile(r"^(?:\d+(?:\.\d+)*\.?\s+)?(exercises?|questions?|key takeaways|summary)\b", re.I)

# Cell tags that give the lecture its own text (see the authors' guide in the package docstring).
SLIDE_ONLY = "slide-only"  # markdown shown in the deck only; the book removes it (scripts/offline_book.py)
ON_SLIDE = "on-slide"  # a book markdown cell shown on the slide as written
SLIDE_NOTES = "slide-notes"  # a book markdown cell that is all speaker notes in the deck
SLIDE_OUTPUT_ONLY = "slide-output-only"  # a code cell whose slide shows the output, not the code
SLIDE_CODE_ONLY = "slide-code-only"  # a code cell whose slide shows the code, not the output


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
                "seealso", "admonition", "dropdown"}


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


def _blocks(source: str) -> list[str]:
    """A markdown text cut into blocks: runs of lines between blank lines, a fenced code block or a
    ``$$ ... $$`` display equation kept whole even across blank lines."""
    blocks: list[list[str]] = [[]]
    closer: Optional[str] = None
    for line in source.splitlines():
        stripped = line.strip()
        if closer is None and not stripped:
            blocks.append([])
            continue
        blocks[-1].append(line)
        if closer is not None:
            if stripped.startswith(closer) or (closer == "$$" and stripped.endswith("$$")):
                closer = None
        elif stripped.startswith(("```", "~~~")):
            closer = stripped[:3]
        elif stripped.startswith("$$") and (stripped == "$$" or not stripped[2:].rstrip().endswith("$$")):
            closer = "$$"
    return ["\n".join(block) for block in blocks if block]


def _on_slide(block: str) -> bool:
    """Blocks of book prose that stay on the slide: headings, display equations, images."""
    first = block.lstrip()
    return bool(_HEADING.match(first.splitlines()[0])) or first.startswith(("$$", "![", "<img"))


def split_for_slide(source: str) -> tuple[str, str]:
    """(slide, notes): a book markdown cell's headings, display equations and images stay on the slide;
    its paragraphs, lists, tables and quotes become the slide's speaker notes."""
    slide, notes = [], []
    for block in _blocks(source):
        (slide if _on_slide(block) else notes).append(block)
    return "\n\n".join(slide), "\n\n".join(notes)


def _tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _new_markdown(source: str, slide_type: str, origin: str) -> Any:
    import nbformat

    cell = nbformat.v4.new_markdown_cell(source)
    _set_slide_type(cell, slide_type)
    cell.metadata["tfv_injected"] = origin
    return cell


def _agenda_cell(cells: Sequence[Any]) -> Optional[Any]:
    """The "Today" slide: the chapter's level-2 sections (without numbers), questions and exercises aside.
    None when the chapter has none, or writes its own (a slide-only cell headed "## Today")."""
    items = []
    for cell in cells:
        if SLIDE_ONLY in _tags(cell) and any(text.strip() == "Today" for _, text in _headings(cell)):
            return None
        if _slide_type(cell) in {"skip", "notes"} and SLIDE_ONLY not in _tags(cell):
            continue
        for level, text in _headings(cell):
            text = re.sub(r"^\d+(?:\.\d+)*\.?\s+", "", myst_to_markdown(text)).strip()
            if level == 2 and text and not _AGENDA_SKIP.match(text) and SLIDE_ONLY not in _tags(cell):
                items.append(text)
    if not items:
        return None
    return _new_markdown("## Today\n\n" + "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1)),
                         "slide", "agenda")


def _lecture_text(cells: list[Any]) -> list[Any]:
    """Apply the lecture-text tags: each book markdown cell keeps on the slide what :func:`split_for_slide`
    keeps (``on-slide``: all of it; ``slide-notes``: nothing) and hands the rest to the speaker notes."""
    out: list[Any] = []
    for cell in cells:
        tags, role = _tags(cell), _slide_type(cell)
        injected = "tfv_injected" in cell.get("metadata", {})
        if cell.get("cell_type") != "markdown" or role in {"skip", "notes"} or tags & {SLIDE_ONLY, ON_SLIDE} \
                or injected:
            out.append(cell)
            continue
        slide, notes = ("", _source(cell)) if SLIDE_NOTES in tags else split_for_slide(_source(cell))
        if slide:
            cell.source = slide
            out.append(cell)
        if notes:
            notes_cell = _new_markdown(notes, "notes", "book prose")
            if not slide:
                # remember the slide this cell would have opened: _place_notes passes it on
                notes_cell.metadata["tfv_opens"] = role or "-"
            out.append(notes_cell)
    return out


def _place_notes(cells: list[Any]) -> list[Any]:
    """One speaker-notes cell per slide (reveal.js shows only a slide's first ``<aside class="notes">``),
    at the end of the slide.

    A book cell that became all notes passes the slide it opened on to the next cell shown, whose slide its
    notes then open. When that next cell opens a slide of its own, nothing is passed on and the notes stay
    with the slide before (a chapter's introduction becomes the notes of the agenda slide).
    """
    out: list[Any] = []
    notes: list[str] = []
    pending: Optional[tuple[str, int]] = None  # (slide type, where its notes start in ``notes``)

    def flush(upto: Optional[int] = None) -> None:
        upto = len(notes) if upto is None else upto
        if upto:
            out.append(_new_markdown("\n\n".join(notes[:upto]), "notes", "notes"))
            del notes[:upto]

    for cell in cells:
        role = _slide_type(cell)
        if role == "skip":
            out.append(cell)
        elif role == "notes":
            opens = cell.get("metadata", {}).pop("tfv_opens", None)
            if opens in _VISIBLE_START and pending is None:
                pending = (opens, len(notes))
            notes.append(_source(cell))
        else:
            if role in _VISIBLE_START:
                flush()
            elif pending is not None:
                _set_slide_type(cell, pending[0])
                flush(pending[1])
            pending = None
            out.append(cell)
    flush()
    return out


def prepare_lecture(nb: Any, chapter: str, course: str = COURSE_NAME) -> Any:
    """Return a copy of chapter notebook ``nb`` ready for nbconvert's SlidesExporter.

    Applies the rules listed in the package docstring (title and agenda slides, set-up cell, jupyter-book
    and lecture tags, the book's prose in the notes, exercise summary at the end). ``chapter`` is the
    notebook's stem, e.g. ``"01_self_attention"``.
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
        tags = _tags(cell)
        if "remove-cell" in tags:
            _set_slide_type(cell, "skip")
        if cell.get("cell_type") == "code":
            if tags & {"remove-input", "hide-input", SLIDE_OUTPUT_ONLY}:
                cell.metadata["transient"] = {"remove_source": True}
            if tags & {"remove-output", SLIDE_CODE_ONLY}:
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

    agenda = _agenda_cell(cells)
    cells = _lecture_text(cells)

    # The chapter's first visible cell opens its own slide instead of continuing the title (or agenda) slide.
    for cell in cells:
        if _slide_type(cell) not in {"skip", "notes"}:
            if _slide_type(cell) not in _VISIBLE_START:
                _set_slide_type(cell, "slide")
            break

    head = [_title_cell(title, course, _chapter_label(chapter))] + ([agenda] if agenda is not None else [])
    nb.cells = _place_notes(head + cells)
    return nb


def count_slides(lecture_nb: Any) -> int:
    """Number of slides reveal.js will show for a notebook returned by :func:`prepare_lecture`.

    nbconvert's rule: the first cell that is neither ``skip`` nor ``notes`` opens the first slide; after
    it, every ``slide`` or ``subslide`` cell opens one more (reveal.js counts each innermost section).
    """
    types = [_slide_type(cell) or "-" for cell in lecture_nb.cells]
    first = next((i for i, t in enumerate(types) if t not in {"skip", "notes"}), None)
    if first is None:
        raise ValueError("all cells are hidden (skip or notes): no slide to show")
    return 1 + sum(1 for t in types[first + 1 :] if t in _VISIBLE_START)
