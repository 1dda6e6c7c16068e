"""A contact sheet per deck: every slide as a thumbnail in one image, so a whole lecture is seen at a glance.

Each slide is shown in headless Chromium at the deck's size (1280x720) with all its fragments, screenshot,
shrunk and laid out in reading order (reveal.js's horizontal slides, their vertical subslides after them),
numbered as the deck numbers them. Written as ``<stem>.contact.png`` next to the deck (and its PDF).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from .pdf import MATHJAX_DONE, chromium, open_decks

__all__ = ["contact_sheet", "contact_sheets"]


def _slide_images(page: Any) -> list[bytes]:
    """A PNG screenshot of every slide of the deck open in ``page``, all fragments shown."""
    page.evaluate("Reveal.configure({transition: 'none', backgroundTransition: 'none', controls: false})")
    where = page.evaluate("Reveal.getSlides().map(s => Reveal.getIndices(s))")
    shots = []
    for index in where:
        page.evaluate(f"Reveal.slide({index['h']}, {index.get('v') or 0}, 10000)")
        page.evaluate(MATHJAX_DONE)
        page.wait_for_timeout(50)
        shots.append(page.screenshot())
    page.evaluate("Reveal.slide(0, 0, 0)")
    return shots


def _tile(shots: Sequence[bytes], columns: int, thumb_width: int, title: str) -> Any:
    from PIL import Image, ImageDraw

    thumbs = []
    for data in shots:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        height = round(image.height * thumb_width / image.width)
        thumbs.append(image.resize((thumb_width, height), Image.LANCZOS))
    cell_h = max(t.height for t in thumbs) + 22
    pad, header = 8, 30
    rows = (len(thumbs) + columns - 1) // columns
    sheet = Image.new("RGB", (pad + columns * (thumb_width + pad), header + rows * (cell_h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 8), f"{title}: {len(thumbs)} slides", fill="black")
    for number, thumb in enumerate(thumbs, 1):
        row, col = divmod(number - 1, columns)
        x, y = pad + col * (thumb_width + pad), header + row * (cell_h + pad)
        sheet.paste(thumb, (x, y))
        draw.rectangle([x, y, x + thumb.width - 1, y + thumb.height - 1], outline="#999999")
        draw.text((x + 2, y + thumb.height + 4), str(number), fill="black")
    return sheet


def contact_sheets(
    decks_html: Sequence[os.PathLike],
    browser: Any = None,
    columns: int = 6,
    thumb_width: int = 320,
    out_dir: Optional[os.PathLike] = None,
) -> list[Path]:
    """Write ``<stem>.contact.png`` for each deck (next to it, or in ``out_dir``); return their paths.

    ``browser``: a Playwright ``Browser`` to reuse; by default the system Chromium is started
    (:func:`.pdf.chromium`).
    """
    written = []
    with chromium(browser) as running:
        for deck_html, page in open_decks(decks_html, running):
            stem = deck_html.name.replace(".slides.html", "")
            title = page.evaluate("document.title") or stem
            sheet = _tile(_slide_images(page), columns, thumb_width, title)
            target = Path(out_dir or deck_html.parent) / f"{stem}.contact.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            sheet.save(target, optimize=True)
            written.append(target)
    return written


def contact_sheet(deck_html: os.PathLike, browser: Any = None, **options: Any) -> Path:
    """The contact sheet of one deck; see :func:`contact_sheets`."""
    return contact_sheets([deck_html], browser, **options)[0]
