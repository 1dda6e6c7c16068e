"""The Chinese edition's catalogs (``locales/zh_CN/LC_MESSAGES/<page>.po``) against the English book.

- One catalog per page of ``_toc.yml``, holding exactly the messages the English text has today
  (extracted afresh here with Sphinx's gettext builder): an English paragraph changed without its
  translation being updated fails, before and after ``make locales``.
- Every message translated, none fuzzy, ``msgfmt --check`` clean.
- What must not be translated is not: each message's math (``$...$``, ``$$...$$``), inline code and roles
  (``{doc}`page` ``), link targets and numbers are the English ones.
- The glossary (``locales/zh_CN/glossary.md``) is followed: where the English uses a checked term, the
  translation uses its Chinese.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polib
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = "zh_CN"
CATALOGS = ROOT / "locales" / LANGUAGE / "LC_MESSAGES"
GLOSSARY = ROOT / "locales" / LANGUAGE / "glossary.md"
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [TOC["root"]] + [entry["file"] for entry in TOC["chapters"]]
#: The exercises' instructions, translated into exercises/zh_CN/ by `course-lib release` (course_lib/i18n.py).
EXERCISES = sorted(p.stem for p in (ROOT / "exercises").glob("*.ipynb"))
CATALOG_NAMES = PAGES + [f"exercises/{name}" for name in EXERCISES]

MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.DOTALL)
ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
CODE = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")
URL = re.compile(r"https?://[^\s)>\]`]+")
# Numbers, except the "2" of "2-D" (二维 in Chinese).
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w]|-D\b)")
HAN = re.compile(r"[\u4e00-\u9fff]")
EXERCISES_ZH = f"/exercises/{LANGUAGE}/"


def _catalog(page: str) -> Path:
    return CATALOGS / f"{page}.po"


def _entries(page: str) -> list[polib.POEntry]:
    return [e for e in polib.pofile(str(_catalog(page))) if not e.obsolete]


def _is_prose(msgid: str) -> bool:
    """Whether a message has words to translate: not only math or code, and not a display formula."""
    if "\\" in msgid and "$" not in msgid:  # the TeX of a display-math block
        return False
    words = re.findall(r"[A-Za-z]{2,}", CODE.sub(" ", MATH.sub(" ", msgid)))
    return len(words) >= 2


def _role_target(role: str) -> str:
    """``{doc}`text <target>` `` and ``{doc}`target` `` -> ``{doc}target`` (the text may be translated)."""
    name, body = role.split("`", 1)
    body = body[:-1]
    match = re.search(r"<([^<>]+)>$", body)
    return name + (match.group(1) if match else body)


def protected_spans(text: str) -> dict[str, Counter]:
    """What a translation must keep byte for byte, by kind (as multisets: the order may change)."""
    math = MATH.findall(text)
    rest = MATH.sub(" ", text)
    roles = [_role_target(r) for r in ROLE.findall(rest)]
    rest = ROLE.sub(" ", rest)
    code = [m.group(2) for m in CODE.finditer(rest)]
    rest = CODE.sub(" ", rest)
    # A translation may send its reader to the translated exercise notebook (exercises/zh_CN/<name>).
    links = [t.replace(EXERCISES_ZH, "/exercises/") for t in LINK_TARGET.findall(rest)]
    urls = [u.replace(EXERCISES_ZH, "/exercises/") for u in URL.findall(LINK_TARGET.sub(" ", rest))]
    numbers = NUMBER.findall(URL.sub(" ", LINK_TARGET.sub(" ", rest)))
    return {"math": Counter(math), "role": Counter(roles), "code": Counter(code), "link": Counter(links),
            "url": Counter(urls), "number": Counter(numbers)}


def span_differences(msgid: str, msgstr: str) -> list[str]:
    """Protected spans of the English missing from the translation, or added to it."""
    want, got = protected_spans(msgid), protected_spans(msgstr)
    problems = []
    for kind in want:
        missing, extra = want[kind] - got[kind], got[kind] - want[kind]
        if kind == "number":
            extra = Counter()  # "第 5 章" may add a number; dropping or changing one is what matters
        if missing or extra:
            problems.append(f"{kind}: missing {sorted(missing)} extra {sorted(extra)}")
    return problems


# ---- the helpers above, on known cases ----------------------------------------------------------


def test_protected_spans_on_known_text() -> None:
    en = (r"Divide by $\sqrt{d_k}$ in `softmax(x)`, see {doc}`01_self_attention` and "
          r"[timm](https://github.com/huggingface/pytorch-image-models): 16 patches, $$a_{ij}$$.")
    zh = (r"除以 $\sqrt{d_k}$（见 `softmax(x)`，{doc}`01_self_attention` 和 "
          r"[timm](https://github.com/huggingface/pytorch-image-models)）：16 个图像块，$$a_{ij}$$。")
    assert span_differences(en, zh) == []
    spans = protected_spans(en)
    assert spans["math"] == Counter([r"$\sqrt{d_k}$", "$$a_{ij}$$"])
    assert spans["code"] == Counter(["softmax(x)"])
    assert spans["role"] == Counter(["{doc}01_self_attention"])
    assert spans["link"] == Counter(["https://github.com/huggingface/pytorch-image-models"])
    assert spans["number"] == Counter(["16"])
    broken = zh.replace(r"\sqrt{d_k}", r"\sqrt{d}").replace("`softmax(x)`", "softmax(x)").replace("16", "15")
    kinds = {p.split(":")[0] for p in span_differences(en, broken)}
    assert kinds == {"math", "code", "number"}
    # A role's text may be translated, its target may not.
    role_en, role_zh = "{doc}`Chapter 1 <01_self_attention>`", "{doc}`第 1 章 <01_self_attention>`"
    assert span_differences(role_en, role_zh) == []
    assert span_differences("{doc}`01_self_attention`", "{doc}`02_multi_head_attention`")


# ---- the catalogs -------------------------------------------------------------------------------


@pytest.mark.parametrize("page", CATALOG_NAMES)
def test_every_message_translated_and_none_fuzzy(page: str) -> None:
    assert _catalog(page).exists(), f"{_catalog(page)} is missing: run `make locales`, then translate it"
    catalog = polib.pofile(str(_catalog(page)))
    untranslated = [e.msgid for e in catalog.untranslated_entries()]
    fuzzy = [e.msgid for e in catalog.fuzzy_entries()]
    assert not untranslated, f"{page}: {len(untranslated)} untranslated messages, first: {untranslated[:3]}"
    assert not fuzzy, (f"{page}: {len(fuzzy)} fuzzy messages (the English changed; update the translation "
                       f"and remove the fuzzy flag), first: {fuzzy[:3]}")
    # Translated means Chinese, not the English copied over (a title like "ViT" or a display formula,
    # TeX without $, may stay as is).
    copied = [e.msgid for e in _entries(page) if e.msgstr == e.msgid and _is_prose(e.msgid)]
    assert not copied, f"{page}: messages left in English: {copied[:3]}"


def test_msgfmt_check_passes() -> None:
    msgfmt = shutil.which("msgfmt")
    assert msgfmt, "msgfmt not found: `apt-get install -y gettext` (the Makefile's `unit` target does it)"
    for page in CATALOG_NAMES:
        result = subprocess.run([msgfmt, "--check", "-o", "/dev/null", str(_catalog(page))],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"msgfmt --check {page}.po:\n{result.stderr}"


@pytest.mark.parametrize("page", CATALOG_NAMES)
def test_math_code_links_and_numbers_kept(page: str) -> None:
    problems = []
    for entry in _entries(page):
        if entry.msgstr:
            problems += [f"{entry.msgid[:70]!r}: {p}" for p in span_differences(entry.msgid, entry.msgstr)]
    assert not problems, f"{page}:\n" + "\n".join(problems)


BLOCK_START = re.compile(r"(\d+[.)]|[-*+>]|#{1,6})(\s|$)")


@pytest.mark.parametrize("page", PAGES)
def test_no_translation_starts_a_block(page: str) -> None:
    """Sphinx parses each translation alone: "1. 自注意力" would become a list and be silently dropped.

    Titles like "1. Self-attention" are translated as "1\\. 自注意力" (the backslash escapes the marker).
    """
    bad = [e.msgstr for e in _entries(page) if BLOCK_START.match(e.msgstr)]
    assert not bad, f"{page}: translations that start with list/heading/quote markup (escape it): {bad}"


@pytest.fixture(scope="module")
def current_pot(tmp_path_factory) -> Path:
    """The English messages of today's text: Sphinx's gettext builder run afresh (about 5 s)."""
    out = tmp_path_factory.mktemp("gettext")
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import i18n_book as b; "
            f"from pathlib import Path; sys.exit(b.extract(Path({str(out / 'pot')!r}), "
            f"Path({str(out / 'doctrees')!r})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"gettext extraction failed:\n{result.stdout}\n{result.stderr}"
    return out / "pot"


@pytest.mark.parametrize("page", CATALOG_NAMES)
def test_catalog_matches_todays_english(page: str, current_pot: Path) -> None:
    """Every English message of the page has a catalog entry and the catalog has no stale one.

    Fails when the English text changed since the last ``make locales`` (and, after it, the changed
    messages are fuzzy or empty, which the test above catches).
    """
    english = {e.msgid for e in polib.pofile(str(current_pot / f"{page}.pot")) if e.msgid}
    translated = {e.msgid for e in _entries(page)}
    new, stale = sorted(english - translated), sorted(translated - english)
    assert not new and not stale, (
        f"{page}: the catalog is out of date with the English text: run `make locales`, translate the "
        f"new/fuzzy messages.\nnew English messages: {new[:5]}"
        f"\nmessages no longer in the English: {stale[:5]}"
    )


def test_a_changed_english_sentence_shows_up_as_fuzzy(tmp_path: Path, current_pot: Path) -> None:
    """The drift guard itself: change one English message, run the `make locales` update step on a copy."""
    page = "book/00_preface"
    pot = polib.pofile(str(current_pot / f"{page}.pot"))
    target = next(e for e in pot if len(e.msgid.split()) > 8)
    target.msgid = target.msgid.replace(" ", " really ", 1)
    (tmp_path / "pot" / "book").mkdir(parents=True)
    pot.save(str(tmp_path / "pot" / f"{page}.pot"))
    locale = tmp_path / "locales"
    (locale / LANGUAGE / "LC_MESSAGES" / "book").mkdir(parents=True)
    shutil.copy(_catalog(page), locale / LANGUAGE / "LC_MESSAGES" / f"{page}.po")
    subprocess.run([sys.executable, "-m", "sphinx_intl", "update", "-p", str(tmp_path / "pot"), "-d",
                    str(locale), "-l", LANGUAGE, "-j", "1", "--no-obsolete"], check=True, capture_output=True)
    updated = polib.pofile(str(locale / LANGUAGE / "LC_MESSAGES" / f"{page}.po"))
    changed = updated.find(target.msgid)
    assert changed is not None
    assert "fuzzy" in changed.flags or not changed.msgstr, "a changed English message stayed translated"
    assert [e.msgid for e in updated.fuzzy_entries() + updated.untranslated_entries()] == [target.msgid]


# ---- the glossary -------------------------------------------------------------------------------


def glossary_terms() -> list[tuple[str, list[str]]]:
    """Rows of the glossary marked "checked": (English regex, accepted Chinese renderings)."""
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) >= 4 and cells[3].lower().startswith("checked"):
            english = cells[0].strip("*")
            chinese = [c.strip() for c in cells[1].split("/") if c.strip()]
            rows.append((english, chinese))
    return rows


def test_glossary_has_the_issue_terms() -> None:
    text = GLOSSARY.read_text(encoding="utf-8")
    for term in ["自注意力", "多头注意力", "位置编码", "查询", "键", "值", "窗口注意力", "移位窗口",
                 "相对位置偏置", "缩放点积注意力", "层规范化", "残差连接", "图像块"]:
        assert term in text, f"glossary lacks {term}"
    assert len(glossary_terms()) >= 15


@pytest.mark.parametrize("page", CATALOG_NAMES)
def test_glossary_terms_used_consistently(page: str) -> None:
    problems = []
    terms = [(re.compile(rf"\b{en}", re.IGNORECASE), zh) for en, zh in glossary_terms()]
    for entry in _entries(page):
        english = URL.sub(" ", LINK_TARGET.sub(" ", ROLE.sub(" ", CODE.sub(" ", MATH.sub(" ", entry.msgid)))))
        # A quoted title or an italic name kept in English in the translation ("... using Shifted
        # Windows", an exercise's part name *boolean mask*) is a name, not prose to translate.
        spans = re.findall(r'"[^"\n]+"', english) + re.findall(r"(?<!\*)\*(?!\*)[^*\n]+\*(?!\*)", english)
        for span in spans:
            if span[1:-1] in entry.msgstr:
                english = english.replace(span, " ")
        for pattern, chinese in terms:
            if pattern.search(english) and entry.msgstr and not any(c in entry.msgstr for c in chinese):
                problems.append(f"{pattern.pattern!r} -> {chinese}: {entry.msgid[:60]!r} / "
                                f"{entry.msgstr[:40]!r}")
    assert not problems, f"{page}: glossary terms not used:\n" + "\n".join(problems)


def test_translations_are_chinese() -> None:
    """A sanity check on the whole edition: most of the translated text is Chinese."""
    han = total = 0
    for page in CATALOG_NAMES:
        for entry in _entries(page):
            plain = URL.sub("", CODE.sub("", MATH.sub("", entry.msgstr)))
            han += len(HAN.findall(plain))
            total += len(plain)
    assert total and han / total > 0.3, f"only {han}/{total} characters of the translations are Chinese"


# ---- the exercises' Chinese copies ---------------------------------------------------------------


@pytest.mark.parametrize("name", EXERCISES)
def test_chinese_exercise_is_generated_and_up_to_date(name: str) -> None:
    """exercises/zh_CN/<name>.ipynb is exactly what `course-lib release` makes from the catalog."""
    import nbformat

    from course_lib.i18n import load_catalog, translate_notebook

    english = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    expected, missing = translate_notebook(english, load_catalog(_catalog(f"exercises/{name}")), name)
    assert not missing, f"{name}: untranslated instructions: {missing[:3]}"
    path = ROOT / "exercises" / "zh_CN" / f"{name}.ipynb"
    assert path.exists(), f"{path} is missing: run `make exercises`"
    stored = nbformat.read(path, as_version=4)
    assert [c.source for c in stored.cells] == [c.source for c in expected.cells], (
        f"{path} is out of date with exercises/{name}.ipynb and its catalog: run `make exercises` "
        "(never edit it by hand)")
    assert stored.metadata == expected.metadata


@pytest.mark.parametrize("name", EXERCISES)
def test_chinese_exercise_has_the_same_graded_code(name: str) -> None:
    """Code cells (sources, outputs, tags) equal the English ones: one grader grades both copies."""
    import nbformat

    english = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    chinese = nbformat.read(ROOT / "exercises" / "zh_CN" / f"{name}.ipynb", as_version=4)
    assert [c.cell_type for c in chinese.cells] == [c.cell_type for c in english.cells]
    for zh_cell, en_cell in zip(chinese.cells, english.cells):
        if en_cell.cell_type == "code":
            assert zh_cell.source == en_cell.source
            assert zh_cell.outputs == en_cell.outputs
            assert zh_cell.metadata.get("tags") == en_cell.metadata.get("tags")
    prose = "".join(c.source for c in chinese.cells if c.cell_type == "markdown")
    assert len(HAN.findall(prose)) > 200, f"{name}: the Chinese copy's instructions are not Chinese"


def test_blocks_give_the_cell_back_and_skip_code_and_badges() -> None:
    from course_lib.i18n import _relocate, blocks

    source = ("# Title\n\n[![Open In Colab](https://x/badge.svg)](https://colab/x.ipynb)\n\n"
              "Some prose with `code` and $x$.\n\n```python\nprint(1)\n\nprint(2)\n```\n\n"
              "- a list item\n- another")
    parts = blocks(source)
    assert "\n\n".join(text for text, _ in parts) == source
    assert [translatable for _, translatable in parts] == [False, False, True, False, True]
    # "# Title" has one word: not a message; the badge and the fenced code are never messages.
    moved = _relocate("[ch](../book/a.ipynb) [o](https://o.github.io/r/book/a.html) "
                      "[c](https://colab/github/o/r/blob/main/exercises/n.ipynb) [s](#sec)", "n", "zh_CN")
    assert moved == ("[ch](../../book/a.ipynb) [o](https://o.github.io/r/zh_CN/book/a.html) "
                     "[c](https://colab/github/o/r/blob/main/exercises/zh_CN/n.ipynb) [s](#sec)")
