"""The full-scale study of issue 13 as one prepared command for one GPU (an H200, about 10 minutes).

Two steps. Here, where the data and the package index are, pack what the GPU machine lacks into
``runs/gpu_carry`` (an ignored folder): the CIFAR-10 JPEG tree as one ``.npz`` (with
``../shared/tools/pack_images.py``, which is copied along), and the wheels of airbench, kornia and
kornia-rs for the GPU machine's Python 3.12::

    python benchmarks/gpu_study.py pack

There, from the repository root, with ``runs/gpu_carry`` carried, one command runs everything::

    python3 benchmarks/gpu_study.py run --minutes 9 --out "$OUT"

It installs the wheels into ``/tmp/site``, unpacks CIFAR-10 into ``runs/data/cifar10``, and runs,
each phase in worker processes that share the GPU and stop at the phase's share of the deadline:

1. **airbench94** (``benchmarks/airbench.py``): plain, ChannelDrop(k=4) sample, all and
   self-distilled; learning rate × {0.7, 1, 1.4} chosen per configuration on 5,000 held-out training
   images (2 seeds), then 25 seeds each at the choice on the test set;
2. **ResNet-20, full training set, 60 epochs** (``benchmarks/sweep.py --protocol best-schedule``):
   plain vs ChannelDrop(k=4) + self-distillation, batch 512, each at its best of peak lr {0.2, 0.4} ×
   annealing {linear, cos} on 5,000 held-out images, then 3 seeds on the test set; through CUDA
   graphs (``--compile``; a phase that fails compiled runs again eagerly);
3. **the data-size curve** (5k, 10k, 25k, 50k training images), the same protocol, the epoch count
   chosen to fit what is left of the deadline.

Every finished run is one JSON line in ``benchmarks/results/`` (``airbench.jsonl``,
``sweep_full.jsonl``, ``sweep_sizes.jsonl``); runs already there are skipped, so a rerun (or a later
session that committed the returned files) continues where the last one stopped. The lines, each
runner's ``--report`` and the log are copied to ``--out`` after every phase.
``--smoke`` runs every phase at a tiny size (the CPU tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / "runs" / "gpu_carry"
RESULTS = ROOT / "benchmarks" / "results"
PACK_TOOL = ROOT.parent / "shared" / "tools" / "pack_images.py"
WHEELS = ("airbench==0.1.8", "kornia==0.9.0", "kornia_rs==0.2.0")
GPU_PYTHON = "3.12"  # the GPU machine's python3
BATCH, LRS = "512", "0.2,0.4"  # ResNet-20: 4× fewer (launch-bound) steps than batch 128; lr grid for it
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


# ------------------------------------------------------------------------------------ here
def pack(data: Path, carry: Path, wheels: bool = True) -> list[Path]:
    """Pack the image tree and (with ``wheels``) download the wheels; return the files written."""
    carry.mkdir(parents=True, exist_ok=True)
    if not PACK_TOOL.exists():
        raise SystemExit(f"{PACK_TOOL} is missing")
    shutil.copy(PACK_TOOL, carry / "pack_images.py")
    npz = carry / "cifar10.npz"
    if not npz.exists():
        subprocess.run([sys.executable, str(PACK_TOOL), "pack", str(data), str(npz)], check=True)
    if wheels:
        wheel_dir = carry / "wheels"
        wheel_dir.mkdir(exist_ok=True)
        # airbench is an sdist (pure Python): build its wheel; the others are binary or universal
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir),
                        WHEELS[0]], check=True)
        platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--only-binary=:all:",
                        "--python-version", GPU_PYTHON, "--implementation", "cp", *platform_args,
                        "-d", str(wheel_dir), *WHEELS[1:]], check=True)
    files = sorted(p for p in carry.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files) / 2**20
    print(f"{carry}: {len(files)} files, {size:.1f} MiB (the device takes at most 64 MiB)")
    return files


# ------------------------------------------------------------------------------------ there
class Study:
    """The phases, a log, and the deadline."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.start = time.monotonic()
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.results = Path(args.results)
        self.results.mkdir(parents=True, exist_ok=True)
        self.log = self.out / "study.log"
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")

    def left(self) -> float:
        """Minutes left before the deadline."""
        return self.args.minutes - (time.monotonic() - self.start) / 60

    def say(self, text: str) -> None:
        line = f"[study {(time.monotonic() - self.start) / 60:5.1f} min] {text}"
        print(line, flush=True)
        with self.log.open("a") as f:
            f.write(line + "\n")

    def call(self, argv: list[str], minutes: float) -> int:
        """Run a runner for at most ``minutes``; what it finished stays in its JSON lines.

        A phase run with ``--compile`` that fails is run again without it for the time left.
        """
        self.say(f"$ {' '.join(argv)}  (at most {minutes:.1f} min)")
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        copier = threading.Thread(target=self._copy, args=(proc,), daemon=True)
        copier.start()
        try:
            code = proc.wait(timeout=60 * minutes)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers
            proc.wait()
            self.say("phase stopped at its deadline; finished runs are kept, a rerun resumes")
            code = -9
        copier.join(timeout=5)
        self.say(f"exit code {code}")
        left = minutes - (time.monotonic() - start) / 60
        if code not in (0, -9) and "--compile" in argv and left > 0.5:
            self.say("the compiled phase failed: running it eagerly for the time left")
            return self.call([a for a in argv if a != "--compile"], left)
        return code

    def _copy(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with self.log.open("a") as f:
            for line in proc.stdout:
                f.write(line)
                f.flush()
                print(line, end="", flush=True)

    def setup(self) -> Path:
        """Install the carried wheels, unpack the images; return the data folder."""
        carry = Path(self.args.carry)
        if not self.args.no_install:
            wheels = sorted((carry / "wheels").glob("*.whl"))
            if wheels:
                subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                                "--no-compile", "--target", self.args.site, *map(str, wheels)], check=True)
                self.env["PYTHONPATH"] = os.pathsep.join(
                    [self.args.site, str(ROOT), self.env.get("PYTHONPATH", "")])
        data = Path(self.args.data)
        if not (data / "train").is_dir():
            subprocess.run([sys.executable, str(carry / "pack_images.py"), "unpack",
                            str(carry / "cifar10.npz"), str(data)], check=True)
        self.say(f"data in {data}; python {sys.version.split()[0]}")
        return data

    def collect(self) -> None:
        """Copy the JSON lines and the reports to ``--out`` (what comes back from the machine)."""
        reports = []
        for name, argv in (("airbench.jsonl", ["benchmarks/airbench.py", "--report"]),
                           ("sweep_full.jsonl", ["benchmarks/sweep.py", "--report"]),
                           ("sweep_sizes.jsonl", ["benchmarks/sweep.py", "--report"])):
            path = self.results / name
            if not path.exists():
                continue
            shutil.copy(path, self.out / name)
            extra = ["--figure-sizes", str(self.out / "sizes.png")] if name == "sweep_sizes.jsonl" else []
            done = subprocess.run([sys.executable, *argv, "--jsonl", str(path), *extra], cwd=ROOT,
                                  env=self.env, capture_output=True, text=True)
            reports.append(f"## {name}\n\n{done.stdout}{done.stderr}")
        (self.out / "report.md").write_text("\n\n".join(reports))


def run(args: argparse.Namespace) -> None:
    """Every phase, in order of priority, inside ``--minutes``."""
    study = Study(args)
    data = study.setup()
    device = ["--device", args.device]
    smoke = args.smoke
    ab_tiny = ["--epochs", "1", "--widths", "8,16,16", "--batch-size", "8", "--holdout", "10",
               "--limit-train", "40", "--limit-test", "20"]
    sweep_tiny = ["--batch-size", "20", "--test-limit", "20", "--eval-every", "0", "--threads", "1"]
    results = Path(args.results)
    work = Path(args.work)
    common_sweep = ["--data", str(data), "--eval-every", "0", "--no-progress",
                    "--out", str(work / "study_train"), *device]
    if args.compile:
        common_sweep.append("--compile")

    # 1. airbench94: every ChannelDrop configuration against plain, 25 seeds each at its held-out choice
    airbench = ["benchmarks/airbench.py", "--data", str(data), "--jsonl", str(results / "airbench.jsonl"),
                "--cache", str(work / "airbench_data"), "--workers", str(args.airbench_workers), *device]
    airbench += ([*ab_tiny, "--runs", "2", "--select-seeds", "1000", "--lr-factors", "1"] if smoke
                 else ["--runs", "25", "--select-seeds", "1000-1001", "--lr-factors", "0.7,1,1.4"])
    study.call(airbench, args.minutes * 0.25)
    study.collect()

    # 2. ResNet-20 on the full training set, 60 epochs: plain vs the main ChannelDrop arm
    full = ["benchmarks/sweep.py", "--protocol", "best-schedule", "--arms", args.arms,
            "--jsonl", str(results / "sweep_full.jsonl"), "--workers", str(args.workers),
            "--lrs", LRS, "--anneals", "linear,cos", "--select-seeds", "0", "--seeds", "0,1,2",
            *common_sweep]
    full += (["--sizes", "100", "--holdout", "20", "--epochs", "1", *sweep_tiny] if smoke
             else ["--holdout", "5000", "--epochs", "60", "--batch-size", BATCH])
    study.call(full, max(0.5, min(args.minutes * 0.5, study.left() - 1)))
    study.collect()

    # 3. the data-size curve under the same rule, the epoch count fitted to what is left
    if study.left() > 1.5:
        budget = study.left() - 1
        curve = ["benchmarks/sweep.py", "--protocol", "best-schedule", "--arms", args.arms,
                 "--jsonl", str(results / "sweep_sizes.jsonl"), "--workers", str(args.workers),
                 "--lrs", LRS, "--anneals", "linear,cos", "--select-seeds", "0",
                 "--seeds", "0,1,2", "--holdout", "0.1", "--epochs", "auto",
                 "--deadline-minutes", f"{budget:.2f}", *common_sweep]
        curve += (["--sizes", "60,100", "--min-epochs", "1", "--max-epochs", "1", "--lrs", "0.2",
                   "--anneals", "linear", "--seeds", "0", *sweep_tiny] if smoke
                  else ["--sizes", "5000,10000,25000,50000", "--min-epochs", "10", "--max-epochs", "60",
                        "--batch-size", BATCH])
        study.call(curve, budget)
    else:
        study.say("no time left for the data-size curve; a rerun continues")
    study.collect()
    study.say(f"done; results in {args.out}")


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    """``pack`` (here) or ``run`` (on the GPU machine)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack the data and the wheels into --carry (here)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    p.add_argument("--carry", default=str(CARRY))
    p.add_argument("--no-wheels", action="store_true", help="pack the images only")
    r = sub.add_parser("run", help="run the study (on the GPU machine)")
    r.add_argument("--carry", default=str(CARRY), help="the folder 'pack' wrote")
    r.add_argument("--data", default=str(ROOT / "runs" / "data" / "cifar10"), help="where to unpack")
    r.add_argument("--site", default="/tmp/site", help="where the carried wheels are installed")
    r.add_argument("--no-install", action="store_true", help="use the installed packages")
    r.add_argument("--results", default=str(RESULTS), help="the JSON lines (resumed from)")
    r.add_argument("--work", default=str(ROOT / "runs"), help="decoded-image caches")
    r.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "runs" / "gpu_out")),
                   help="where the lines, reports and log are copied")
    r.add_argument("--minutes", type=float, default=9, help="the whole study's deadline")
    r.add_argument("--device", default="cuda")
    r.add_argument("--arms", default="baseline,cd-head-k4-distill",
                   help="the ResNet-20 arms (plain and the main ChannelDrop configuration)")
    r.add_argument("--workers", type=int, default=8, help="ResNet-20 processes sharing the GPU")
    r.add_argument("--airbench-workers", type=int, default=4, help="airbench processes sharing the GPU")
    r.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="CUDA graphs for the ResNet-20 phases (torch.compile, reduce-overhead); a "
                   "phase that fails compiled runs again eagerly")
    r.add_argument("--smoke", action="store_true", help="every phase at a tiny size (CPU tests)")
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(Path(args.data), Path(args.carry), wheels=not args.no_wheels)
    else:
        run(args)
    if args.command == "run":
        print(json.dumps({"out": args.out}), flush=True)


if __name__ == "__main__":
    main()
