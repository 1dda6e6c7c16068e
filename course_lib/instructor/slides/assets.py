"""reveal.js, MathJax 2, require.js, jQuery and the widget manager copied from ``node_modules/`` into
``<out>/vendor/``, so that every deck works offline."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

__all__ = ["VENDOR", "REVEAL_PREFIX", "REQUIRE_JS", "JQUERY", "MATHJAX", "WIDGETS", "find_node_modules",
           "install_vendor"]  # fmt: skip

VENDOR = "vendor"

# Relative URLs (from a deck in out_dir) of the vendored assets; see install_vendor for the file layout.
REVEAL_PREFIX = f"{VENDOR}/reveal.js"
REQUIRE_JS = f"{VENDOR}/require.js"
JQUERY = f"{VENDOR}/jquery.min.js"
MATHJAX = f"{VENDOR}/mathjax2/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
WIDGETS = f"{VENDOR}/widgets/embed-amd.js"


def find_node_modules(node_modules: Optional[os.PathLike] = None) -> Path:
    """Folder holding the npm packages (``reveal.js``, ``mathjax2``, ...).

    Looked for in this order: the argument, ``$COURSE_LIB_NODE_MODULES``, ``./node_modules``, the
    ``node_modules`` next to this package's source tree.
    """
    candidates = [node_modules, os.environ.get("COURSE_LIB_NODE_MODULES"), Path.cwd() / "node_modules",
                  Path(__file__).resolve().parents[3] / "node_modules"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "reveal.js" / "dist" / "reveal.js").is_file():
            return Path(candidate)
    raise FileNotFoundError(
        "reveal.js not found in node_modules (looked in: "
        + ", ".join(str(c) for c in candidates if c)
        + "); run `make vendor` (npm ci) first"
    )


# (source inside node_modules, destination inside vendor/, patterns to leave out)
_ASSETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("reveal.js/dist", "reveal.js/dist", ("*.map", "*.esm.js")),
    ("reveal.js/plugin/notes", "reveal.js/plugin/notes", ("*.esm.js",)),
    ("reveal.js/LICENSE", "reveal.js/LICENSE", ()),
    ("requirejs/require.js", "require.js", ()),
    ("jquery/dist/jquery.min.js", "jquery.min.js", ()),
    ("@jupyter-widgets/html-manager/dist", "widgets", ("*.map", "embed.js", "*.LICENSE.txt")),
    # MathJax 2, trimmed from 71 MB to the CommonHTML output with the TeX fonts.
    ("mathjax2/MathJax.js", "mathjax2/MathJax.js", ()),
    ("mathjax2/LICENSE", "mathjax2/LICENSE", ()),
    ("mathjax2/config/TeX-AMS_CHTML-full.js", "mathjax2/config/TeX-AMS_CHTML-full.js", ()),
    ("mathjax2/config/Safe.js", "mathjax2/config/Safe.js", ()),
    ("mathjax2/extensions", "mathjax2/extensions", ()),
    ("mathjax2/jax/element", "mathjax2/jax/element", ()),
    ("mathjax2/jax/input/TeX", "mathjax2/jax/input/TeX", ()),
    ("mathjax2/jax/output/CommonHTML", "mathjax2/jax/output/CommonHTML", ()),
    ("mathjax2/jax/output/PreviewHTML", "mathjax2/jax/output/PreviewHTML", ()),
    ("mathjax2/jax/output/NativeMML", "mathjax2/jax/output/NativeMML", ()),
    ("mathjax2/jax/output/PlainSource", "mathjax2/jax/output/PlainSource", ()),
    ("mathjax2/fonts/HTML-CSS/TeX/woff", "mathjax2/fonts/HTML-CSS/TeX/woff", ()),
    ("mathjax2/fonts/HTML-CSS/TeX/otf", "mathjax2/fonts/HTML-CSS/TeX/otf", ()),
    ("mathjax2/localization/en", "mathjax2/localization/en", ()),
)


def _package_version(node_modules: Path, name: str) -> str:
    try:
        return json.loads((node_modules / name / "package.json").read_text())["version"]
    except (OSError, KeyError, ValueError):
        return "?"


def install_vendor(out_dir: os.PathLike, node_modules: Optional[os.PathLike] = None) -> Path:
    """Copy reveal.js, MathJax 2, require.js, jQuery and the widget manager to ``out_dir/vendor``.

    Skipped when the copy is already there for the same package versions (a stamp file records them).
    """
    source = find_node_modules(node_modules)
    dest = Path(out_dir) / VENDOR
    packages = ("reveal.js", "mathjax2", "requirejs", "jquery", "@jupyter-widgets/html-manager")
    stamp_text = json.dumps({p: _package_version(source, p) for p in packages}, sort_keys=True)
    stamp = dest / ".vendor-stamp.json"
    if stamp.is_file() and stamp.read_text() == stamp_text:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    for src_rel, dst_rel, ignore in _ASSETS:
        src, dst = source / src_rel, dest / dst_rel
        if not src.exists():
            raise FileNotFoundError(f"{src} is missing; run `make vendor` (npm ci) again")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*ignore) if ignore else None)
        else:
            shutil.copy2(src, dst)
    stamp.write_text(stamp_text)
    return dest
