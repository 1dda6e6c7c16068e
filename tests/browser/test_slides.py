"""Lecture decks in headless Chromium, served on 127.0.0.1 with every other request blocked.

For each chapter notebook in book/ and the sample notebook: reveal.js starts without a JavaScript error,
no request leaves the machine, ``Reveal.getTotalSlides()`` equals the number of slides the notebook's
metadata asks for (computed in ``tests/slides_expect.py``), the math is typeset by MathJax, the images
load and the widgets render. A screenshot of each deck (its first figure) is kept in
``artifacts/screenshots/slides_<chapter>.png``.
Also: the same deck from ``file://`` (a USB stick), speaker notes, the index page and the PDF export.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
import slides_expect as expect

from course_lib.instructor import slides

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "slides_sample.ipynb"
NOTEBOOKS = [SAMPLE, *sorted((ROOT / "book").glob("*.ipynb"))]
READY = "document.documentElement.getAttribute('data-deck-ready') === '1'"
MATHJAX_DONE = "() => new Promise(done => window.MathJax ? MathJax.Hub.Queue(done) : done())"

# Text nodes on slides that still hold TeX delimiters or commands (MathJax did not typeset them).
RAW_TEX = r"""() => {
  const walker = document.createTreeWalker(document.querySelector('.reveal .slides'), NodeFilter.SHOW_TEXT);
  const raw = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest('script, style, pre, code, .jp-InputArea')) continue;
    if (/\$\$|\\\(|\\\[|\\frac|\\sqrt|\\mathrm/.test(node.data)) raw.push(node.data.slice(0, 80));
  }
  return raw;
}"""


def open_deck(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(READY, timeout=30_000)
    page.evaluate(MATHJAX_DONE)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_deck_in_browser(notebook: Path, deck_url: str, probe, screenshot_dir: Path) -> None:
    nb = expect.read(notebook)
    page = probe.page
    open_deck(page, f"{deck_url}{notebook.stem}.slides.html")

    assert page.evaluate("Reveal.getTotalSlides()") == expect.slide_count(nb)
    slide_text = page.evaluate("Reveal.getSlides().map(s => s.textContent.replace(/\\s+/g, ' '))")
    assert expect.COURSE in slide_text[0] and "Lecture slides" in slide_text[0]
    assert re.search(r"Exercises?\b", slide_text[-1])

    math = page.evaluate("""() => ({
        jax: document.querySelectorAll('script[type^="math/tex"]').length,
        rendered: document.querySelectorAll('.MathJax_CHTML').length,
        errors: document.querySelectorAll('.MathJax_Error, .mjx-merror').length})""")
    if expect.has_math(nb):
        assert math["jax"] > 0
    assert math["rendered"] == math["jax"] and math["errors"] == 0, math
    assert page.evaluate(RAW_TEX) == []

    images = page.evaluate(
        "Array.from(document.querySelectorAll('.reveal img'))"
        ".map(i => [i.complete && i.naturalWidth > 0, i.src.slice(0, 60)])"
    )
    assert len(images) >= expect.raster_images(nb)
    assert all(ok for ok, _ in images), [src for ok, src in images if not ok]

    if "widgets" in nb.metadata:
        views = page.evaluate(
            "document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]').length"
        )
        rendered = (
            "document.querySelectorAll('.jupyter-widgets.widget-inline-hbox, "
            ".jupyter-widgets.widget-box, .jupyter-widgets.widget-output').length"
        )
        page.wait_for_function(f"{rendered} >= {views}", timeout=20_000)

    # the artifact: the first slide with a figure (else the title slide), all its fragments shown
    page.evaluate("""() => {
        const slides = Reveal.getSlides();
        const index = Math.max(0, slides.findIndex(s => s.querySelector('img')));
        const where = Reveal.getIndices(slides[index]);
        Reveal.configure({transition: 'none'});
        Reveal.slide(where.h, where.v, 1000);
    }""")
    page.evaluate(MATHJAX_DONE)
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshot_dir / f"slides_{notebook.stem}.png"))
    probe.assert_clean()


def test_speaker_notes(deck_url: str, probe) -> None:
    open_deck(probe.page, f"{deck_url}{SAMPLE.stem}.slides.html")
    notes = " ".join(probe.page.evaluate("Reveal.getSlides().map(s => Reveal.getSlideNotes(s) || '')"))
    for note in expect.notes(expect.read(SAMPLE)):
        assert note.split(":", 1)[1].strip()[:40] in notes
    # a fragment is hidden until the next key press
    probe.page.evaluate("Reveal.slide(2, 0, -1)")
    hidden = "document.querySelectorAll('section.present .fragment:not(.visible)').length"
    shown = "document.querySelectorAll('section.present .fragment.visible').length"
    assert probe.page.evaluate(hidden) > 0 and probe.page.evaluate(shown) == 0
    probe.page.keyboard.press("ArrowRight")
    assert probe.page.evaluate(shown) > 0
    # "s" opens reveal.js's speaker view (a pop-up, same network rules) showing the current slide's notes
    with probe.page.expect_popup() as popup:
        probe.page.keyboard.press("s")
    speaker = popup.value
    speaker.on("pageerror", lambda exc: probe.page_errors.append(f"speaker view: {exc}"))
    first_note = expect.notes(expect.read(SAMPLE))[0].split(":", 1)[1].strip()[:40]
    speaker.wait_for_function(
        f"(document.querySelector('.speaker-controls-notes')?.textContent || '').includes({first_note!r})",
        timeout=15_000,
    )
    probe.assert_clean()


def test_index_links_every_deck(deck_dir: Path, deck_url: str, probe) -> None:
    page = probe.page
    page.goto(deck_url + "index.html")
    links = page.evaluate("Array.from(document.querySelectorAll('a.deck')).map(a => a.getAttribute('href'))")
    assert sorted(links) == sorted(f"{nb.stem}.slides.html" for nb in NOTEBOOKS)
    page.click(f"a[href='{links[0]}']")
    page.wait_for_function(READY, timeout=30_000)
    probe.assert_clean()


def test_deck_from_a_usb_stick(deck_dir: Path, browser, tmp_path: Path) -> None:
    """The built folder, copied elsewhere and opened through file:// with no network at all."""
    stick = tmp_path / "usb"
    shutil.copytree(deck_dir, stick)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("requestfailed", lambda req: errors.append(f"failed: {req.url}"))

    def offline(route) -> None:
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            errors.append(f"network: {route.request.url}")
            route.abort()

    context.route("**/*", offline)
    try:
        open_deck(page, (stick / f"{SAMPLE.stem}.slides.html").as_uri())
        assert page.evaluate("Reveal.getTotalSlides()") == expect.slide_count(expect.read(SAMPLE))
        assert page.evaluate("document.querySelectorAll('.MathJax_CHTML').length") > 0
        assert errors == []
    finally:
        context.close()


def test_pdf_export(deck_dir: Path, browser, tmp_path: Path) -> None:
    """One PDF page per slide through reveal.js's print view."""
    copy = tmp_path / "decks"
    shutil.copytree(deck_dir, copy)
    start = time.perf_counter()
    pdf = slides.export_pdf(copy / f"{SAMPLE.stem}.slides.html", browser=browser)
    seconds = time.perf_counter() - start
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    assert pages == expect.slide_count(expect.read(SAMPLE))
    assert seconds < 30, f"PDF export took {seconds:.1f} s"

