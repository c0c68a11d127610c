"""examples/train_ddp.py under torchrun: two CPU processes (gloo) train a few steps and end equal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_ddp.py"


def _torchrun() -> Path:
    candidate = Path(sys.executable).parent / "torchrun"
    if not candidate.exists():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    return candidate


@pytest.mark.slow
@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo"
)
def test_two_cpu_ranks_finish_with_equal_parameters(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("CUDA_VISIBLE_DEVICES", None)
    command = [
        str(_torchrun()),
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPT),
        "--steps",
        "4",
        "--batch-size",
        "16",
        "--log-every",
        "2",
        "--backend",
        "gloo",
        "--checksum-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    checksums = [(tmp_path / f"rank{rank}.txt").read_text() for rank in range(2)]
    assert checksums[0] == checksums[1], checksums  # DDP kept the replicas bit-identical

    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    logged = [line for line in lines if "step" in line]
    assert [line["step"] for line in logged] == [
        2,
        4,
    ]  # rank 0 logs the all-reduced metrics, once per interval
    final = next(line["final"] for line in lines if "final" in line)
    assert final["world_size"] == 2 and final["backend"] == "gloo" and final["step"] == 4
    assert repr(final["checksum"]) == checksums[0]
    assert 0.0 <= final["test_acc"] <= 1.0 and final["loss"] > 0
