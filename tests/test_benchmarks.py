"""Smoke tests of the benchmark scripts at a tiny size (offline digits, one round)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_sweep_runs_resumes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = _load("sweep")
    jsonl = tmp_path / "runs.jsonl"
    common = ["--jsonl", str(jsonl), "--stages", "main", "--epochs", "1", "--shard", "0/12"]
    data = ["--train-limit", "60", "--test-limit", "40", "--batch-size", "16", "--threads", "1",
            "--out", str(tmp_path / "train")]
    sweep.main([*common, *data])
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    # shard 0 of 12 over the 12 settings × 2 seeds: the baseline with seeds 0 and 1
    assert [(r["setting"], r["seed"]) for r in lines] == [("baseline", 0), ("baseline", 1)]
    sweep.main([*common, *data])  # resumes: nothing left to run
    assert len(jsonl.read_text().splitlines()) == 2
    figure = tmp_path / "schedule.png"
    sweep.main(["--report", "--jsonl", str(jsonl), "--figure", str(figure)])
    assert "| baseline | 1 | 0,1 |" in capsys.readouterr().out
    assert figure.stat().st_size > 0


def test_sweep_plan_covers_the_grid() -> None:
    sweep = _load("sweep")
    runs = sweep.plan(["main", "schedule", "confirm"], 10, ["cd-head-k4-distill"])
    names = {setting.name for setting, _, _ in runs}
    assert {"baseline", "cd-head-k2", "cd-head-k8", "cd-head-k4-identity", "cd-head-k4-rescale",
            "cd-head-k4-distill", "cd-last-stage-k4", "cd-inner-stage-k4", "cutmix+cd-head-k4"} <= names
    assert {epochs for _, epochs, _ in runs} == {5, 10, 20}
    assert ("cd-head-k4-distill", 10, 2) in {(s.name, e, seed) for s, e, seed in runs}
    with pytest.raises(SystemExit, match="unknown settings"):
        sweep.plan(["confirm"], 10, ["nope"])


@pytest.mark.slow
def test_overhead_label_path(tmp_path: Path) -> None:
    overhead = _load("overhead")
    out = overhead.main(["--only", "labels", "--rounds", "2", "--warmup", "0", "--batch-size", "8",
                         "--json", str(tmp_path / "o.json")])
    cases = [row["case"] for row in out["rows"]]
    assert cases[0].startswith("labels: torchvision") and len(cases) == 4
    assert all(row["ratio"] > 0 for row in out["rows"])


# ------------------------------------------------------------------------------------ sweep: protocol
def test_sweep_plan_has_the_all_mode_setting_and_extra_runs() -> None:
    sweep = _load("sweep")
    by_name = {s.name: s for s in sweep.variants()}
    assert by_name["cd-head-k4-all"].mode == "all" and not by_name["cd-head-k4-all"].distill
    runs = sweep.plan([], 10, [], extra=["cd-head-k4-all@20=0,1,2", "baseline@20=2"])
    assert [(s.name, e, seed) for s, e, seed in runs] == [
        ("cd-head-k4-all", 20, 0), ("cd-head-k4-all", 20, 1), ("cd-head-k4-all", 20, 2),
        ("baseline", 20, 2)]
    with pytest.raises(SystemExit, match="NAME@EPOCHS"):
        sweep.plan([], 10, [], extra=["cd-head-k4-all"])


def test_sweep_chooses_each_arms_best_on_held_out_lines_only() -> None:
    sweep = _load("sweep")
    key = {"data": "d", "test_limit": None, "model": "resnet20", "batch_size": 128, "schedule": "onecycle"}

    def line(arm: str, lr: float, anneal: str, acc: float, phase: str = "select") -> dict[str, object]:
        column = sweep.headline(arm)
        return {"key": key, "setting": arm, "epochs": 3, "train_limit": 500, "lr": lr, "anneal": anneal,
                "phase": phase, "accuracy": {column: acc}}

    lines = [line("baseline", 0.1, "linear", 0.50), line("baseline", 0.2, "linear", 0.60),
             line("baseline", 0.2, "cos", 0.55),
             line("cd-head-k4-distill", 0.1, "cos", 0.70), line("cd-head-k4-distill", 0.2, "linear", 0.65),
             line("cd-head-k4-distill", 0.2, "linear", 0.99, phase="final")]  # test-set lines never count
    chosen = sweep.choose(lines, ["baseline", "cd-head-k4-distill"], [500], 3, key)
    assert chosen == {("baseline", 500): (0.2, "linear"), ("cd-head-k4-distill", 500): (0.1, "cos")}
    with pytest.raises(SystemExit, match="no held-out runs"):
        sweep.choose(lines, ["cd-head-k4-all"], [500], 3, key)
    assert sweep.headline("baseline") == "single" and sweep.headline("cd-head-k4-all") == "aggregated"


def test_sweep_welch_interval() -> None:
    sweep = _load("sweep")
    d, half = sweep.difference([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    # equal variances 1, n = 3: se = sqrt(2/3), df = 4, t = 2.776
    assert d == pytest.approx(1.0) and half == pytest.approx(2.776 * (2 / 3) ** 0.5, rel=1e-3)
    assert sweep.t95(1) == pytest.approx(12.706) and sweep.t95(1000) == pytest.approx(1.962, abs=2e-3)
    assert sweep.difference([1.0], [0.0, 1.0])[1] == float("inf")


TINY_TRAIN = ["--batch-size", "30", "--image-size", "8", "--threads", "1", "--eval-every", "0",
              "--no-progress"]


@pytest.mark.slow
def test_sweep_best_schedule_chooses_on_held_out_data_then_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The held-out grid, each arm's choice, then the test-set runs at the choice; and the report."""
    sweep = _load("sweep")
    jsonl = tmp_path / "protocol.jsonl"
    sweep.main(["--protocol", "best-schedule", "--arms", "baseline,cd-head-k4-all", "--sizes", "150",
                "--lrs", "0.05,0.1", "--anneals", "linear", "--holdout", "0.2", "--seeds", "0",
                "--epochs", "1", "--jsonl", str(jsonl), *TINY_TRAIN, "--out", str(tmp_path / "train")])
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    select = [r for r in lines if r["phase"] == "select"]
    final = [r for r in lines if r["phase"] == "final"]
    assert len(select) == 4 and len(final) == 2
    assert all(r["holdout"] == 30 and r["eval_set"].startswith("holdout") for r in select)
    assert all(r["holdout"] == 0 and r["eval_set"] == "test" for r in final)
    assert all(r["device_name"] and r["torch"] for r in lines)
    for r in final:  # each arm's final runs use its held-out best
        arm = r["setting"]
        best = max((s for s in select if s["setting"] == arm),
                   key=lambda s: s["accuracy"][sweep.headline(arm)])
        assert r["lr"] == best["lr"]
    capsys.readouterr()
    figure = tmp_path / "sizes.png"
    sweep.main(["--report", "--jsonl", str(jsonl), "--figure-sizes", str(figure)])
    table = capsys.readouterr().out
    assert "| 150 | 1 | cd-head-k4-all (aggregated) |" in table and "Δ vs plain" in table
    assert figure.stat().st_size > 0


@pytest.mark.slow
def test_sweep_parallel_workers_and_deadline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two worker processes share a plan; the timing probe turns a deadline into an epoch count."""
    sweep = _load("sweep")
    jsonl = tmp_path / "workers.jsonl"
    rest = ["--train-limit", "90", *TINY_TRAIN, "--out", str(tmp_path / "train")]
    runs = [sweep.Run("baseline", 1, seed, 0.1) for seed in (0, 1)]
    sweep.spawn(runs, rest, jsonl, workers=2, max_minutes=0)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(r["seed"] for r in lines) == [0, 1]
    epochs = sweep.fit_epochs(runs, rest, workers=1, deadline_minutes=60, min_epochs=1, max_epochs=7,
                              slowest="cd-head-k4-all")
    assert epochs == 7  # an hour is plenty for 2 × 3 steps per epoch: capped by --max-epochs
    assert "ms/step under load" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ airbench
def _cifar_like_jpegs(root: Path, train: int = 4, test: int = 2) -> Path:
    """A 10-class ImageFolder tree of random 32×32 JPEGs (airbench's network wants CIFAR's shape)."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, count in (("train", train), ("test", test)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                image = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=g)
                Image.fromarray(image.numpy()).save(folder / f"{i}.jpg")
    return root


TINY = ["--device", "cpu", "--epochs", "1", "--widths", "8,16,16", "--batch-size", "8"]


def _airbench_or_skip() -> ModuleType:
    """benchmarks/airbench.py, or a skip where the airbench package is not installed."""
    runner = _load("airbench")
    try:
        runner.package()
    except SystemExit:
        pytest.skip("airbench is not installed (pip install '.[bench]')")
    return runner


@pytest.mark.slow
def test_airbench_runner_end_to_end_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    airbench = _airbench_or_skip()
    data = _cifar_like_jpegs(tmp_path / "cifar")
    jsonl = tmp_path / "airbench.jsonl"
    common = ["--data", str(data), "--cache", str(tmp_path / "cache"), "--jsonl", str(jsonl), *TINY]
    airbench.main([*common, "--holdout", "10", "--lr-factors", "0.5,1", "--select-seeds", "7",
                   "--runs", "2"])
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == 4 * 2 + 4 * 2
    assert {r["config"] for r in lines} == {"plain", "cd4", "cd4-all", "cd4-distill"}
    for r in lines:
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["accuracy_tta"] <= 1.0
        assert r["seconds"] > 0 and r["torch"] and r["device_name"] and r["airbench"] == "0.1.8"
        assert r["lr"] == pytest.approx(11.5 * r["lr_factor"])
    assert {r["holdout"] for r in lines if r["phase"] == "select"} == {10}
    assert sorted({r["seed"] for r in lines if r["phase"] == "final"}) == [0, 1]
    # airbench's files were written from the JPEGs, nothing downloaded
    (folder,) = (tmp_path / "cache").iterdir()
    assert folder.name.endswith("-all-all")
    saved = torch.load(folder / "train.pt")
    assert saved["images"].shape == (40, 32, 32, 3) and saved["images"].dtype == torch.uint8
    airbench.main([*common, "--holdout", "10", "--lr-factors", "0.5,1", "--select-seeds", "7",
                   "--runs", "2"])  # resumes: nothing new
    assert len(jsonl.read_text().splitlines()) == 16
    capsys.readouterr()
    airbench.main(["--report", "--jsonl", str(jsonl)])
    report = capsys.readouterr().out
    assert "| cd4-distill |" in report and "Δ TTA vs plain, 95 % CI" in report
    assert "Held-out choice" in report


@pytest.mark.slow
def test_airbench_plain_equals_airbench_own_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At one seed the runner's plain configuration trains the same network as ``airbench.utils.train``.

    airbench's ``train`` times with CUDA events and places its net and test loader on the GPU; only
    those (device placement and timing) are patched to run on the CPU.
    """
    import functools
    import shutil

    from torch import nn

    airbench = _airbench_or_skip()
    a94, utils = airbench.package("lib_airbench94"), airbench.package("utils")
    cache = airbench.prepare(_cifar_like_jpegs(tmp_path / "cifar"), tmp_path / "cache")
    device = torch.device("cpu")
    make_net = functools.partial(a94.make_net94, widths={"block1": 8, "block2": 16, "block3": 16})
    (tmp_path / "cifar10").mkdir()
    shutil.copy(cache / "test.pt", tmp_path / "cifar10" / "test.pt")  # airbench reads ./cifar10/test.pt
    monkeypatch.chdir(tmp_path)

    class _Event:
        def __init__(self, **kwargs: object) -> None: ...
        def record(self) -> None: ...
        def elapsed_time(self, other: object) -> float:
            return 0.0

    defaults = list(utils.CifarLoader.__init__.__defaults__)
    defaults[-1] = "cpu"  # gpu=0
    monkeypatch.setattr(utils.CifarLoader.__init__, "__defaults__", tuple(defaults))
    monkeypatch.setattr(torch.cuda, "Event", _Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: None)
    hyp = a94.hyp["opt"]
    train_loader, _ = airbench.loaders(cache, a94.hyp, device, 0, batch_size=8)
    with monkeypatch.context() as m:
        m.setattr(nn.Module, "cuda", lambda self, *args, **kwargs: self)
        torch.manual_seed(3)
        theirs = utils.train(train_loader, 2.0, hyp["label_smoothing"], hyp["lr"], hyp["bias_scaler"],
                             hyp["momentum"], hyp["weight_decay"], hyp["whiten_bias_epochs"], 2,
                             make_net, 0, False)
    train_loader, test_loader = airbench.loaders(cache, a94.hyp, device, 0, batch_size=8)
    ours = airbench.train_one("plain", 3, hyp["lr"], a94.hyp, make_net, train_loader, test_loader, device,
                              2.0)
    assert ours["steps"] == 10  # two epochs of 5 steps: lookahead ran at step 5 and at the end
    expected, got = theirs.state_dict(), ours["model"].state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_airbench_seeds_and_schedule() -> None:
    airbench = _load("airbench")
    assert airbench.parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    shape = airbench._triangle(100, start=0.2, end=0.07, peak=0.23)
    assert shape[0] == pytest.approx(0.2) and shape[23] == pytest.approx(1.0)
    assert shape[100] == pytest.approx(0.07) and int(shape.argmax()) == 23


# ------------------------------------------------------------------------------------ the GPU study
@pytest.mark.slow
def test_gpu_study_packs_unpacks_and_runs_every_phase_on_cpu(tmp_path: Path) -> None:
    """The study's one command at a tiny size: unpack, airbench, full-data protocol, data-size curve."""
    _airbench_or_skip()
    study = _load("gpu_study")
    if not study.PACK_TOOL.exists():
        pytest.skip(f"{study.PACK_TOOL} is not beside this checkout")
    tree = _cifar_like_jpegs(tmp_path / "cifar", train=12, test=2)
    carry = tmp_path / "carry"
    study.main(["pack", "--data", str(tree), "--carry", str(carry), "--no-wheels"])
    assert (carry / "cifar10.npz").is_file() and (carry / "pack_images.py").is_file()
    out, results = tmp_path / "out", tmp_path / "results"
    study.main(["run", "--carry", str(carry), "--data", str(tmp_path / "unpacked"), "--no-install",
                "--results", str(results), "--out", str(out), "--device", "cpu", "--smoke",
                "--minutes", "30", "--workers", "1", "--airbench-workers", "1", "--no-compile",
                "--work", str(tmp_path / "work")])
    # the unpacked tree is the packed one, file for file
    assert sorted(p.relative_to(tmp_path / "unpacked") for p in (tmp_path / "unpacked").rglob("*.jpg")) \
        == sorted(p.relative_to(tree) for p in tree.rglob("*.jpg"))
    lines = {name: [json.loads(line) for line in (out / name).read_text().splitlines()]
             for name in ("airbench.jsonl", "sweep_full.jsonl", "sweep_sizes.jsonl")}
    assert {r["config"] for r in lines["airbench.jsonl"]} == {"plain", "cd4", "cd4-all", "cd4-distill"}
    assert len([r for r in lines["airbench.jsonl"] if r["phase"] == "final"]) == 8
    assert {r["setup"]["limit_train"] for r in lines["airbench.jsonl"]} == {40}
    full = [r for r in lines["sweep_full.jsonl"] if r["phase"] == "final"]
    assert sorted((r["setting"], r["seed"]) for r in full) == sorted(
        (arm, seed) for arm in ("baseline", "cd-head-k4-distill") for seed in (0, 1, 2))
    sizes = {r["train_limit"] for r in lines["sweep_sizes.jsonl"] if r["phase"] == "final"}
    assert sizes == {60, 100}
    report = (out / "report.md").read_text()
    assert "Δ TTA vs plain" in report and "Δ vs plain" in report
    assert "done; results in" in (out / "study.log").read_text()
