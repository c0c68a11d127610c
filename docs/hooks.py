"""mkdocs hooks: render the reST roles of the library's docstrings, and ship MathJax with the site.

The docstrings are Google style but cross-reference with Sphinx roles (``:class:`~ipt_compose.X```,
``:meth:`apply```, ``:math:`(B, N)```), which mkdocstrings prints literally. After a page is
rendered, each role becomes a cross-reference that mkdocs-autorefs resolves (``optional``: an
unknown name stays plain code) or, for ``:math:``, an arithmatex span that MathJax typesets.

MathJax itself is served from the site, not from a CDN, so formulas render offline and on an
intranet: :func:`on_files` adds the parts of MathJax 3's ``es5`` build that the pages load (the
``tex-mml-chtml.js`` component, its fonts, the TeX extensions it autoloads and the accessibility
menu's files) under ``assets/mathjax/``, taken from the ``django-static-mathjax`` package of the
``docs`` extra (a plain copy of MathJax's release files; it does not need Django).
"""

from __future__ import annotations

import html
import importlib.resources
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

_ROLE = re.compile(r":(class|func|meth|attr|data|mod|exc|obj):<code>(~?)([^<]+)</code>")
_MATH = re.compile(r":math:<code>([^<]+)</code>")


def _reference(match: re.Match[str]) -> str:
    short, target = match.group(2) == "~", match.group(3).strip()
    shown = target.rsplit(".", 1)[-1] if short else target
    identifier = target if target.startswith("ipt_compose") else f"ipt_compose.{target}"
    return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'


def _math(match: re.Match[str]) -> str:
    tex = html.unescape(match.group(1)).replace("\\\\", "\\")
    return f'<span class="arithmatex">\\({html.escape(tex)}\\)</span>'


def on_page_content(html_text: str, **kwargs: Any) -> str:
    """Rewrite ``:role:`target``` leftovers in the rendered page."""
    return _MATH.sub(_math, _ROLE.sub(_reference, html_text))


MATHJAX_SITE_DIR = "assets/mathjax"
# what tex-mml-chtml.js loads: itself, then on demand its fonts, TeX/MathML extensions and menu parts
_MATHJAX_PARTS = ("tex-mml-chtml.js", "output/chtml", "input/tex", "input/mml", "a11y", "ui", "sre")


def mathjax_source() -> Path:
    """The ``es5`` folder of the installed MathJax release (from ``django-static-mathjax``)."""
    try:
        root = Path(str(importlib.resources.files("mathjax"))) / "static" / "mathjax" / "es5"
    except ModuleNotFoundError:
        root = None
    if root is None or not (root / "tex-mml-chtml.js").is_file():
        raise PluginError(
            "MathJax is not installed: the docs ship it from the django-static-mathjax package; "
            "install the docs extra (pip install -e '.[docs]')"
        )
    return root


def on_files(files: Files, *, config: MkDocsConfig) -> Files:
    """Add MathJax's files to the site under :data:`MATHJAX_SITE_DIR`."""
    root = mathjax_source()
    for part in _MATHJAX_PARTS:
        path = root / part
        for source in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if source.is_file():
                uri = f"{MATHJAX_SITE_DIR}/{source.relative_to(root).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files
