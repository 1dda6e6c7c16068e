"""What a chapter's lecture deck must contain, derived from the notebook alone.

Written from the rules documented for chapter authors in ``course_lib/slides.py`` (and reveal.js's way of
counting slides: one per ``<section>`` without child sections), NOT from its implementation: the tests
compare these numbers with what the generated HTML and the browser report.
"""

from __future__ import annotations

import re

import nbformat

COURSE = "Transformers for Vision"
EXERCISE_HEADING = re.compile(r"^#{1,6}\s+(?:\d+(?:\.\d+)*\.?\s+)?exercises?\b", re.IGNORECASE)
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]+\)|<img\s", re.IGNORECASE)
RASTER = ("image/png", "image/jpeg", "image/gif")


def _lines_outside_fences(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _first_heading(cell) -> str | None:
    if cell.cell_type != "markdown":
        return None
    return next((line for line in _lines_outside_fences(cell.source) if line.startswith("#")), None)


def read(path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def title(nb) -> str:
    """The chapter title: text of the first level-1 heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in _lines_outside_fences(cell.source):
                if re.match(r"^#\s", line):
                    return line[1:].strip()
    raise AssertionError("chapter has no level-1 heading")


def exercise_index(nb) -> int | None:
    """Index of the heading cell of the last "Exercises" section, if any."""
    found = None
    for index, cell in enumerate(nb.cells):
        heading = _first_heading(cell)
        if heading and EXERCISE_HEADING.match(heading):
            found = index
    return found


LECTURE_TAGS = {"slide-only", "on-slide"}
AGENDA_LEFT_OUT = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?\s+)?(exercises?|questions?|key takeaways|summary)\b", re.IGNORECASE
)


def _keeps_something_on_the_slide(source: str) -> bool:
    """A book markdown cell shows its headings, display equations and images; the rest is notes."""
    for line in _lines_outside_fences(source):
        stripped = line.strip()
        if re.match(r"^#{1,6}\s", stripped) or stripped.startswith(("$$", "![", "<img")):
            return True
    return False


def roles(nb) -> list[str]:
    """Each cell's role in the deck: slide, subslide, fragment, -, skip or notes (before the title slide).

    A book markdown cell with nothing to keep on the slide (or tagged slide-notes) is notes; when it opened
    a slide, the next cell shown opens it instead (unless that cell opens one itself)."""
    result = []
    saw_code = saw_title = False
    exercises = exercise_index(nb)
    for index, cell in enumerate(nb.cells):
        role = cell.metadata.get("slideshow", {}).get("slide_type")
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type == "code" and not saw_code:
            saw_code = True
            role = role or "skip"  # the set-up cell
        if "remove-cell" in tags:
            role = "skip"
        source = cell.source
        if cell.cell_type == "markdown" and not saw_title:
            lines = _lines_outside_fences(cell.source)
            h1 = [line for line in lines if re.match(r"^#\s", line)]
            if h1:
                saw_title = True
                source = "\n".join(line for line in cell.source.splitlines() if line != h1[0])
                if not source.strip():
                    role = "skip"  # nothing but the title, which moved to the title slide
        if index == exercises:
            role = "slide"
        if (cell.cell_type == "markdown" and role not in ("skip", "notes") and not tags & LECTURE_TAGS
                and ("slide-notes" in tags or not _keeps_something_on_the_slide(source))):
            role = "notes>" + (role or "-")
        result.append(role or "-")
    # the exercise section moves to the end of the deck
    result = _in_deck_order(nb, result)
    # a slide opened by a cell that became notes passes to the next cell shown
    pending = None
    for index, role in enumerate(result):
        if role.startswith("notes>"):
            opened = role.split(">", 1)[1]
            if pending is None and opened in ("slide", "subslide"):
                pending = opened
            result[index] = "notes"
        elif role not in ("skip", "notes"):
            if pending is not None and role not in ("slide", "subslide"):
                result[index] = pending
            pending = None
    return result


def agenda(nb) -> list[str]:
    """The "Today" slide's items: the level-2 headings of the book's cells, numbers and asides left out."""
    items = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "slide-only" in cell.metadata.get("tags", []):
            if re.search(r"^##\s+Today\s*$", cell.source, re.MULTILINE):
                return []  # the chapter wrote its own agenda slide
        if cell.cell_type != "markdown" or "slide-only" in cell.metadata.get("tags", []):
            continue
        if cell.metadata.get("slideshow", {}).get("slide_type") in ("skip", "notes"):
            continue
        for line in _lines_outside_fences(cell.source):
            if re.match(r"^##\s", line):
                text = re.sub(r"^\d+(?:\.\d+)*\.?\s+", "", line[3:].strip())
                if text and not AGENDA_LEFT_OUT.match(text):
                    items.append(text)
    return items


def _in_deck_order(nb, items: list | None = None) -> list:
    """``items`` (one per cell; default the cells) in deck order: the exercise section moved to the end."""
    items = list(nb.cells if items is None else items)
    exercises = exercise_index(nb)
    if exercises is not None:
        level = len(nb.cells[exercises].source.lstrip().split()[0])
        end = next((i for i in range(exercises + 1, len(nb.cells))
                    if (h := _first_heading(nb.cells[i])) and len(h.split()[0]) <= level), len(nb.cells))
        items = items[:exercises] + items[end:] + items[exercises:end]
    return items


def visible(nb) -> list:
    """The cells that appear on slides (not skip, not notes)."""
    return [c for c, r in zip(_in_deck_order(nb), roles(nb)) if r not in ("skip", "notes")]


def slide_count(nb) -> int:
    """Slides reveal.js must report: title + agenda + chapter slides (+ injected exercise slide)."""
    count = 1 + (1 if agenda(nb) else 0)  # title and agenda slides
    first = True
    for role in roles(nb):
        if role in ("skip", "notes"):
            continue
        if first or role in ("slide", "subslide"):
            count += 1
        first = False
    return count + (1 if exercise_index(nb) is None else 0)


def raster_images(nb) -> int:
    """Images the deck must show: raster outputs of visible code cells and markdown images."""
    total = 0
    for cell in visible(nb):
        if cell.cell_type == "code" and "remove-output" not in cell.metadata.get("tags", []):
            outputs = cell.get("outputs", [])
            total += sum(1 for out in outputs for mime in RASTER if mime in out.get("data", {}))
        elif cell.cell_type == "markdown":
            total += len(MARKDOWN_IMAGE.findall(cell.source))
    return total


def has_math(nb) -> bool:
    """Whether a visible markdown cell holds TeX."""
    return any(cell.cell_type == "markdown" and "$" in cell.source for cell in visible(nb))


def notes(nb) -> list[str]:
    """Source of every cell written as speaker notes (slide type notes)."""
    return [c.source for c in nb.cells if c.metadata.get("slideshow", {}).get("slide_type") == "notes"]
