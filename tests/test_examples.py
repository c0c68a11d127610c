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
def test_train_on_digits_every_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configs = ("baseline,channeldrop,channeldrop-all,channeldrop-distill,rotation,sla-rotation,"
               "cutmix+channeldrop")
    result = _load("train").main([
        "--epochs", "1", "--train-limit", "200", "--test-limit", "50", "--batch-size", "50",
        "--configs", configs, "--seeds", "0", "--image-size", "8", "--out", str(tmp_path),
        "--no-progress",
    ])
    assert [r["config"] for r in result["records"]] == configs.split(",")
    summary = result["summary"]
    assert summary["baseline"]["time_ratio"] == pytest.approx(1.0)
    assert "aggregated" not in summary["baseline"]
    for config in ("channeldrop", "channeldrop-all", "rotation", "sla-rotation", "cutmix+channeldrop"):
        assert 0.0 <= summary[config]["aggregated"]["mean"] <= 1.0
    assert 0.0 <= summary["channeldrop-distill"]["distilled"]["mean"] <= 1.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["records"]) == 7
    assert saved["records"][0]["history"][0]["epoch"] == 1
    assert all(Path(p).is_file() for p in result["figures"])
    assert "| channeldrop |" in result["table"]
    # the distilled column is in the table, with the spread and the per-seed values
    assert "distilled acc %" in result["table"].splitlines()[0]
    row = next(line for line in result["table"].splitlines() if line.startswith("| channeldrop-distill"))
    assert row.count("±") == 3 and "s0: " in row
    out = capsys.readouterr().out
    assert "not a ranking" in out and "docs/results.md" in out and "benchmarks/sweep.py" in out
    # the run ends by naming every file it wrote
    last = out.strip().splitlines()[-1]
    assert last.startswith("wrote ") and all(Path(f).name in last for f in result["figures"])
    # --report re-summarises a saved run without training
    again = _load("train").main(["--report", str(tmp_path / "results.json"), "--out", str(tmp_path),
                                 "--no-plots"])
    assert again["table"] == result["table"]


def test_train_reading_says_when_the_test_set_is_saturated() -> None:
    train = _load("train")
    summary = {"baseline": {"single": {"mean": 0.997, "std": 0.004}},
               "channeldrop": {"single": {"mean": 0.986, "std": 0.004},
                               "aggregated": {"mean": 0.9875, "std": 0.002}}}
    text = train.reading(summary, 359, "sklearn digits")
    assert "saturated" in text and "not a ranking" in text and "0.28 points" in text
    assert "3.4 test images" in text  # 99.70 - 98.75 = 0.95 points = 3.4 images of 359


def test_train_help_shows_defaults_and_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    train = _load("train")
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "(default: 128)" in text and "(default: 0,1)" in text
    assert "--seeds SEEDS" in text and "each seed trains every" in text
    for name in train.CONFIGS:  # every configuration is described
        assert f"``{name}``" in text
    assert "Digits is a smoke test" in text  # the whole description, not only its first line


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
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    out = augment(x, padding=0, flip=False)
    assert torch.equal(out, x)
    torch.manual_seed(0)
    out = augment(x, padding=2, flip=True)
    assert out.shape == x.shape
    # every output pixel is either zero padding or a pixel of the same image and channel
    for b in range(2):
        for c in range(3):
            values = set(out[b, c].flatten().tolist()) - {0.0}
            assert values <= set(x[b, c].flatten().tolist())
    # each image draws its own crop: over a batch of 64 copies, several different crops appear
    many = augment(x[:1].expand(64, -1, -1, -1).contiguous(), padding=2, flip=False)
    assert len({tuple(img.flatten().tolist()) for img in many}) > 5
    # flip only: every image is itself or its mirror, and both occur
    torch.manual_seed(1)
    flipped = augment(x[:1].expand(32, -1, -1, -1).contiguous(), padding=0, flip=True)
    same = [torch.equal(img, x[0]) for img in flipped]
    mirror = [torch.equal(img, x[0].flip(-1)) for img in flipped]
    assert all(a or b for a, b in zip(same, mirror, strict=True)) and any(same) and any(mirror)


def test_image_folder_decodes_jpegs_like_pil(tmp_path: Path) -> None:
    _load("train")
    from _data import image_folder
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8, generator=g)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / name / f"{i}.jpg", quality=90)
    data = image_folder(tmp_path)
    assert data.images.shape == (6, 3, 8, 8) and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    import numpy as np

    with Image.open(tmp_path / "b" / "2.jpg") as opened:
        pil = torch.from_numpy(np.asarray(opened.convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.equal(data.images[5], pil)


def test_image_set_split_holds_out_a_balanced_disjoint_part() -> None:
    _load("train")
    from _data import ImageSet

    labels = torch.arange(100) % 10
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 3, 2, 2).contiguous()
    rest, held = ImageSet(images, labels, [str(c) for c in range(10)]).split(20, seed=0)
    assert len(rest) == 80 and len(held) == 20
    assert torch.bincount(held.labels, minlength=10).tolist() == [2] * 10
    ids = set(rest.images[:, 0, 0, 0].tolist()) | set(held.images[:, 0, 0, 0].tolist())
    assert len(ids) == 100  # disjoint and complete
    again = ImageSet(images, labels, [str(c) for c in range(10)]).split(20, seed=0)[1]
    assert torch.equal(again.labels, held.labels) and torch.equal(again.images, held.images)
    with pytest.raises(ValueError, match="count must be"):
        ImageSet(images, labels, []).split(100)


@pytest.mark.slow
def test_train_holdout_and_compile(tmp_path: Path) -> None:
    """--holdout evaluates on training images; --compile trains through torch.compile (CPU here)."""
    result = _load("train").main([
        "--epochs", "1", "--train-limit", "120", "--holdout", "20", "--batch-size", "50",
        "--configs", "channeldrop-distill", "--seeds", "0", "--image-size", "8", "--out",
        str(tmp_path), "--no-plots", "--no-progress", "--compile", "--compile-mode", "default",
    ])
    assert result["meta"]["data"]["train"] == 100 and result["meta"]["data"]["test"] == 20
    assert result["meta"]["data"]["eval_set"].startswith("holdout (20 training images")
    record = result["records"][0]
    assert record["eval_set"].startswith("holdout") and record["lr"] == 0.1
    assert torch.isfinite(torch.tensor(record["history"][0]["loss"]))
