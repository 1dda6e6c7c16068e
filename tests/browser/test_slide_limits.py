"""Decks an instructor can lecture from (issue 13), walked slide by slide in headless Chromium.

Every chapter's deck: every slide fits the 1280x720 slide and keeps to the limits of ``slide_audit``
(words, code and output lines, speaker notes), the lecture frame is there (title, Today, summary, questions
with their answers in the notes, exercises last), and the PDF export has one page per slide. Artifacts in
``artifacts/slides/``: each deck's measurements (``<chapter>.json``) and contact sheet
(``<chapter>.contact.png``). The decks come from the ``deck_dir`` fixture (conftest.py).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import slides_expect as expect

from course_lib.instructor import slides

from . import slide_audit
from .test_slides import NOTEBOOKS, ROOT, open_deck

CHAPTERS = NOTEBOOKS[1:]
ARTIFACTS = ROOT / "artifacts" / "slides"
SUMMARY = re.compile(r"^(Key takeaways|Summary)\b", re.IGNORECASE)


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_slide_fits_and_keeps_to_the_limits(notebook: Path, deck_url: str, probe) -> None:
    """Walks every slide (subslides too, all fragments shown) at 1280x720: nothing overflows, at most about
    40 words of prose, 12 lines of code and 8 of output per slide, notes on every slide but the title; no
    JavaScript error, no outside request. The measurements are kept in artifacts/slides/<chapter>.json."""
    open_deck(probe.page, f"{deck_url}{notebook.stem}.slides.html")
    records = slide_audit.measure(probe.page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    summary = slide_audit.summary(records)
    (ARTIFACTS / f"{notebook.stem}.json").write_text(json.dumps({"summary": summary, "slides": records},
                                                                indent=1))
    assert len(records) == expect.slide_count(expect.read(notebook))
    assert slide_audit.problems(records) == []
    probe.assert_clean()


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_deck_has_the_lecture_frame(notebook: Path, deck_url: str, probe) -> None:
    """Title, a one-slide agenda, the chapter's summary near the end, its questions as slides with the
    answers in the notes, the exercises last."""
    nb = expect.read(notebook)
    open_deck(probe.page, f"{deck_url}{notebook.stem}.slides.html")
    titles = [t.strip() for t in probe.page.evaluate(
        "Reveal.getSlides().map(s => (s.querySelector('h1, h2, h3') || s).textContent.replace(/¶/g, ''))"
    )]
    texts = probe.page.evaluate("Reveal.getSlides().map(s => s.textContent)")
    notes = probe.page.evaluate("Reveal.getSlides().map(s => Reveal.getSlideNotes(s) || '')")
    notes = [" ".join(re.sub(r"<[^>]+>", " ", n).split()) for n in notes]
    assert titles[1] == "Today"
    assert any(SUMMARY.match(t) for t in titles[-5:]), titles[-5:]
    assert re.match(r"Exercises?\b", titles[-1])
    book = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    # every model answer of the book (a dropdown) is in the notes of a slide that asks a question
    for answer in re.findall(r"\{dropdown\} Model answer[^\n]*\n(.*?)\n:::", book, flags=re.S):
        words = re.search(r"[A-Za-z][A-Za-z ,']{20,}", answer).group(0).strip()
        asks = [("?" in text or "Question" in text) for text in texts]  # "Prove that..." asks too
        shown = [i for i, text in enumerate(texts) if words in notes[i] and asks[i]]
        assert shown, f"no question slide has the answer starting {words!r} in its notes"
    probe.assert_clean()


def test_pdf_and_contact_sheet_of_every_deck(deck_dir: Path, browser, tmp_path: Path) -> None:
    """Each chapter's PDF has one page per slide; its contact sheet (every slide a thumbnail) is written and
    kept in artifacts/slides/."""
    from PIL import Image

    copy = tmp_path / "decks"
    shutil.copytree(deck_dir, copy)
    decks = [copy / f"{nb.stem}.slides.html" for nb in CHAPTERS]
    pdfs = slides.export_pdfs(decks, browser=browser)
    sheets = slides.contact_sheets(decks, browser=browser, out_dir=ARTIFACTS)
    for notebook, pdf, sheet in zip(CHAPTERS, pdfs, sheets):
        count = expect.slide_count(expect.read(notebook))
        pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf.read_bytes()))
        assert pages == count, f"{pdf.name}: {pages} pages for {count} slides"
        rows = (count + 5) // 6  # six thumbnails per row
        with Image.open(sheet) as image:
            assert image.width > 6 * 320 and image.height > rows * 180, (sheet.name, image.size)
