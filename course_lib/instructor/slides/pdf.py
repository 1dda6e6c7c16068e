"""Decks printed to PDF (one page per slide) through reveal.js's ``?print-pdf`` view in headless
Chromium, driven by Playwright (which never downloads a browser here: the system Chromium is used)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

__all__ = ["CHROMIUM_ARGS", "chromium_path", "export_pdfs", "export_pdf"]

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
