"""Copy the browser assets the book needs from ``node_modules/`` into ``_vendor/``.

Sphinx ships ``_vendor/`` as the book's static folder (``html_static_path`` in ``_config.yml``), so the
HTML pages load MathJax 3 and the Jupyter widget manager from the site itself instead of public CDNs.

Layout written (relative to ``_vendor/``)::

    mathjax/tex-chtml.js            MathJax 3 combined component (TeX in, CommonHTML out, menu)
    mathjax/input/tex/extensions/   TeX packages ``autoload`` fetches on first use (\\boldsymbol, \\color...)
    mathjax/output/chtml/fonts/woff-v2/
    mathjax/ui/, mathjax/a11y/, mathjax/sre/
                                    lazily loaded by the context menu's accessibility options
    widgets/compat.js               scripts/widgets-compat.js: asset path + MathJax 3 shim for the manager
    widgets/require.js              require.js, needed by the AMD widget manager
    widgets/embed-amd.js            @jupyter-widgets/html-manager: renders widgets from stored state
    widgets/*.embed.js, fonts       its lazily loaded chunks and Font Awesome fonts

Everything else in MathJax's ``es5/`` (SVG output, MathML input, node adaptors, the other combined
components) is left out: 24 MB down to about 7 MB.

Usage: ``python scripts/vendor.py [--node-modules DIR] [--dest DIR]`` (``make vendor`` runs it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (source relative to node_modules, destination relative to _vendor); a directory is copied whole.
MATHJAX = [
    ("mathjax/es5/tex-chtml.js", "mathjax/tex-chtml.js"),
    ("mathjax/es5/input/tex/extensions", "mathjax/input/tex/extensions"),
    ("mathjax/es5/output/chtml/fonts/woff-v2", "mathjax/output/chtml/fonts/woff-v2"),
    ("mathjax/es5/ui", "mathjax/ui"),
    ("mathjax/es5/a11y", "mathjax/a11y"),
    ("mathjax/es5/sre", "mathjax/sre"),
]
WIDGETS = [
    ("requirejs/require.js", "widgets/require.js"),
    ("@jupyter-widgets/html-manager/dist/embed-amd.js", "widgets/embed-amd.js"),
]
# The html-manager's webpack chunks and fonts are resolved relative to embed-amd.js.
WIDGET_DIST = "@jupyter-widgets/html-manager/dist"
WIDGET_DIST_SUFFIXES = (".embed.js", ".woff", ".woff2", ".ttf", ".eot", ".svg")

# Versions the book was checked with; a mismatch means package-lock.json and this script disagree.
EXPECTED_VERSIONS = {
    "mathjax": "3.2.2",
    "requirejs": "2.3.4",
    "@jupyter-widgets/html-manager": "1.0.6",
}


def _copy(src: Path, dst: Path) -> None:
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: run `npm ci` (or `make vendor`) first")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.map"))
    else:
        shutil.copy2(src, dst)


def _check_versions(node_modules: Path) -> None:
    for package, expected in EXPECTED_VERSIONS.items():
        manifest = node_modules / package / "package.json"
        if not manifest.exists():
            raise FileNotFoundError(f"{manifest} is missing: run `npm ci` (or `make vendor`) first")
        found = json.loads(manifest.read_text())["version"]
        if found != expected:
            raise ValueError(f"{package} is {found} in node_modules, scripts/vendor.py expects {expected}")


def vendor(node_modules: Path, dest: Path) -> int:
    """Rebuild ``dest`` from ``node_modules``; returns the number of files written."""
    _check_versions(node_modules)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for src, dst in MATHJAX + WIDGETS:
        _copy(node_modules / src, dest / dst)
    _copy(ROOT / "scripts" / "widgets-compat.js", dest / "widgets" / "compat.js")
    for path in sorted((node_modules / WIDGET_DIST).iterdir()):
        if path.name.endswith(WIDGET_DIST_SUFFIXES) and path.name != "embed.js":
            _copy(path, dest / "widgets" / path.name)
    return sum(1 for p in dest.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-modules", type=Path, default=ROOT / "node_modules")
    parser.add_argument("--dest", type=Path, default=ROOT / "_vendor")
    args = parser.parse_args(argv)
    count = vendor(args.node_modules, args.dest)
    size = sum(p.stat().st_size for p in args.dest.rglob("*") if p.is_file())
    print(f"vendored {count} files ({size / 2**20:.1f} MiB) into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
