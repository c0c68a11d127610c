"""Smoke tests of the mixing examples, run in-process at a tiny size (offline digits, no downloads)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytest.importorskip("sklearn")


def _load(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["--epochs", "2", "--limit", "48", "--batch-size", "16", "--image-size", "8"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "needs"),
    [("cutmix_torchvision", None), ("timm_mixup", "timm"), ("kornia_cutmix", "kornia")],
)
def test_example_trains_and_reports(
    name: str, needs: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    if needs is not None:
        pytest.importorskip(needs)
    out = _load(name).main(TINY)
    losses = out["losses"]
    assert isinstance(losses, list) and len(losses) == 2
    assert all(math.isfinite(loss) for loss in losses)
    assert 0.0 <= out["accuracy"] <= 1.0  # type: ignore[operator]
    printed = capsys.readouterr().out
    assert "epoch 2  joint loss" in printed and "test accuracy" in printed


def test_timm_example_refuses_odd_batch_size() -> None:
    pytest.importorskip("timm")
    with pytest.raises(SystemExit):
        _load("timm_mixup").main(["--batch-size", "7"])
