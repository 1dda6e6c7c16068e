"""Decks printed to PDF (one page per slide) through reveal.js's ``?print-pdf`` view in headless
Chromium, driven by Playwright (which never downloads a browser here: the system Chromium is used)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

__all__ = ["CHROMIUM_ARGS", "chromium_path", "chromium", "open_decks", "export_pdfs", "export_pdf"]

READY = "document.documentElement.getAttribute('data-deck-ready') === '1'"
MATHJAX_DONE = "() => new Promise(done => window.MathJax ? MathJax.Hub.Queue(done) : done())"

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


@contextlib.contextmanager
def chromium(browser: Any = None) -> Iterator[Any]:
    """``browser`` itself when given (a Playwright ``Browser`` to reuse), else the system Chromium (see
    :func:`chromium_path`; Playwright never downloads a browser here), started for the ``with`` block."""
    if browser is not None:
        yield browser
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        own = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield own
        finally:
            own.close()


def open_decks(
    decks_html: Sequence[os.PathLike], browser: Any, query: str = "", timeout_s: float = 60.0
) -> Iterator[tuple[Path, Any]]:
    """``(deck, page)`` for each deck in turn, opened at the decks' size (1280x720) in one page of
    ``browser``, with reveal.js ready and MathJax's first typesetting done."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = context.new_page()
        for deck_html in decks_html:
            deck_html = Path(deck_html).resolve()
            page.goto(deck_html.as_uri() + query, wait_until="load", timeout=timeout_s * 1000)
            page.wait_for_function(READY, timeout=timeout_s * 1000)
            page.evaluate(MATHJAX_DONE)
            yield deck_html, page
    finally:
        context.close()


def export_pdfs(
    decks_html: Sequence[os.PathLike], timeout_s: float = 60.0, browser: Any = None
) -> list[Path]:
    """Print decks to PDF (one page per slide, ``<stem>.pdf`` next to each) through reveal.js's
    ``?print-pdf`` view in headless Chromium (``browser``: see :func:`chromium`)."""
    written = []
    with chromium(browser) as running:
        for deck_html, page in open_decks(decks_html, running, "?print-pdf", timeout_s):
            pdf_path = deck_html.with_name(deck_html.name.replace(".slides.html", "") + ".pdf")
            # reveal.js sets @page to the slide size; each .pdf-page is one page.
            page.pdf(path=str(pdf_path), print_background=True, prefer_css_page_size=True)
            written.append(pdf_path)
    return written


def export_pdf(deck_html: os.PathLike, timeout_s: float = 60.0, browser: Any = None) -> Path:
    """Print one deck to ``<stem>.pdf`` next to it; see :func:`export_pdfs`."""
    return export_pdfs([deck_html], timeout_s, browser)[0]
