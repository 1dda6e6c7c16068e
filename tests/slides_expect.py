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


def roles(nb) -> list[str]:
    """Each cell's role in the deck: slide, subslide, fragment, -, skip or notes (before the title slide)."""
    result = []
    saw_code = saw_title = False
    exercises = exercise_index(nb)
    for index, cell in enumerate(nb.cells):
        role = cell.metadata.get("slideshow", {}).get("slide_type")
        if cell.cell_type == "code" and not saw_code:
            saw_code = True
            role = role or "skip"  # the set-up cell
        if "remove-cell" in cell.metadata.get("tags", []):
            role = "skip"
        if cell.cell_type == "markdown" and not saw_title:
            lines = _lines_outside_fences(cell.source)
            h1 = [line for line in lines if re.match(r"^#\s", line)]
            if h1:
                saw_title = True
                others = [line for line in cell.source.splitlines() if line != h1[0]]
                if not "".join(others).strip():
                    role = "skip"  # nothing but the title, which moved to the title slide
        if index == exercises:
            role = "slide"
        result.append(role or "-")
    return result


def visible(nb) -> list:
    """The cells that appear on slides (not skip, not notes)."""
    return [c for c, r in zip(nb.cells, roles(nb)) if r not in ("skip", "notes")]


def slide_count(nb) -> int:
    """Slides reveal.js must report: title + chapter slides (+ injected exercise slide)."""
    count = 1  # title slide
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
    """Source of every speaker-notes cell."""
    return [c.source for c, r in zip(nb.cells, roles(nb)) if r == "notes"]
