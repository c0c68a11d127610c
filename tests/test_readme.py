"""The README's code runs as printed, and its first two commands stay the ones CI and users run.

The documentation's home page (``docs/index.md``) shows the same loop; it must stay identical to
the README's, so this one run covers both.

The README's ``python`` block is a complete training loop on stand-in data (it builds its own
``loader``), so unlike the docs' design loops it is run, top to bottom, in a fresh subprocess with
the repository root as working directory and a fixed seed (the runner of ``tests/test_docs.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_docs import RUNNER, code_blocks

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HOME = ROOT / "docs" / "index.md"

VENV = "python3 -m venv .venv && .venv/bin/pip install -e "
FIRST_COMMANDS = [
    VENV + '".[examples]" && .venv/bin/python examples/train.py',
    VENV + '".[dev,docs,interop]" && .venv/bin/python -m pytest -q',
]


def python_blocks() -> list[tuple[int, str]]:
    """The README's ``python`` blocks as ``(line number, code)``."""
    return [(line, code) for line, language, code in code_blocks(README.read_text()) if language == "python"]


def test_the_readme_has_its_design_loop() -> None:
    blocks = python_blocks()
    assert len(blocks) == 1
    code = blocks[0][1]
    for step in ("optimizer.zero_grad()", "loss.backward()", "optimizer.step()", "model.eval()", "predict("):
        assert step in code, f"the README loop lost {step!r}"
    assert code.index("model.eval()") < code.index("predict(")


def test_the_docs_home_page_shows_the_same_loop() -> None:
    home = [code for _, language, code in code_blocks(HOME.read_text()) if language == "python"]
    assert home == [python_blocks()[0][1]]


def test_the_first_two_commands_are_unchanged() -> None:
    bash = next(code for _, language, code in code_blocks(README.read_text()) if language == "bash")
    commands = [line for line in bash.splitlines() if line and not line.startswith("#")]
    assert commands[:2] == FIRST_COMMANDS


def test_the_readme_code_runs() -> None:
    path = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, "README.md"],
        input=json.dumps(python_blocks()),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-6000:]
