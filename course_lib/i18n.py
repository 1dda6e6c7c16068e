"""Translated copies of the exercise notebooks (``exercises/zh_CN/``), from gettext catalogs.

Only the instructions are translated: each markdown cell is cut into blocks (paragraphs, lists,
headings; separated by blank lines), and each block with words in it is one message of the catalog
``locales/<lang>/LC_MESSAGES/exercises/<name>.po``. Code cells, their outputs and the notebook's
metadata are copied unchanged, so the graded functions are the same and one grader grades both copies.

- ``write_templates(exercises, pot_dir)``: the English messages -> ``<pot_dir>/exercises/<name>.pot``
  (``make locales`` runs it, then updates the catalogs with sphinx-intl like the book's).
- ``release_translations(exercises, locale_dir)``: writes ``exercises/<lang>/<name>.ipynb``; called by
  ``course-lib release`` after the English exercises (``--check`` compares instead of writing).

A message without a (non-fuzzy) translation stays English in the copy, with a warning; the catalog
tests (``tests/test_i18n.py``) fail on it, so a release is never blocked by a missing translation.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat

__all__ = ["blocks", "messages", "translate_notebook", "write_templates", "release_translations",
           "LANGUAGES"]

#: Languages with a translated copy of the exercises: code -> folder under exercises/ and the book's URL.
LANGUAGES = {"zh_CN": "zh_CN"}
_FENCE = re.compile(r"^\s*(```|~~~)")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.S)
_CODE = re.compile(r"`[^`]*`")
_TARGET = re.compile(r"\]\([^)]*\)")
_WORD = re.compile(r"[A-Za-z]{2,}")


def _has_words(block: str) -> bool:
    """Whether a block has prose to translate (not only an image, a link target, math or code)."""
    rest = _CODE.sub(" ", _MATH.sub(" ", _TARGET.sub("]", _IMAGE.sub(" ", block))))
    return len(_WORD.findall(rest)) >= 2


def blocks(source: str) -> list[tuple[str, bool]]:
    """``source`` as ``(text, translatable)`` blocks; ``"\\n\\n".join`` of the texts gives it back.

    Blocks are separated by blank lines; a fenced code block is one untranslatable block, blank lines
    included.
    """
    out: list[tuple[str, bool]] = []
    current: list[str] = []
    fence = False

    def flush() -> None:
        if current:
            text = "\n".join(current)
            out.append((text, not text.lstrip().startswith(("```", "~~~")) and _has_words(text)))
            current.clear()

    for line in source.split("\n"):
        if _FENCE.match(line):
            if not fence:
                flush()
            current.append(line)
            fence = not fence
            if not fence:
                flush()
            continue
        if not fence and not line.strip():
            flush()
            continue
        current.append(line)
    flush()
    return out


def messages(nb: nbformat.NotebookNode) -> list[str]:
    """The translatable blocks of a notebook's markdown cells, in order, each once."""
    seen: dict[str, None] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for text, translatable in blocks(cell.source):
                if translatable:
                    seen.setdefault(text, None)
    return list(seen)


def _relocate(text: str, name: str, language: str) -> str:
    """Links of a copy one folder deeper, opening the translated notebook and the translated book."""
    folder = LANGUAGES[language]
    text = re.sub(r"\]\((?![a-z]+:|#|/)([^)]+)\)", r"](../\1)", text)  # relative links: one level up
    text = text.replace(f"/blob/main/exercises/{name}.ipynb", f"/blob/main/exercises/{folder}/{name}.ipynb")
    return re.sub(r"(\.github\.io/[^/\s)]+/)book/", rf"\g<1>{folder}/book/", text)


def translate_notebook(nb: nbformat.NotebookNode, catalog: dict[str, str], name: str,
                       language: str = "zh_CN") -> tuple[nbformat.NotebookNode, list[str]]:
    """The translated copy of exercise ``name`` and the messages that had no translation."""
    out = copy.deepcopy(nb)
    missing: list[str] = []
    for cell in out.cells:
        if cell.cell_type != "markdown":
            continue
        parts = []
        for text, translatable in blocks(cell.source):
            if translatable:
                if catalog.get(text):
                    text = catalog[text]
                else:
                    missing.append(text)
            parts.append(text)
        cell.source = _relocate("\n\n".join(parts), name, language)
    course = dict(out.metadata.get("course_lib", {}))
    course.update(language=language, translated_from=f"exercises/{name}.ipynb")
    out.metadata["course_lib"] = course
    return out, missing


def _polib():
    try:
        import polib
    except ImportError as exc:  # pragma: no cover - polib is in the dev extras
        raise RuntimeError("translated exercises need polib: pip install polib (course-lib[dev])") from exc
    return polib


def load_catalog(po_path: Path) -> dict[str, str]:
    """msgid -> msgstr of the translated, non-fuzzy, current messages of one catalog."""
    polib = _polib()
    return {e.msgid: e.msgstr for e in polib.pofile(str(po_path))
            if e.msgstr and not e.obsolete and "fuzzy" not in e.flags}


def write_templates(exercises: Path, pot_dir: Path) -> list[Path]:
    """``<pot_dir>/exercises/<name>.pot`` with the messages of each ``exercises/<name>.ipynb``."""
    polib = _polib()
    written = []
    (pot_dir / "exercises").mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(exercises).glob("*.ipynb")):
        pot = polib.POFile(wrapwidth=76)
        pot.metadata = {"Project-Id-Version": "Transformers for Vision", "MIME-Version": "1.0",
                        "Content-Type": "text/plain; charset=utf-8", "Content-Transfer-Encoding": "8bit"}
        for text in messages(nbformat.read(path, as_version=4)):
            pot.append(polib.POEntry(msgid=text, msgstr=""))
        target = pot_dir / "exercises" / f"{path.stem}.pot"
        pot.save(str(target))
        written.append(target)
    return written


def _skeleton(nb: nbformat.NotebookNode) -> list:
    return [(c.cell_type, c.source, c.get("outputs", []), c.get("metadata", {}).get("tags", []))
            for c in nb.cells] + [nb.metadata.get("course_lib", {})]


def release_translations(exercises: Path, locale_dir: Path, check: bool = False) -> int:
    """Write (or, with ``check``, compare) ``exercises/<lang>/<name>.ipynb`` for every catalog language.

    An exercise without a catalog in a language gets no copy in it. Returns a process exit code: with
    ``check``, 1 when a copy is missing or stale. Copies whose exercise is gone are removed.
    """
    exercises, locale_dir = Path(exercises), Path(locale_dir)
    problems: list[str] = []
    for language, folder in LANGUAGES.items():
        catalogs = locale_dir / language / "LC_MESSAGES" / "exercises"
        if not catalogs.is_dir():
            continue
        dest = exercises / folder
        names = []
        for path in sorted(exercises.glob("*.ipynb")):
            po_path = catalogs / f"{path.stem}.po"
            if not po_path.exists():
                continue
            names.append(path.name)
            copy_nb, missing = translate_notebook(nbformat.read(path, as_version=4), load_catalog(po_path),
                                                  path.stem, language)
            for text in missing:
                print(f"course-lib release: {po_path}: no translation yet, kept in English: {text[:60]!r}",
                      file=sys.stderr)
            target = dest / path.name
            current = nbformat.read(target, as_version=4) if target.exists() else None
            if current is not None and _skeleton(current) == _skeleton(copy_nb):
                if not check:
                    print(f"{target}: up to date")
                continue
            if check:
                problems.append(f"{target} is {'missing' if current is None else 'out of date'}")
                continue
            dest.mkdir(parents=True, exist_ok=True)
            target.write_text(nbformat.writes(copy_nb) + "\n", encoding="utf-8")
            print(f"{target}: written")
        for extra in sorted(dest.glob("*.ipynb")) if dest.is_dir() else []:
            if extra.name not in names:
                if check:
                    problems.append(f"{extra} has no exercise or catalog any more")
                else:
                    extra.unlink()
                    print(f"{extra}: removed")
    if problems:
        print("translated exercises are out of date (run `make exercises`):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0
