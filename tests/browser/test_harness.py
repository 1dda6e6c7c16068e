"""The browser fixtures catch what they claim to: a page that misbehaves in every way must be reported."""

from __future__ import annotations

from pathlib import Path

BAD_PAGE = """<!doctype html><html><head>
<script src="https://cdn.jsdelivr.net/npm/nothing@1/x.js"></script>
<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Roboto">
</head><body>
<img src="missing.png">
<script>console.error("boom"); throw new Error("uncaught");</script>
</body></html>"""


def test_probe_reports_external_requests_errors_and_missing_files(tmp_path: Path, serve, probe) -> None:
    (tmp_path / "bad.html").write_text(BAD_PAGE)
    probe.page.goto(serve(tmp_path) + "bad.html", wait_until="load")
    probe.page.wait_for_timeout(300)
    assert any("cdn.jsdelivr.net" in u for u in probe.external_requests)
    assert any("fonts.googleapis.com" in u for u in probe.external_requests)
    assert any("boom" in m for m in probe.console_errors)
    assert any("uncaught" in m for m in probe.page_errors)
    assert any("missing.png" in m for m in probe.http_errors)
    assert len(probe.problems()) >= 5


def test_probe_is_quiet_on_a_clean_page(tmp_path: Path, serve, probe) -> None:
    (tmp_path / "good.html").write_text("<!doctype html><title>ok</title><p>fine</p>")
    response = probe.page.goto(serve(tmp_path) + "good.html")
    assert response.status == 200
    probe.assert_clean()
