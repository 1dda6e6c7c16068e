"""The Chinese edition of the book: gettext catalogs and the second (zh_CN) HTML build.

One source, two editions. Code, outputs and figures live once, in ``book/``; the Chinese prose lives in
``locales/zh_CN/LC_MESSAGES/<page>.po`` (one catalog per page, ``gettext_compact: false`` in
``_config.yml``). Both builds use jupyter-book 1's own configuration (``_config.yml`` read by
``jupyter_book.config``), so the theme, the vendored MathJax and widget manager and the local extensions
are the same in both.

    python scripts/i18n_book.py locales   # make locales: .pot from the English text, then update the .po
    python scripts/i18n_book.py build     # the Chinese HTML into _build/html/zh_CN (warnings are errors)

After ``locales``, a changed English paragraph shows up as a *fuzzy* message (its old translation kept
as a hint) and a new one as an empty message; ``tests/test_i18n.py`` fails on both until translated.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # course_lib of this checkout
LANGUAGE = "zh_CN"
LOCALE_DIR = ROOT / "locales"
POT_DIR = ROOT / "_build" / "gettext"
HTML_DIR = ROOT / "_build" / "html"
ZH_HTML_DIR = HTML_DIR / LANGUAGE
# Outside the published folder: Sphinx would otherwise put its doctrees next to the HTML.
ZH_DOCTREES = ROOT / "_build" / f".doctrees-{LANGUAGE}"
POT_DOCTREES = ROOT / "_build" / ".doctrees-gettext"

#: Settings of the Chinese build on top of _config.yml (everything else is shared with the English one).
ZH_OVERRIDES = {
    "language": LANGUAGE,
    "html_title": "Transformers for Vision 中文版",
}


def _build(builder: str, outdir: Path, doctrees: Path, overrides: dict) -> int:
    """One Sphinx build the way ``jupyter-book build . -W -n --keep-going --all`` runs it."""
    from jupyter_book.sphinx import build_sphinx

    config = {"external_toc_path": (ROOT / "_toc.yml").as_posix(), "latex_individualpages": False,
              "nitpicky": True, **overrides}
    result = build_sphinx(ROOT, outdir, noconfig=True, path_config=str(ROOT / "_config.yml"),
                          confoverrides=config, builder=builder, doctreedir=doctrees, force_all=True,
                          freshenv=True, warningiserror=True, keep_going=True, quiet=True)
    if isinstance(result, Exception):
        raise result
    return int(result)


def extract(pot_dir: Path = POT_DIR, doctrees: Path = POT_DOCTREES) -> int:
    """English messages -> ``<pot_dir>/<page>.pot`` (one per page; default ``_build/gettext``)."""
    shutil.rmtree(pot_dir, ignore_errors=True)
    status = _build("gettext", pot_dir, doctrees, {})
    # The exercises' instructions (markdown cells of exercises/*.ipynb), for exercises/zh_CN/.
    from course_lib.i18n import write_templates

    write_templates(ROOT / "exercises", pot_dir)
    return status


#: Flags Babel guesses from the text ("100% on" looks like a %-format): the book's messages are prose,
#: never formatted by Python, and msgfmt --check would hold the translation to the guessed directives.
FORMAT_FLAGS = ("python-format", "python-brace-format")


def drop_format_flags(po_path: Path) -> bool:
    """Remove Babel's guessed format flags from one catalog; return whether it changed."""
    import polib

    catalog = polib.pofile(str(po_path), wrapwidth=76)
    changed = False
    for entry in catalog:
        for flag in FORMAT_FLAGS:
            if flag in entry.flags:
                entry.flags.remove(flag)
                changed = True
    if changed:
        catalog.save()
    return changed


def update_catalogs(pot_dir: Path = POT_DIR, locale_dir: Path = LOCALE_DIR) -> int:
    """``.pot`` -> ``locales/zh_CN/LC_MESSAGES/<page>.po``: new messages empty, changed ones fuzzy."""
    cmd = [sys.executable, "-m", "sphinx_intl", "update", "-p", str(pot_dir), "-d", str(locale_dir),
           "-l", LANGUAGE, "-j", "1", "--no-obsolete"]
    status = subprocess.run(cmd, cwd=ROOT, check=False).returncode
    for po_path in sorted((locale_dir / LANGUAGE / "LC_MESSAGES").rglob("*.po")):
        drop_format_flags(po_path)
    return status


def locales() -> int:
    status = extract()
    if status:
        print("gettext extraction failed (see the warnings above)", file=sys.stderr)
        return status
    return update_catalogs()


def build_zh() -> int:
    """The Chinese edition into ``_build/html/zh_CN`` (the English one must already be in _build/html)."""
    shutil.rmtree(ZH_HTML_DIR, ignore_errors=True)
    start = time.perf_counter()
    status = _build("html", ZH_HTML_DIR, ZH_DOCTREES, ZH_OVERRIDES)
    print(f"Chinese edition: {ZH_HTML_DIR.relative_to(ROOT)} in {time.perf_counter() - start:.0f} s"
          + ("" if status == 0 else f" (FAILED, status {status})"))
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["locales", "extract", "build"],
                        help="locales: extract + update the .po files; extract: only the .pot; "
                             "build: the Chinese HTML")
    args = parser.parse_args(argv)
    return {"locales": locales, "extract": extract, "build": build_zh}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
