"""Sphinx extension local to this book, for its Chinese edition (``scripts/i18n_book.py``).

1. Only the prose is translated: text that a notebook's code cell printed or displayed (cell outputs,
   a markdown table of measured times included) is marked not translatable, so it is neither extracted
   into the catalogs nor looked up in them. Re-running a notebook therefore never makes a catalog stale,
   and printed output stays English in both editions, as the Chinese preface says.
2. A language switch in the header of every page.

The book is built twice from the same sources (``make book``): English into ``_build/html/`` and Chinese
(``language = zh_CN``, prose from ``locales/zh_CN/LC_MESSAGES/*.po``) into ``_build/html/zh_CN/``. Each page
gets, after the theme's header buttons, one link to the same page in the other edition, relative so that it
works on GitHub Pages, on ``python -m http.server`` and over ``file://`` alike:

- English ``book/01_self_attention.html`` -> ``../zh_CN/book/01_self_attention.html``
- Chinese ``zh_CN/book/01_self_attention.html`` -> ``../../book/01_self_attention.html``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.transforms import SphinxTransform

#: Language code -> (folder of that edition under ``_build/html/``, label shown in the switch, lang tag).
EDITIONS: dict[str, tuple[str, str, str]] = {
    "en": ("", "English", "en"),
    "zh_CN": ("zh_CN/", "中文", "zh-CN"),
}
TEMPLATE = "language-switch.html"


def other_edition(language: str | None) -> str:
    """The language of the edition the switch leads to (the book has exactly two)."""
    language = language or "en"
    if language not in EDITIONS:
        raise ValueError(f"language {language!r} has no edition; known: {sorted(EDITIONS)}")
    return "zh_CN" if language == "en" else "en"


def switch_href(language: str | None, pagename: str) -> str:
    """Relative URL, from page ``pagename`` of the ``language`` edition, of the same page in the other one."""
    here_prefix = EDITIONS[language or "en"][0]
    there_prefix = EDITIONS[other_edition(language)][0]
    # Up to the edition's root, then up to the site root when this edition lives in a sub-folder.
    up = "../" * (pagename.count("/") + here_prefix.count("/"))
    return f"{up}{there_prefix}{pagename}.html"


def add_switch(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context``: what the template needs (the link, its label and language)."""
    target = other_edition(app.config.language)
    _, label, lang = EDITIONS[target]
    context["language_switch"] = {"href": switch_href(app.config.language, pagename), "label": label,
                                  "lang": lang}


def add_template(app, config) -> None:
    """``config-inited``: register the template and put it after the theme's own header buttons."""
    config.templates_path.append(str(Path(__file__).parent / "i18n_templates"))
    options = dict(config.html_theme_options or {})
    end = list(options.get("article_header_end") or ["article-header-buttons.html"])
    if TEMPLATE not in end:
        end.append(TEMPLATE)
    options["article_header_end"] = end
    config.html_theme_options = options


OUTPUT_CLASSES = {"cell_output"}


class OutputsNotTranslatable(SphinxTransform):
    """Mark every text node inside a notebook cell's output as not translatable.

    Runs before Sphinx's ``Locale`` transform (priority 20), which, like the gettext builder's extraction,
    skips nodes whose ``translatable`` is false.
    """

    default_priority = 10

    def apply(self, **kwargs: Any) -> None:
        for container in self.document.findall(nodes.Element):
            if OUTPUT_CLASSES & set(container.get("classes", [])):
                for text in container.findall(nodes.TextElement):
                    text["translatable"] = False


def setup(app) -> dict[str, Any]:
    app.add_transform(OutputsNotTranslatable)
    app.connect("config-inited", add_template)
    app.connect("html-page-context", add_switch)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
