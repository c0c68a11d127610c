"""mkdocs hook: render the reST roles of the library's docstrings on the API page.

The docstrings are Google style but cross-reference with Sphinx roles (``:class:`~ipt_compose.X```,
``:meth:`apply```, ``:math:`(B, N)```), which mkdocstrings prints literally. After a page is
rendered, each role becomes a cross-reference that mkdocs-autorefs resolves (``optional``: an
unknown name stays plain code) or, for ``:math:``, an arithmatex span that MathJax typesets.
"""

from __future__ import annotations

import html
import re
from typing import Any

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
