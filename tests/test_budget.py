"""The op budget of issue 11, as a test (op counts are deterministic, unlike timings), and a smoke run
of ``benchmarks/budget.py`` and ``benchmarks/overhead.py --ops --micro``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    for folder in (BENCHMARKS, BENCHMARKS.parent / "examples"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"_benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_channel_drop_at_the_head_stays_within_the_op_budget(device: str) -> None:
    """On the CPU, and on ``meta``, which takes an accelerator's path (checks queued, no host read)."""
    rows = {row["case"]: row for row in _load("budget").measure_ops(batch=4, device=device)}
    sample = rows["train: ChannelDrop(k=4) at the head, sample"]
    assert sample["extra_ops"] <= 12, sample["diff"]
    for case, row in rows.items():
        if case.startswith("predict"):
            assert row["extra_ops"] <= 8, (case, row["diff"])
        if "ChannelDrop(k=4) at the head" in case or case.startswith("predict"):
            assert row["host_reads"] == 0, (case, row["diff"])
    # the user's labels are still checked, once: queued off the CPU, compared on it
    assert sample["queued_checks"] == (1 if device == "meta" else 0)
    assert sample["diff"].get("equal", 0) == (0 if device == "meta" else 1)


@pytest.mark.slow
def test_budget_and_overhead_scripts_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "b.json")
    result = _load("budget").main(["--micro", "--rounds", "1", "--calls", "2", "--json", out])
    assert {row["case"] for row in result["micro"]} >= {"train: ChannelDrop(k=4) at the head, sample"}
    assert (tmp_path / "b.json").is_file()
    overhead = _load("overhead").main(["--ops"])
    assert overhead["budget"]["ops"]
    assert "budget" in capsys.readouterr().out
