"""Smoke tests of the example scripts, run in-process at a tiny size (no downloads)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def _load(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the script look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quickstart_runs_and_prints_the_loss(capsys: pytest.CaptureFixture[str]) -> None:
    out = _load("quickstart").main(["--steps", "2", "--batch-size", "8"])
    assert out["steps"] == 2
    assert torch.isfinite(torch.tensor(out["loss"]))
    assert "joint loss" in capsys.readouterr().out


@pytest.mark.slow
def test_train_on_digits_every_config(tmp_path: Path) -> None:
    configs = "baseline,channeldrop,rotation,sla-rotation,cutmix+channeldrop"
    result = _load("train").main([
        "--epochs", "1", "--train-limit", "200", "--test-limit", "50", "--batch-size", "50",
        "--configs", configs, "--seeds", "0", "--image-size", "8", "--out", str(tmp_path),
        "--no-progress",
    ])
    assert [r["config"] for r in result["records"]] == configs.split(",")
    summary = result["summary"]
    assert summary["baseline"]["time_ratio"] == pytest.approx(1.0)
    assert "aggregated" not in summary["baseline"]
    for config in ("channeldrop", "rotation", "sla-rotation", "cutmix+channeldrop"):
        assert 0.0 <= summary[config]["aggregated"]["mean"] <= 1.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["records"]) == 5
    assert saved["records"][0]["history"][0]["epoch"] == 1
    assert all(Path(p).is_file() for p in result["figures"])
    assert "| channeldrop |" in result["table"]
    # --report re-summarises a saved run without training
    again = _load("train").main(["--report", str(tmp_path / "results.json"), "--out", str(tmp_path),
                                 "--no-plots"])
    assert again["table"] == result["table"]


@pytest.mark.slow
def test_train_on_an_image_folder_tree(tmp_path: Path) -> None:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, count in (("train", 6), ("test", 2)):
        for name in ("cat", "dog"):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image = torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8, generator=g)
                Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    result = _load("train").main([
        "--data", str(tmp_path / "data"), "--train-limit", "8", "--epochs", "1",
        "--batch-size", "4", "--configs", "baseline,channeldrop", "--seeds", "0",
        "--out", str(tmp_path / "out"), "--no-plots", "--no-progress",
    ])
    assert result["meta"]["data"]["train"] == 8
    assert result["meta"]["data"]["test"] == 4
    assert result["meta"]["data"]["classes"] == 2
    assert set(result["summary"]) == {"baseline", "channeldrop"}
    # the decoded images were cached next to the output folder and are reused
    assert list((tmp_path / "cache").glob("*.pt"))


def test_augment_keeps_shape_and_pixels() -> None:
    data = _load("train")  # puts examples/ on sys.path
    from _data import augment

    del data
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    out = augment(x, padding=0, flip=False)
    assert torch.equal(out, x)
    out = augment(x, padding=2, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # every output pixel is either zero padding or a pixel of the same image and channel
    for b in range(2):
        for c in range(3):
            values = set(out[b, c].flatten().tolist()) - {0.0}
            assert values <= set(x[b, c].flatten().tolist())
