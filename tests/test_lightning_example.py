"""Smoke test of ``examples/lightning_train.py``: a few CPU steps with Lightning's ``Trainer``.

Fit (with CutMix, ChannelDrop, EMA and bf16 autocast), resume from the last checkpoint, validate
and test the best one, and check that the exported ``plain.pt`` is an ordinary classifier that
gives the joint model's class scores. No download: the data are scikit-learn's bundled digits.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_example_lightning_train", EXAMPLES / "lightning_train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_lightning_example_fits_resumes_tests_and_exports(tmp_path: Path) -> None:
    example = _load()
    common = ["--limit-batches", "2", "--batch-size", "16", "--out", str(tmp_path), "--no-progress",
              "--accelerator", "cpu", "--devices", "1"]
    first = example.main(["--max-epochs", "1", "--ema", "0.9", "--precision", "bf16-mixed", *common])
    assert first["global_step"] == 2
    assert Path(first["best_checkpoint"]).is_file() and Path(first["last_checkpoint"]).is_file()
    for result in (first["val"], first["test"]):
        assert 0.0 <= result[next(k for k in result if k.endswith("_acc"))] <= 1.0

    # resume from the last checkpoint for one more epoch (checkpoints hold the joint model)
    resume = ["--resume", first["last_checkpoint"]]
    second = example.main(["--max-epochs", "2", "--ema", "0.9", *resume, *common])
    assert second["global_step"] == 4
    assert 0.0 <= second["test"]["test_acc"] <= 1.0

    # the export loads strictly into a fresh backbone and gives the joint model's class scores
    plain = example.small_cnn()
    plain.load_state_dict(torch.load(second["plain"], weights_only=True), strict=True)
    joint = example.JointClassifier.load_from_checkpoint(second["best_checkpoint"], map_location="cpu")
    images = torch.rand(5, 1, 16, 16) * 2 - 1
    joint.eval()
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(images), joint(images), rtol=1e-4, atol=1e-4)
