"""The documentation's code runs, and the site builds with ``mkdocs build --strict``.

Which code blocks run (the rule):

* pages: ``docs/getting-started.md``, ``docs/concepts/*.md`` and ``docs/guides/*.md``;
* blocks: every fenced block whose language is ``python`` (not ``bash``, not ``text``, not
  ``pycon``), run top to bottom in one namespace per page, so later blocks use earlier names;
* a block is **skipped** if it uses the name ``loader`` (the reader's own ``DataLoader``, which the
  docs never build — the design's training loop) or if the line just before its opening fence is
  the HTML comment ``<!-- no-test -->`` (invisible on the site; say why in the page's prose);
* a block that includes a file with pymdownx.snippets (a line ``--8<-- "path"``) runs that file's
  text, as the site shows it.

Each page runs in a fresh subprocess with the repository root as working directory, the root and
``examples/`` on ``PYTHONPATH`` (so ``from custom_pretext import ...`` works) and a fixed seed, so
one page cannot break another and a failure names the page and the block's first line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(
    [DOCS / "getting-started.md", *DOCS.glob("concepts/*.md"), *DOCS.glob("guides/*.md")]
)
SKIP_MARK = "<!-- no-test -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
SNIPPET = re.compile(r"""^[ \t]*-{2}8<-{2}[ \t]+["']?(?P<path>[^"'\s]+)["']?[ \t]*$""")
USES_LOADER = re.compile(r"\bloader\b")


def code_blocks(text: str) -> list[tuple[int, str, str]]:
    """The fenced blocks of a markdown page: ``(line number, language, code)``, with skip marks.

    The language is the first word of the info string (``python`` in ``python title="x.py"``); a
    block preceded by :data:`SKIP_MARK` gets the language ``"no-test"``.
    """
    lines = text.splitlines()
    blocks: list[tuple[int, str, str]] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match["fence"], match["indent"]
        info = match["info"].strip().lstrip("{").lstrip(".")
        language = info.split()[0].rstrip("}") if info else ""
        previous = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        if previous == SKIP_MARK:
            language = "no-test"
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and set(lines[i].strip()) == {fence[0]}
        ):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        blocks.append((start + 1, language, "\n".join(body)))
        i += 1
    return blocks


def expand_snippets(code: str) -> str:
    """Replace pymdownx.snippets lines ``--8<-- "path"`` by the file they include."""
    out = []
    for line in code.splitlines():
        match = SNIPPET.match(line)
        out.append((ROOT / match["path"]).read_text() if match else line)
    return "\n".join(out)


def runnable_blocks(page: Path) -> list[tuple[int, str]]:
    """The blocks of ``page`` that the rule above runs, as ``(line number, code)``."""
    return [
        (line, expand_snippets(code))
        for line, language, code in code_blocks(page.read_text())
        if language == "python" and not USES_LOADER.search(code)
    ]


RUNNER = textwrap.dedent(
    """
    import json, sys, traceback
    import torch
    torch.manual_seed(0)
    namespace = {"__name__": "__docs__"}
    for line, code in json.load(sys.stdin):
        try:
            exec(compile(code, f"{sys.argv[1]}:{line}", "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED: the block at {sys.argv[1]} line {line}", file=sys.stderr)
            sys.exit(1)
    """
)


def test_the_rule_finds_blocks() -> None:
    text = textwrap.dedent(
        """
        ```python
        a = 1
        ```

        <!-- no-test -->
        ```python
        raise SystemExit
        ```

        ```python
        for x, y in loader:
            pass
        ```

        ```bash
        ls
        ```

        ```python title="x.py"
        --8<-- "examples/custom_pretext.py"
        ```
        """
    )
    blocks = code_blocks(text)
    assert [language for _, language, _ in blocks] == ["python", "no-test", "python", "bash", "python"]
    assert "class ColorPermutation" in expand_snippets(blocks[-1][2])


def test_every_page_of_the_rule_exists() -> None:
    assert DOCS / "getting-started.md" in PAGES
    assert any(page.parent.name == "guides" for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_code_runs(page: Path) -> None:
    blocks = runnable_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no runnable python blocks")
    path = [str(ROOT), str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    env["MPLBACKEND"] = "Agg"
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(page.relative_to(ROOT))],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-6000:]


def test_custom_pretext_example_runs() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import custom_pretext
    finally:
        sys.path.remove(str(ROOT / "examples"))
    loss = custom_pretext.main(steps=3)
    assert loss == loss  # not NaN


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (install the docs extra)")
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    assert (site / "api" / "index.html").is_file()
    # MathJax ships with the site (docs/hooks.py): no page loads a script from outside it
    assert (site / "assets" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert list((site / "assets" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    for page in site.rglob("*.html"):
        scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", page.read_text())
        outside = [src for src in scripts if "//" in src]
        assert not outside, f"{page.relative_to(site)} loads scripts from outside the site: {outside}"
    algebra = (site / "concepts" / "label-algebra" / "index.html").read_text()
    assert 'class="arithmatex"' in algebra and "assets/mathjax/tex-mml-chtml.js" in algebra
