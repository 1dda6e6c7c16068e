"""Browser fixtures: a local static HTTP server and headless Chromium driven by Playwright, fully offline.

Shared by the book checks (``test_book.py``) and the slide checks (``test_slides.py``):

- ``serve(directory) -> base_url``: serves a folder on ``http://127.0.0.1:<free port>/`` for the session and
  records every request it answers (fixture ``served_requests(base_url)`` lists ``(path, status)``).
- ``browser``: the system Chromium (``/usr/bin/chromium`` or ``$CHROMIUM``), never a Playwright download.
- ``probe``: a fresh page whose every request not addressed to 127.0.0.1 is aborted and recorded, with the
  console errors, uncaught exceptions, failed requests and HTTP errors collected;
  ``probe.assert_clean()`` fails the test listing all of them.
- ``screenshot_dir``: ``artifacts/screenshots/`` (ignored by git).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOK_DIR = ROOT / "_build" / "html"
SCREENSHOT_DIR = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Flags that keep Chromium from phoning home (without them it keeps trying to reach Google's servers).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCAL_HOSTS = {"127.0.0.1"}
# Schemes that never touch the network.
INERT_SCHEMES = {"data", "blob", "about"}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging to stderr; remembers (path, status) of each answer."""

    log: list[tuple[str, int]]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log.append((self.path, int(code) if str(code).isdigit() else 0))


_SERVED: dict[str, list[tuple[str, int]]] = {}


@pytest.fixture(scope="session")
def served_requests() -> Callable[[str], list[tuple[str, int]]]:
    """``served_requests(base_url)``: ``(path, status)`` of every request that server has answered so far."""
    return _SERVED.__getitem__


@pytest.fixture(scope="session")
def serve() -> Iterator[Callable[[Path], str]]:
    """Factory: ``serve(directory)`` starts (once per directory) a server on 127.0.0.1 and returns its URL."""
    servers: dict[Path, tuple[http.server.ThreadingHTTPServer, str]] = {}

    def start(directory: Path) -> str:
        directory = Path(directory).resolve()
        if directory in servers:
            return servers[directory][1]
        if not directory.is_dir():
            pytest.fail(f"{directory} does not exist: build it first (e.g. `make book`)")
        log: list[tuple[str, int]] = []
        handler = type("Handler", (_QuietHandler,), {"log": log})
        httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
        )
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        servers[directory] = (httpd, url)
        _SERVED[url] = log
        return url

    yield start
    for httpd, _ in servers.values():
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def book_url(serve: Callable[[Path], str]) -> str:
    """Base URL of the built book (``_build/html``); fails when the book has not been built."""
    if not (BOOK_DIR / "index.html").exists():
        pytest.fail(f"{BOOK_DIR / 'index.html'} is missing: run `make book` first")
    return serve(BOOK_DIR)


@pytest.fixture(scope="session")
def browser():
    """Headless system Chromium for the whole session."""
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        pytest.fail(f"Chromium not found at {CHROMIUM}: `apt-get install -y chromium` (make browser does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class PageProbe:
    """A Playwright page plus everything that went wrong while it was used."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught exception: {m}" for m in self.page_errors]
            + [f"request leaving 127.0.0.1 (blocked): {u}" for u in self.external_requests]
            + [f"request failed: {u}" for u in self.failed_requests]
            + [f"HTTP error: {u}" for u in self.http_errors]
        )

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "\n".join(problems)


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in INERT_SCHEMES:
        return True
    return parts.scheme in {"http", "https"} and parts.hostname in LOCAL_HOSTS


@pytest.fixture
def probe(browser) -> Iterator[PageProbe]:
    """A fresh 1280x900 page that may only talk to 127.0.0.1; see :class:`PageProbe`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    page = context.new_page()
    result = PageProbe(page)

    def route(route_) -> None:
        url = route_.request.url
        if _is_local(url):
            route_.continue_()
        else:
            result.external_requests.append(url)
            route_.abort("blockedbyclient")

    context.route("**/*", route)
    page.on(
        "console",
        lambda msg: (
            msg.type == "error"
            and result.console_errors.append(
                f"{msg.text} ({msg.location.get('url', '')}:{msg.location.get('lineNumber', '')})"
            )
        ),
    )
    page.on("pageerror", lambda exc: result.page_errors.append(str(exc)))
    page.on(
        "requestfailed",
        lambda req: _is_local(req.url) and result.failed_requests.append(f"{req.url} ({req.failure})"),
    )
    page.on(
        "response", lambda resp: resp.status >= 400 and result.http_errors.append(f"{resp.status} {resp.url}")
    )
    try:
        yield result
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """``artifacts/screenshots/``, created if needed."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR


@pytest.fixture(scope="session")
def deck_dir(tmp_path_factory) -> Path:
    """Every lecture deck (book chapters and tests/data/slides_sample.ipynb) built into one folder, as
    `make slides` does (shared by test_slides.py and test_slide_limits.py)."""
    from course_lib.instructor import slides

    out = tmp_path_factory.mktemp("slides")
    slides.build_deck(ROOT / "tests" / "data" / "slides_sample.ipynb", out)
    slides.build_all(ROOT / "book", out)
    return out


@pytest.fixture(scope="session")
def deck_url(deck_dir: Path, serve) -> str:
    return serve(deck_dir)
