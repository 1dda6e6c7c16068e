"""The built book (``_build/html``, from ``make book``) in headless Chromium, served on 127.0.0.1 only.

Per page of ``_toc.yml``: HTTP 200, no console error or uncaught exception, no request leaving 127.0.0.1,
math typeset by the book's own MathJax, every image decoded, the Colab link of a notebook page, the
download link, widgets rendered from their stored state; plus a full-page screenshot in
``artifacts/screenshots/``. And over all files of the build: no absolute path of this machine, no CDN in
``<script src>`` / ``<link href>`` nor in inline scripts.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from urllib.request import urlopen

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK_DIR = ROOT / "_build" / "html"

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [TOC["root"]] + [entry["file"] for entry in TOC["chapters"]]
REPO = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]
COLAB = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
MATHJAX_SRC = "_static/" + CONFIG["sphinx"]["config"]["mathjax_path"]
WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'
WIDGET_STATE = 'script[type="application/vnd.jupyter.widget-state+json"]'

WAIT_IMAGES = """() => Promise.all(Array.from(document.images).map(img => {
    img.loading = "eager";
    return img.complete ? null : new Promise(done => { img.onload = img.onerror = done; });
}))"""


def _source_suffix(page: str) -> str:
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{page}{suffix}").exists():
            return suffix
    raise FileNotFoundError(f"_toc.yml names {page}, which is neither {page}.ipynb nor {page}.md")


def _source_has_math(page: str) -> bool:
    """Whether the page's prose (markdown cells of a notebook, or a .md file) contains TeX math."""
    path = ROOT / f"{page}{_source_suffix(page)}"
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    else:
        text = path.read_text()
    return bool(re.search(r"\$[^$\n]+\$|\\\(|\\\[|\{math\}", text))


def _expected_colab_link(page: str) -> str:
    owner_repo = urlsplit(REPO).path.strip("/")
    return f"{COLAB}/github/{owner_repo}/blob/{BRANCH}/{page}.ipynb"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(page: str, book_url: str, probe, screenshot_dir: Path) -> None:
    p = probe.page
    url = urljoin(book_url, f"{page}.html")
    response = p.goto(url, wait_until="load")
    assert response is not None and response.status == 200, f"{url}: HTTP {response and response.status}"

    # Math: any MathJax must be the book's own copy; a page whose source has math must show it typeset.
    mathjax_sources = p.locator("script[src*='tex-chtml']").evaluate_all("els => els.map(e => e.src)")
    for src in mathjax_sources:
        assert src.startswith(urljoin(book_url, MATHJAX_SRC)), f"{page}: MathJax loaded from {src}"
    if _source_has_math(page):
        assert mathjax_sources, f"{page}: its source has math but no MathJax script is on the page"
        p.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15_000
        )
        p.evaluate("() => MathJax.startup.promise")
        assert p.locator("mjx-container").count() > 0, f"{page}: no typeset math (mjx-container)"
        assert p.locator("mjx-merror").count() == 0, f"{page}: MathJax reported a TeX error"

    # Images: every <img> decoded (naturalWidth > 0), output figures included.
    p.evaluate(WAIT_IMAGES)
    broken = p.locator("img").evaluate_all(
        "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.currentSrc || e.src)"
    )
    assert not broken, f"{page}: images that did not load: {broken}"

    if _source_suffix(page) == ".ipynb":
        # The rocket (launch) menu; the chapter text may link to Colab too (its exercise notebook).
        colab = p.locator(".dropdown-launch-buttons a[href*='colab']").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))"
        )
        assert colab == [_expected_colab_link(page)], f"{page}: Colab launch links {colab}"

    # The download button offers the page's source (.ipynb or .md); it must be served.
    downloads = p.locator(".dropdown-download-buttons a.btn-download-source-button").evaluate_all(
        "els => els.map(e => e.href)"
    )
    assert downloads, f"{page}: no download link to its source"
    for href in set(downloads):
        assert href == urljoin(book_url, f"_sources/{page}{_source_suffix(page)}"), f"{page}: download {href}"
        with urlopen(href, timeout=10) as source:
            assert source.status == 200, f"{page}: {href} answered {source.status}"

    # Widgets: every stored widget view is rendered by the (local) widget manager from the embedded state.
    views = p.locator(WIDGET_VIEW).count()
    if views:
        assert p.locator(WIDGET_STATE).count() == 1, f"{page}: widget views but no embedded widget state"
        p.wait_for_function(
            "n => document.querySelectorAll('.widget-subarea > .jupyter-widgets').length >= n",
            arg=views,
            timeout=15_000,
        )
        sizes = p.locator(".widget-subarea > .jupyter-widgets").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().height)"
        )
        assert all(h > 0 for h in sizes), f"{page}: a widget rendered with zero height: {sizes}"
        # html-manager writes this text in place of a widget whose model is not in the stored state.
        assert "Error displaying widget" not in p.inner_text("body"), f"{page}: a widget failed to render"

    p.screenshot(path=str(screenshot_dir / f"{Path(page).name}.png"), full_page=True)
    # Late failures (fonts, lazily loaded chunks) surface by now.
    p.wait_for_timeout(300)
    probe.assert_clean()


def test_served_only_existing_files(book_url: str, served_requests) -> None:
    """Every request the pages made to the local server found its file (runs after the page tests)."""
    missing = [(path, status) for path, status in served_requests(book_url) if status >= 400]
    assert not missing, f"requests answered with an error: {missing}"


# ---- static checks over the build ----------------------------------------------------------------


class _AssetCollector(HTMLParser):
    """Collects ``<script src>``, ``<link href>`` and inline script bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in values
            if values.get("src"):
                self.urls.append(values["src"])
        elif tag == "link" and values.get("href"):
            self.urls.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


def _html_files() -> list[Path]:
    files = sorted(BOOK_DIR.rglob("*.html"))
    if not files:
        pytest.fail(f"no HTML under {BOOK_DIR}: run `make book` first")
    return files


def test_no_cdn_in_script_or_link_tags() -> None:
    remote = re.compile(r"^(https?:)?//", re.IGNORECASE)
    url_in_code = re.compile(r"""["'`](https?:)?//[^"'`\s]+\.(js|css|mjs)\b""", re.IGNORECASE)
    offenders = []
    for path in _html_files():
        collector = _AssetCollector()
        collector.feed(path.read_text(encoding="utf-8"))
        rel = path.relative_to(BOOK_DIR)
        offenders += [f"{rel}: {url}" for url in collector.urls if remote.match(url)]
        offenders += [
            f"{rel}: inline script loads {m.group(0)}"
            for body in collector.inline
            for m in url_in_code.finditer(body)
        ]
    assert not offenders, "remote scripts/stylesheets in the book:\n" + "\n".join(offenders)


TEXT_SUFFIXES = {".html", ".js", ".css", ".json", ".txt", ".ipynb", ".md"}


def test_no_absolute_path_of_the_build_machine() -> None:
    needles = {str(ROOT), str(ROOT.resolve())}
    offenders = []
    for path in sorted(BOOK_DIR.rglob("*")):
        if path.suffix not in TEXT_SUFFIXES or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found = [n for n in needles if n in text]
        if path.suffix == ".html" and "file://" in text:
            found.append("file://")
        offenders += [f"{path.relative_to(BOOK_DIR)}: {n}" for n in found]
    assert not offenders, "the build leaks paths of this machine:\n" + "\n".join(offenders)


def test_every_toc_page_was_built() -> None:
    missing = [page for page in PAGES if not (BOOK_DIR / f"{page}.html").exists()]
    assert not missing, f"pages of _toc.yml missing from {BOOK_DIR}: {missing}"
