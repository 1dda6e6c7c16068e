"""Sphinx extension local to this book (``sphinx.local_extensions`` in ``_config.yml``): no CDN in any page.

jupyter-book 1 always loads ``sphinx_thebe``, which adds to every page an inline script naming a CDN
(``const THEBE_JS_URL = "https://unpkg.com/thebe@..."``), twice over in this version, so the browser
reports ``Identifier 'THEBE_JS_URL' has already been declared``, plus ``sphinx-thebe.js`` and its CSS.
The book has no live-code (thebe) button (``launch_buttons.thebe`` is off), so this removes those assets.
"""

from __future__ import annotations

from typing import Any

THEBE_ASSETS = ("sphinx-thebe.js", "sphinx-thebe.css")


def _is_thebe(asset: Any) -> bool:
    filename = getattr(asset, "filename", None) or str(asset)
    body = getattr(asset, "attributes", {}).get("body", "") or ""
    return filename.endswith(THEBE_ASSETS) or "THEBE_JS_URL" in body


def drop_thebe_assets(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context`` handler: filter this page's script and CSS lists in place.

    Sphinx restores both lists after each page, so the filter runs for every page.
    """
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if assets:
            assets[:] = [asset for asset in assets if not _is_thebe(asset)]


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", drop_thebe_assets)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
