"""``index.html``: one page linking every deck (and PDF) of the output folder."""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .lecture import COURSE_NAME

__all__ = ["Deck", "write_index"]


@dataclass
class Deck:
    """One built deck: where it is and what it holds."""

    chapter: str  # notebook stem, e.g. "01_self_attention"
    title: str
    html: Path
    num_slides: int
    pdf: Optional[Path] = None
    contact: Optional[Path] = None  # the contact sheet (every slide as a thumbnail), made with the PDF


def write_index(out_dir: os.PathLike, decks: Sequence[Deck], course: str = COURSE_NAME) -> Path:
    """Write ``out_dir/index.html`` linking ``decks`` and any other deck already in ``out_dir``."""
    out_dir = Path(out_dir)
    by_chapter = {d.chapter: d for d in decks}
    for path in sorted(out_dir.glob("*.slides.html")):
        stem = path.name[: -len(".slides.html")]
        if stem not in by_chapter:
            pdf, contact = out_dir / f"{stem}.pdf", out_dir / f"{stem}.contact.png"
            by_chapter[stem] = Deck(stem, _html_title(path) or stem, path, -1, pdf if pdf.is_file() else None,
                                    contact if contact.is_file() else None)
    rows = []
    for stem in sorted(by_chapter):
        deck = by_chapter[stem]
        count = f"{deck.num_slides} slides" if deck.num_slides >= 0 else ""
        pdf = f' · <a href="{html.escape(deck.pdf.name)}">PDF</a>' if deck.pdf else ""
        if deck.contact:
            pdf += f' · <a href="{html.escape(deck.contact.name)}">all slides at a glance</a>'
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
