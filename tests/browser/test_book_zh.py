"""The Chinese edition (``_build/html/zh_CN``, from ``make book``) in headless Chromium, offline.

Per page of ``_toc.yml``: HTTP 200, ``<html lang="zh-CN">``, the prose in Chinese, no console error and no
request leaving 127.0.0.1, math typeset by the book's own MathJax, every image decoded, stored widgets
rendered, and a full-page screenshot in ``artifacts/screenshots/zh_CN/`` (Debian's ``fonts-noto-cjk``
draws the characters; ``make browser`` installs it). The language switch leads from each page to the same
page of the other edition, both ways. Chinese search (segmented by jieba at build time) finds the
attention chapters for 注意力.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.browser.test_book import MATHJAX_SRC, PAGES, WAIT_IMAGES, WIDGET_VIEW, _source_has_math

ROOT = Path(__file__).resolve().parents[2]
ZH = "zh_CN/"
HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="session")
def zh_url(book_url: str) -> str:
    """Base URL of the Chinese edition, served by the same local server as the English one."""
    if not (ROOT / "_build" / "html" / ZH / "index.html").exists():
        pytest.fail("_build/html/zh_CN/index.html is missing: run `make book` (it builds both editions)")
    return urljoin(book_url, ZH)


@pytest.mark.parametrize("page", PAGES)
def test_chinese_page_renders_offline(page: str, book_url: str, zh_url: str, probe,
                                      screenshot_dir: Path) -> None:
    p = probe.page
    url = urljoin(zh_url, f"{page}.html")
    response = p.goto(url, wait_until="load")
    assert response is not None and response.status == 200, f"{url}: HTTP {response and response.status}"
    assert p.get_attribute("html", "lang") == "zh-CN"

    # The title is translated (the navigation uses it too) ...
    title = p.locator("article h1").first.inner_text()
    assert HAN.search(title), f"{page}: title not translated: {title!r}"
    # ... and the prose is Chinese: most letters of the article are Han characters
    # (code and outputs stay English).
    prose = " ".join(p.locator("article p, article li, article h1, article h2").all_inner_texts())
    han, letters = len(HAN.findall(prose)), len(re.findall(r"[A-Za-z]", prose))
    assert han > 200 and han > letters / 2, f"{page}: {han} Chinese characters, {letters} Latin letters"

    mathjax = p.locator("script[src*='tex-chtml']").evaluate_all("els => els.map(e => e.src)")
    for src in mathjax:
        assert src.startswith(urljoin(zh_url, MATHJAX_SRC)), f"{page}: MathJax loaded from {src}"
    if _source_has_math(page):
        assert mathjax, f"{page}: its source has math but no MathJax script is on the page"
        p.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                            timeout=15_000)
        p.evaluate("() => MathJax.startup.promise")
        assert p.locator("mjx-container").count() > 0, f"{page}: no typeset math (mjx-container)"
        assert p.locator("mjx-merror").count() == 0, f"{page}: MathJax reported a TeX error"

    p.evaluate(WAIT_IMAGES)
    broken = p.locator("img").evaluate_all(
        "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.currentSrc || e.src)")
    assert not broken, f"{page}: images that did not load: {broken}"

    views = p.locator(WIDGET_VIEW).count()
    if views:
        p.wait_for_function(
            "n => document.querySelectorAll('.widget-subarea > .jupyter-widgets').length >= n",
            arg=views, timeout=15_000)
        assert "Error displaying widget" not in p.inner_text("body"), f"{page}: a widget failed to render"

    # The switch: one link, to the same page of the English edition.
    switch = p.locator("a.tfv-language-switch")
    assert switch.count() == 1, f"{page}: {switch.count()} language switches"
    assert switch.evaluate("a => a.href") == urljoin(book_url, f"{page}.html")

    shots = screenshot_dir / "zh_CN"
    shots.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(shots / f"{Path(page).name}.png"), full_page=True)
    p.wait_for_timeout(300)
    probe.assert_clean()


@pytest.mark.parametrize("page", [PAGES[0], PAGES[-1]])
def test_language_switch_round_trip(page: str, book_url: str, zh_url: str, probe) -> None:
    """Click English -> 中文 -> English: each click lands on the same page in the other edition."""
    p = probe.page
    p.goto(urljoin(book_url, f"{page}.html"), wait_until="load")
    assert p.get_attribute("html", "lang") == "en"
    for lang, base in (("zh-CN", zh_url), ("en", book_url)):
        with p.expect_navigation(wait_until="load"):
            p.click("a.tfv-language-switch")
        assert p.url == urljoin(base, f"{page}.html")
        assert p.get_attribute("html", "lang") == lang
    probe.assert_clean()


def test_every_english_page_links_to_its_chinese_page(book_url: str, zh_url: str, probe) -> None:
    p = probe.page
    for page in PAGES + ["search", "genindex"]:
        response = p.goto(urljoin(book_url, f"{page}.html"), wait_until="domcontentloaded")
        assert response is not None and response.status == 200
        href = p.locator("a.tfv-language-switch").evaluate("a => a.href")
        assert href == urljoin(zh_url, f"{page}.html"), f"{page}: switch leads to {href}"


def test_chinese_search_finds_the_attention_chapters(zh_url: str, probe) -> None:
    """Sphinx's Chinese search, its index segmented by jieba: 注意力 finds the chapters about attention."""
    p = probe.page
    p.goto(urljoin(zh_url, "search.html?q=注意力"), wait_until="load")
    # Sphinx appends the results one by one (5 ms apart) and fills the summary line only once the
    # last one is shown: waiting for the first <li> alone raced with the rest (flaky with 9 pages).
    p.wait_for_function(
        "() => document.querySelectorAll('#search-results li').length > 0"
        " && (document.querySelector('#search-results p.search-summary')?.innerText || '') !== ''",
        timeout=20_000)
    hits = p.locator("#search-results li a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    for chapter in ("01_self_attention", "02_multi_head_attention", "06_swin_transformer"):
        assert any(chapter in (href or "") for href in hits), f"注意力 does not find {chapter}: {hits}"
    probe.assert_clean()
