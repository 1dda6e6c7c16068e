"""What a lecture slide shows, measured in the browser: the limits an instructor can lecture from.

For every slide of a reveal.js deck (vertical subslides included, all fragments shown, at the deck's
default 1280x720 size) :func:`measure` reads from the rendered page, not from the notebook:

- ``title_words`` / ``words``: words of the slide's first heading / of the rest of its markdown (prose and
  bullets; typeset math, code blocks and tables are not words);
- ``code_lines``: lines of code shown (code cells whose input is on the slide, and code blocks in markdown);
- ``output_lines``: lines of printed output (text outputs of code cells) and rows of tables;
- ``overflow``: what does not fit: the slide's content is taller or wider than the slide, or a code or
  output block scrolls sideways;
- ``notes``: the speaker notes' words (reveal.js's ``getSlideNotes``).

``LIMITS`` are issue 13's: about 40 words of prose, 12 lines of code, 8 lines of output per slide.

Also a command for authors: ``python tests/browser/slide_audit.py [_build/slides]`` prints a table per
deck and every slide over a limit (build the decks first: ``course-lib slides``).
"""

from __future__ import annotations

import sys
from pathlib import Path

LIMITS = {"title_words": 12, "words": 40, "code_lines": 12, "output_lines": 8}

# Runs in the deck's page (slide_audit.js): visits every slide with its fragments shown, one record each.
MEASURE_JS = (Path(__file__).with_name("slide_audit.js")).read_text(encoding="utf-8")


def measure(page) -> list[dict]:
    """One record per slide of the deck open in ``page`` (a Playwright page with reveal.js ready)."""
    return page.evaluate(MEASURE_JS)


def problems(records: list[dict]) -> list[str]:
    """Every limit a slide breaks, every slide cut off, every content slide without notes."""
    found = []
    for r in records:
        where = f"slide {r['h'] + 1}.{r['v'] + 1} '{r['title']}'"
        for key, limit in LIMITS.items():
            if r[key] > limit:
                found.append(f"{where}: {key} {r[key]} > {limit}")
        for what in r["overflow"]:
            found.append(f"{where}: {what}")
        if not r["title_slide"] and r["notes"] == 0:
            found.append(f"{where}: no speaker notes")
    return found


def summary(records: list[dict]) -> dict:
    """Slides, largest word count, code length and output length of any slide, slides with notes."""
    content = [r for r in records if not r["title_slide"]]
    return {
        "slides": len(records),
        "max_words": max((r["words"] for r in records), default=0),
        "max_code_lines": max((r["code_lines"] for r in records), default=0),
        "max_output_lines": max((r["output_lines"] for r in records), default=0),
        "with_notes": sum(1 for r in content if r["notes"] > 0),
        "content_slides": len(content),
    }


def _main(folder: Path) -> int:
    from course_lib.instructor.slides.pdf import chromium, open_decks

    decks = sorted(folder.glob("*.slides.html"))
    if not decks:
        print(f"no decks in {folder}: run `course-lib slides` first", file=sys.stderr)
        return 2
    bad = 0
    with chromium() as browser:
        for deck, page in open_decks(decks, browser):
            records = measure(page)
            print(deck.name, summary(records))
            for line in problems(records):
                print("   ", line)
                bad += 1
    print(f"{bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_main(Path(sys.argv[1] if len(sys.argv) > 1 else "_build/slides")))
