"""Smoke tests of the benchmark scripts at a tiny size (offline digits, one round)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

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
