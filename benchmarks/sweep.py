"""When does the internal task help? A resumable sweep over ChannelDrop's variants, on a CPU or a GPU.

Each run trains one setting with one seed through ``examples/train.py``'s loop and appends one JSON
line to ``--jsonl``; a run already there (same setting, epochs, seed, learning rate, schedule and
data) is skipped, so a sweep can span sessions: start each chunk with ``--max-minutes`` so that it
ends inside one. Shards let two processes share the plan (``--shard 0/2`` and ``--shard 1/2``, one
thread each)::

    python benchmarks/sweep.py --data ../shared/data/cifar10 --train-limit 5000 --test-limit 2000 \\
        --epochs 10 --stages main,schedule --threads 1 --shard 0/2 --max-minutes 90
    python benchmarks/sweep.py --report --figure docs/figures/sweep_schedule.png

**Fixed schedule** (``--stages``; ``--epochs`` each, seeds 0 and 1, ``--lr``/``--anneal`` for all):
plain training; ChannelDrop at the classifier input with k = 2, 4, 8, with the identity state, with
rescaling, with self-distillation, with every state per image (``cd-head-k4-all``,
``Compose([ChannelDrop(k=4)], mode="all")``); inside the last stage (``layer3.1``) and at an inner
stage (``layer2``); CutMix with and without ChannelDrop. ChannelDrop at the *output* of the last stage
equals ChannelDrop at the classifier input (global average pooling commutes with zeroing channels),
so it is not run twice. Stage ``schedule`` trains plain and ChannelDrop-k4 (or the settings named by
``--schedule``) at half and twice ``--epochs``; stage ``confirm`` adds seed 2 for plain training and
the settings named by ``--confirm``; ``--extra NAME@EPOCHS=SEEDS`` adds any runs.

**Each arm at its own best schedule** (``--protocol best-schedule``): for every training-set size in
``--sizes``, each arm of ``--arms`` trains on the grid ``--lrs`` × ``--anneals`` with ``--select-seeds``
and is evaluated on ``--holdout`` images held out of its training set (never the test set); the grid
point with the best mean held-out accuracy (the arm's own column: single for plain, aggregated for
ChannelDrop, distilled with self-distillation) is then trained on the whole training set with
``--seeds`` and evaluated on the test set. ``--report`` prints each arm at its best, with the
difference to plain training and its 95 % interval::

    python benchmarks/sweep.py --protocol best-schedule --data ../shared/data/cifar10 \\
        --arms baseline,cd-head-k4-all,cd-head-k4-distill --sizes 5000,10000,25000,50000 \\
        --lrs 0.05,0.1,0.2 --anneals linear,cos --holdout 0.1 --select-seeds 0 --seeds 0,1,2 \\
        --epochs 60 --device cuda --workers 8 --jsonl benchmarks/results/sweep_gpu.jsonl

**On a GPU**: ``--device cuda`` keeps the images on the device, augments there (kornia) and sums the
loss there (no host sync per step); ``--workers N`` trains N runs at once as separate processes on
the one GPU (eager small CNNs are bound by kernel launches, so parallel processes are what fills
the device); ``--compile`` adds CUDA graphs (``torch.compile(mode="reduce-overhead")``);
``--epochs auto --deadline-minutes M`` times a few steps of the slowest arm in every worker at once
and picks the largest epoch count (between ``--min-epochs`` and ``--max-epochs``) whose whole plan
should finish in ``M`` minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import train  # examples/train.py
from train import Setting

from ipt_compose import ChannelDrop

DEFAULT_JSONL = "runs/sweep/results.jsonl"
HEADLINE = {"baseline": "single", "cutmix": "single"}  # other arms: aggregated, or distilled


def variants() -> list[Setting]:
    """The settings of stage ``main`` (and every name ``--arms`` and ``--extra`` accept)."""
    return [
        Setting("baseline"),
        Setting("cd-head-k4", (ChannelDrop(k=4),)),
        Setting("cd-head-k2", (ChannelDrop(k=2),)),
        Setting("cd-head-k8", (ChannelDrop(k=8),)),
        Setting("cd-head-k4-identity", (ChannelDrop(k=4, identity=True),)),
        Setting("cd-head-k4-rescale", (ChannelDrop(k=4, rescale=True),)),
        Setting("cd-head-k4-distill", (ChannelDrop(k=4),), distill=True),
        Setting("cd-head-k4-all", (ChannelDrop(k=4),), mode="all"),
        Setting("cd-last-stage-k4", (ChannelDrop(k=4, at="layer3.1"),)),
        Setting("cd-inner-stage-k4", (ChannelDrop(k=4, at="layer2"),)),
        Setting("cutmix", cutmix=True),
        Setting("cutmix+cd-head-k4", (ChannelDrop(k=4),), cutmix=True),
    ]


def headline(setting: str) -> str:
    """The accuracy column an arm is judged by, fixed before any run: single, aggregated or distilled."""
    if setting in HEADLINE:
        return HEADLINE[setting]
    return "distilled" if setting.endswith("distill") else "aggregated"


@dataclass(frozen=True)
class Run:
    """One training run of the plan.

    Attributes:
        setting: a name of :func:`variants`.
        epochs: schedule length.
        seed: the seed of weights, data order, augmentation and pretext states.
        lr: peak learning rate.
        anneal: one-cycle shape (``linear`` or ``cos``).
        train_limit: class-balanced training-set size (``None``: all).
        holdout: training images held out for evaluation (0: evaluate on the test set).
        phase: ``fixed``, ``select`` (held-out, for the choice) or ``final`` (test set).
    """

    setting: str
    epochs: int
    seed: int
    lr: float
    anneal: str = "linear"
    train_limit: int | None = None
    holdout: int = 0
    phase: str = "fixed"


def parse_extra(spec: str) -> tuple[str, int, list[int]]:
    """``"NAME@EPOCHS=SEED,SEED"`` → ``(name, epochs, seeds)``, the runs of one ``--extra``."""
    try:
        head, seeds = spec.split("=")
        name, epochs = head.split("@")
        return name, int(epochs), [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--extra must read NAME@EPOCHS=SEED,SEED; got {spec!r}") from None


def plan(
    stages: list[str],
    epochs: int,
    confirm: list[str],
    schedule: tuple[str, ...] = ("baseline", "cd-head-k4"),
    extra: list[str] = (),  # type: ignore[assignment]
) -> list[tuple[Setting, int, int]]:
    """``(setting, epochs, seed)`` runs of the fixed-schedule stages, the cheap, informative ones first."""
    by_name = {s.name: s for s in variants()}
    runs: list[tuple[Setting, int, int]] = []
    if "main" in stages:
        runs += [(s, epochs, seed) for seed in (0, 1) for s in variants()]
    for spec in extra:
        name, length, seeds = parse_extra(spec)
        if name not in by_name:
            raise SystemExit(f"unknown setting {name!r} in --extra; choose from {list(by_name)}")
        runs += [(by_name[name], length, seed) for seed in seeds]
    if "schedule" in stages:
        for length in (max(1, epochs // 2), 2 * epochs):
            runs += [(by_name[n], length, seed) for seed in (0, 1) for n in schedule]
    unknown = [n for n in [*confirm, *schedule] if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; choose from {list(by_name)}")
    if "confirm" in stages:
        runs += [(by_name[n], epochs, 2) for n in ["baseline", *confirm]]
    return runs


def selection_plan(arms: list[str], sizes: list[int | None], lrs: list[float], anneals: list[str],
                   seeds: list[int], epochs: int, holdout: float) -> list[Run]:
    """The held-out runs of ``best-schedule``: every arm × size × lr × anneal × selection seed."""
    _check_arms(arms)
    return [
        Run(arm, epochs, seed, lr, anneal, size, _holdout(holdout, size), "select")
        for size in sizes for seed in seeds for lr in lrs for anneal in anneals for arm in arms
    ]


def final_plan(chosen: dict[tuple[str, int | None], tuple[float, str]], seeds: list[int],
               epochs: int) -> list[Run]:
    """The test-set runs of ``best-schedule``: every arm × size at its chosen ``(lr, anneal)``."""
    return [
        Run(arm, epochs, seed, lr, anneal, size, 0, "final")
        for seed in seeds for (arm, size), (lr, anneal) in chosen.items()
    ]


SETUP = ("data", "test_limit", "model", "batch_size", "schedule")


def choose(lines: list[dict[str, Any]], arms: list[str], sizes: list[int | None], epochs: int,
           setup: dict[str, Any] | None = None) -> dict[tuple[str, int | None], tuple[float, str]]:
    """Each arm's best ``(lr, anneal)`` per size: the best mean held-out accuracy of its own column.

    Only lines whose data, model and batch size match ``setup`` (a :func:`data_key`) count; ties go
    to the grid point seen first (lines in file order).
    """
    chosen: dict[tuple[str, int | None], tuple[float, str]] = {}
    same = [r for r in lines if setup is None or all(r["key"].get(k) == setup.get(k) for k in SETUP)]
    for size in sizes:
        for arm in arms:
            scores: dict[tuple[float, str], list[float]] = {}
            for r in same:
                if (r.get("phase") == "select" and r["setting"] == arm and r["epochs"] == epochs
                        and r.get("train_limit") == size):
                    scores.setdefault((r["lr"], r["anneal"]), []).append(r["accuracy"][headline(arm)])
            if not scores:
                raise SystemExit(f"no held-out runs of {arm} at {size} images, {epochs} epochs")
            chosen[(arm, size)] = max(scores, key=lambda k: statistics.mean(scores[k]))
    return chosen


def _holdout(holdout: float, size: int | None) -> int:
    if holdout >= 1:
        return int(holdout)
    if size is None:
        raise SystemExit("a fractional --holdout needs --sizes or --train-limit")
    return round(holdout * size)


def _check_arms(arms: list[str]) -> None:
    known = {s.name for s in variants()}
    unknown = [a for a in arms if a not in known]
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; choose from {sorted(known)}")


# ------------------------------------------------------------------------------------ running
def data_key(args: argparse.Namespace) -> dict[str, Any]:
    """What must match for two runs to be comparable (besides setting, epochs and seed)."""
    key = {
        "data": args.data or args.dataset,
        "train_limit": args.train_limit,
        "test_limit": args.test_limit,
        "model": args.model,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "schedule": args.schedule,
    }
    if args.anneal != "linear":  # lines written before --anneal existed were linear
        key["anneal"] = args.anneal
    if args.holdout:
        key["holdout"] = args.holdout
    return key


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single ``write`` to an ``O_APPEND`` file: lines that parallel
    workers append at once never interleave, however long."""
    data = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        if written != len(data):  # pragma: no cover - a full disk
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
    finally:
        os.close(fd)


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def _args_for(base: argparse.Namespace, run: Run) -> argparse.Namespace:
    args = argparse.Namespace(**vars(base))
    args.epochs, args.lr, args.anneal = run.epochs, run.lr, run.anneal
    args.train_limit, args.holdout = run.train_limit, run.holdout
    return args


def execute(runs: list[Run], rest: list[str], jsonl: Path, shard: str = "0/1",
            max_minutes: float = 0) -> int:
    """Train every run of this shard that ``jsonl`` does not hold yet; return how many ran."""
    base = train.parse_args([*rest, "--no-plots"])
    if base.threads:
        torch.set_num_threads(base.threads)
    index, count = (int(v) for v in shard.split("/"))
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    done = {json.dumps([r["key"], r["setting"], r["epochs"], r["seed"]], sort_keys=True)
            for r in read_lines(jsonl)}
    start, ran = time.monotonic(), 0
    loaded: dict[tuple[int | None, int], Any] = {}
    name = device_name(base.device)
    by_name = {s.name: s for s in variants()}
    for i, run in enumerate(runs):
        args = _args_for(base, run)
        key = data_key(args)
        if i % count != index or json.dumps([key, run.setting, run.epochs, run.seed],
                                            sort_keys=True) in done:
            continue
        elapsed = (time.monotonic() - start) / 60
        if max_minutes and elapsed > max_minutes:
            print(f"stopping after {elapsed:.0f} minutes; rerun to resume", flush=True)
            break
        data = (run.train_limit, run.holdout)
        if data not in loaded:
            loaded.clear()  # one data set on the device at a time
            train_set, test_set, info = train.load_data(args)
            loaded[data] = (train_set, test_set, info, *train.channel_stats(train_set))
        train_set, test_set, info, mean, std = loaded[data]
        record = train.run_one(by_name[run.setting], run.seed, train_set, test_set, args, info,
                               mean, std)
        line = {"key": key, **asdict(run), **record, "device_name": name,
                "torch": torch.__version__, "compile": base.compile}
        line["setting"] = run.setting
        append_line(jsonl, line)
        ran += 1
    return ran


def spawn(runs: list[Run], rest: list[str], jsonl: Path, workers: int, max_minutes: float) -> None:
    """Run the plan on ``workers`` processes at once (one GPU is shared), or in this process."""
    if workers <= 1:
        execute(runs, rest, jsonl, "0/1", max_minutes)
        return
    with tempfile.TemporaryDirectory() as tmp:
        plan_file = Path(tmp) / "plan.json"
        plan_file.write_text(json.dumps([asdict(r) for r in runs]))
        procs = [
            subprocess.Popen([sys.executable, __file__, "--plan-file", str(plan_file), "--shard",
                              f"{i}/{workers}", "--jsonl", str(jsonl), "--max-minutes",
                              str(max_minutes), *rest])
            for i in range(workers)
        ]
        codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"workers failed with exit codes {codes}")


def probe(setting: str, rest: list[str], out: Path, steps: int = 20) -> None:
    """Seconds per training step of ``setting`` after a warm-up epoch, written to ``out``."""
    base = train.parse_args([*rest, "--no-plots"])
    train_set, test_set, info = train.load_data(base)
    n = min(len(train_set), steps * base.batch_size)
    small = train_set.subset(n)
    args = argparse.Namespace(**vars(base))
    args.epochs, args.eval_every = 2, 0
    record = train.run_one(setting if isinstance(setting, Setting) else
                           {s.name: s for s in variants()}[setting], 0, small,
                           test_set.subset(min(len(test_set), 100)), args, info,
                           *train.channel_stats(small))
    steps_done = max(1, n // base.batch_size)
    out.write_text(json.dumps({"s_per_step": record["history"][-1]["time_s"] / steps_done}))


def fit_epochs(runs: list[Run], rest: list[str], workers: int, deadline_minutes: float,
               min_epochs: int, max_epochs: int, slowest: str) -> int:
    """The largest epoch count whose whole plan should end inside the deadline (85 % of it).

    Every worker times ``slowest`` at once (the contention of the real run), and the plan's steps
    per epoch are summed over its runs.
    """
    base = train.parse_args([*rest, "--no-plots", "--no-data-on-device"])
    sizes: dict[tuple[int | None, int], int] = {}
    steps = 0
    for run in runs:
        if (run.train_limit, run.holdout) not in sizes:
            sizes[(run.train_limit, run.holdout)] = len(train.load_data(_args_for(base, run))[0])
        steps += max(1, sizes[(run.train_limit, run.holdout)] // base.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"probe{i}.json" for i in range(workers)]
        procs = [subprocess.Popen([sys.executable, __file__, "--probe", slowest, "--probe-out",
                                   str(o), *rest]) for o in outs]
        if any(p.wait() for p in procs):
            raise SystemExit("timing probe failed")
        per_step = max(json.loads(o.read_text())["s_per_step"] for o in outs)
    epochs = math.floor(0.85 * deadline_minutes * 60 * workers / (steps * per_step))
    chosen = max(min_epochs, min(max_epochs, epochs))
    print(f"deadline {deadline_minutes} min, {workers} workers, {per_step * 1000:.1f} ms/step "
          f"under load, {steps} steps per epoch of the plan: {epochs} epochs fit; using {chosen}",
          flush=True)
    return chosen


def run(sweep: argparse.Namespace, rest: list[str]) -> None:
    """The fixed-schedule stages."""
    confirm = [c for c in sweep.confirm.split(",") if c]
    schedule = tuple(n for n in sweep.schedule.split(",") if n)
    stages = [s for s in sweep.stages.split(",") if s]
    base = train.parse_args([*rest, "--no-plots"])
    runs = [Run(s.name, e, seed, base.lr, base.anneal, base.train_limit, 0, "fixed")
            for s, e, seed in plan(stages, sweep.epochs, confirm, schedule, sweep.extra)]
    _prepare_cache(rest)
    if sweep.workers > 1:
        spawn(runs, rest, Path(sweep.jsonl), sweep.workers, sweep.max_minutes)
    else:
        execute(runs, rest, Path(sweep.jsonl), sweep.shard, sweep.max_minutes)


def run_protocol(sweep: argparse.Namespace, rest: list[str]) -> None:
    """``best-schedule``: the held-out grid, the choice, then the test-set runs at the choice."""
    base = train.parse_args([*rest, "--no-plots"])
    arms = [a for a in sweep.arms.split(",") if a]
    sizes: list[int | None] = ([int(s) for s in sweep.sizes.split(",") if s] if sweep.sizes
                               else [base.train_limit])
    lrs = [float(v) for v in sweep.lrs.split(",") if v]
    anneals = [a for a in sweep.anneals.split(",") if a]
    select_seeds = [int(s) for s in sweep.select_seeds.split(",") if s]
    seeds = [int(s) for s in sweep.seeds.split(",") if s]
    jsonl = Path(sweep.jsonl)
    _prepare_cache(rest, sizes)
    epochs = sweep.epochs
    if epochs == "auto":
        probe_plan = selection_plan(arms, sizes, lrs, anneals, select_seeds, 1, sweep.holdout)
        probe_plan += final_plan({(a, s): (lrs[0], anneals[0]) for a in arms for s in sizes}, seeds, 1)
        slowest = next((a for a in arms if a.endswith("-all")), arms[-1])
        epochs = fit_epochs(probe_plan, rest, max(1, sweep.workers), sweep.deadline_minutes,
                            sweep.min_epochs, sweep.max_epochs, slowest)
    epochs = int(epochs)
    selection = selection_plan(arms, sizes, lrs, anneals, select_seeds, epochs, sweep.holdout)
    spawn(selection, rest, jsonl, sweep.workers, sweep.max_minutes)
    chosen = choose(read_lines(jsonl), arms, sizes, epochs, data_key(base))
    for (arm, size), (lr, anneal) in chosen.items():
        print(f"chosen on held-out data: {arm} at {size or 'all'} images: lr {lr}, {anneal}", flush=True)
    spawn(final_plan(chosen, seeds, epochs), rest, jsonl, sweep.workers, sweep.max_minutes)


def _prepare_cache(rest: list[str], sizes: list[int | None] | None = None) -> None:
    """Decode the image folders once, before any worker starts, so that workers read the cache."""
    base = train.parse_args([*rest, "--no-plots", "--no-data-on-device"])
    if base.data is None or base.no_cache:
        return
    for size in sizes or [base.train_limit]:
        base.train_limit, base.holdout = size, 0
        train.load_data(base)


# ------------------------------------------------------------------------------------ report
# two-sided 95 % quantiles of Student's t by degrees of freedom (1-30), then the normal's
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042]


def t95(df: float) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom (rounded down)."""
    if df < 1:
        return math.inf
    return _T95[int(df) - 1] if df <= 30 else 1.96 + 2.4 / df  # within 0.002 of the exact value


def difference(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of ``a`` minus mean of ``b`` and the half-width of its 95 % interval (Welch)."""
    diff = statistics.mean(a) - statistics.mean(b)
    if len(a) < 2 or len(b) < 2:
        return diff, math.inf
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return diff, 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return diff, t95(df) * math.sqrt(va + vb)


def summarize(lines: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Mean, sample std and seeds of every accuracy column per (setting, epochs)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for line in lines:
        groups.setdefault((line["setting"], line["epochs"]), []).append(line)
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for group, rs in groups.items():
        entry: dict[str, Any] = {"seeds": sorted(r["seed"] for r in rs)}
        for column in ("single", "aggregated", "distilled"):
            values = [100 * r["accuracy"][column] for r in sorted(rs, key=lambda r: r["seed"])
                      if column in r["accuracy"]]
            if values:
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                entry[column] = (statistics.mean(values), spread, values)
        entry["best"] = max(entry[c][0] for c in ("single", "aggregated", "distilled") if c in entry)
        entry["s_per_epoch"] = statistics.median(r["time_per_epoch_s"] for r in rs)
        out[group] = entry
    return out


def report(sweep: argparse.Namespace) -> str:
    """Print the fixed-schedule table and, if the file has them, the best-schedule tables."""
    lines = read_lines(Path(sweep.jsonl))
    if not lines:
        raise SystemExit(f"no runs in {sweep.jsonl}")
    fixed = [r for r in lines if r.get("phase", "fixed") == "fixed"]
    text = ""
    if fixed:
        text = report_fixed(fixed, sweep)
    protocol = [r for r in lines if r.get("phase") in ("select", "final")]
    if protocol:
        text += ("\n\n" if text else "") + report_protocol(protocol, sweep)
    return text


def report_fixed(lines: list[dict[str, Any]], sweep: argparse.Namespace) -> str:
    keys = {json.dumps(line["key"], sort_keys=True) for line in lines}
    if len(keys) > 1:
        print(f"note: {len(keys)} data set-ups in {sweep.jsonl}; reporting each run's own group")
    summary = summarize(lines)

    def cell(entry: dict[str, Any], column: str) -> str:
        if column not in entry:
            return "—"
        mean, spread, _ = entry[column]
        return f"{mean:.2f} ± {spread:.2f}"

    rows = ["| setting | epochs | seeds | single % | aggregated % | distilled % | s/epoch |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for (name, epochs), e in sorted(summary.items(), key=lambda kv: (kv[0][1], -kv[1]["best"])):
        rows.append(f"| {name} | {epochs} | {','.join(map(str, e['seeds']))} | {cell(e, 'single')} | "
                    f"{cell(e, 'aggregated')} | {cell(e, 'distilled')} | {e['s_per_epoch']:.1f} |")
    table = "\n".join(rows)
    print(table)
    if sweep.figure:
        plot_schedule(summary, Path(sweep.figure))
    return table


def report_protocol(lines: list[dict[str, Any]], sweep: argparse.Namespace) -> str:
    """Each arm at its chosen schedule per training-set size: held-out and test accuracy, Δ to plain."""
    finals = [r for r in lines if r["phase"] == "final"]
    rows = ["| train images | epochs | arm (column) | chosen lr, anneal | held-out % | test % "
            "(mean ± std) | seeds | Δ vs plain, 95 % CI |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    groups: dict[tuple[Any, int], dict[str, list[dict[str, Any]]]] = {}
    setups = {json.dumps({k: r["key"].get(k) for k in SETUP}, sort_keys=True) for r in finals}
    if len(setups) > 1:
        print(f"note: {len(setups)} data/model set-ups among the final runs; pass one --jsonl per set-up")
    for r in finals:
        groups.setdefault((r.get("train_limit"), r["epochs"]), {}).setdefault(r["setting"], []).append(r)
    curve: dict[str, list[tuple[int, float, float]]] = {}
    for (size, epochs), arms in sorted(groups.items(), key=lambda kv: (kv[0][0] or 10**9, kv[0][1])):
        base = arms.get("baseline")
        plain = [100 * r["accuracy"]["single"] for r in base] if base else None
        for arm, rs in sorted(arms.items(), key=lambda kv: kv[0] != "baseline"):
            col = headline(arm)
            values = [100 * r["accuracy"][col] for r in rs]
            lr, anneal = rs[0]["lr"], rs[0]["anneal"]
            held = [100 * r["accuracy"][col] for r in lines if r["phase"] == "select"
                    and r["setting"] == arm and r.get("train_limit") == size and r["epochs"] == epochs
                    and r["lr"] == lr and r["anneal"] == anneal]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            delta = "—"
            if plain is not None and arm != "baseline":
                d, half = difference(values, plain)
                delta = f"{d:+.2f} [{d - half:+.2f}, {d + half:+.2f}]"
            held_text = f"{statistics.mean(held):.2f}" if held else "—"
            rows.append(f"| {size or 'all'} | {epochs} | {arm} ({col}) | {lr:g}, {anneal} | {held_text} | "
                        f"{statistics.mean(values):.2f} ± {spread:.2f} | {len(values)} | {delta} |")
            curve.setdefault(arm, []).append((size or 50_000, statistics.mean(values), spread))
    table = "\n".join(rows)
    print(table)
    if sweep.figure_sizes:
        plot_sizes(curve, Path(sweep.figure_sizes))
    return table


def plot_schedule(summary: dict[tuple[str, int], dict[str, Any]], path: Path) -> None:
    """Accuracy against schedule length: plain, ChannelDrop-k4 and with distillation; mean and seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    lines = (
        ("baseline", "single", "tab:gray"),
        ("cd-head-k4", "aggregated", "tab:blue"),
        ("cd-head-k4-all", "aggregated", "tab:green"),
        ("cd-head-k4-distill", "distilled", "tab:red"),
    )
    for name, column, color in lines:
        points = sorted(
            (epochs, e[column]) for (n, epochs), e in summary.items() if n == name and column in e
        )
        if not points:
            continue
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1][0] for p in points], "o-", color=color, label=f"{name} ({column})")
        for x, (_, _, values) in points:
            ax.scatter([x] * len(values), values, color=color, s=10, alpha=0.5)
    ax.set_xlabel("epochs")
    ax.set_ylabel("test accuracy %")
    ax.set_title("Accuracy against schedule length (dots: seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sizes(curve: dict[str, list[tuple[int, float, float]]], path: Path) -> None:
    """Test accuracy against training-set size, each arm at its own best schedule (± std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, points in curve.items():
        points.sort()
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                    marker="o", capsize=3, label=f"{arm} ({headline(arm)})")
    ax.set_xscale("log")
    ax.set_xlabel("training images")
    ax.set_ylabel("test accuracy %")
    ax.set_title("Each arm at its own best schedule (held-out choice); bars ± std")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    """Parse the sweep's own options; every other option goes to ``examples/train.py``'s parser."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jsonl", default=DEFAULT_JSONL, help="results, one JSON line per run")
    parser.add_argument("--stages", default="main,schedule", help="main, schedule, confirm")
    parser.add_argument("--epochs", default="10",
                        help="schedule length (stage main, or the protocol); 'auto' with --deadline-minutes")
    parser.add_argument("--confirm", default="", help="settings that get a third seed (stage confirm)")
    parser.add_argument("--schedule", default="baseline,cd-head-k4",
                        help="settings that stage schedule trains at half and twice --epochs")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME@EPOCHS=SEEDS",
                        help="also run these (repeatable), e.g. cd-head-k4-all@20=0,1,2; "
                        "use --stages '' to run only these")
    parser.add_argument("--protocol", default="fixed", choices=("fixed", "best-schedule"),
                        help="fixed: --stages at --lr; best-schedule: each arm at its held-out best")
    parser.add_argument("--arms", default="baseline,cd-head-k4-all,cd-head-k4-distill",
                        help="best-schedule: the settings compared")
    parser.add_argument("--sizes", default="",
                        help="best-schedule: training-set sizes (the data-size curve); "
                        "default --train-limit")
    parser.add_argument("--lrs", default="0.05,0.1,0.2", help="best-schedule: peak learning rates")
    parser.add_argument("--anneals", default="linear,cos", help="best-schedule: one-cycle shapes")
    parser.add_argument("--select-seeds", default="0", help="best-schedule: seeds of the held-out grid")
    parser.add_argument("--seeds", default="0,1,2", help="best-schedule: seeds at the chosen schedule")
    parser.add_argument("--holdout", type=float, default=0.1,
                        help="best-schedule: held-out training images (a fraction if < 1)")
    parser.add_argument("--workers", type=int, default=1,
                        help="parallel training processes (on one GPU); 1: this process")
    parser.add_argument("--deadline-minutes", type=float, default=0,
                        help="with --epochs auto: the time the whole plan may take")
    parser.add_argument("--min-epochs", type=int, default=1, help="with --epochs auto")
    parser.add_argument("--max-epochs", type=int, default=200, help="with --epochs auto")
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th planned run from i")
    parser.add_argument("--max-minutes", type=float, default=0, help="start no run after this")
    parser.add_argument("--report", action="store_true", help="summarise --jsonl and exit")
    parser.add_argument("--figure", default=None, help="with --report: accuracy vs epochs PNG")
    parser.add_argument("--figure-sizes", default=None,
                        help="with --report: accuracy vs training-set size PNG (best-schedule)")
    parser.add_argument("--plan-file", default=None, help=argparse.SUPPRESS)  # worker mode
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # timing-probe mode
    parser.add_argument("--probe-out", default=None, help=argparse.SUPPRESS)
    sweep, rest = parser.parse_known_args(argv)
    if sweep.report:
        report(sweep)
        return
    if sweep.plan_file:
        runs = [Run(**r) for r in json.loads(Path(sweep.plan_file).read_text())]
        execute(runs, rest, Path(sweep.jsonl), sweep.shard, sweep.max_minutes)
        return
    if sweep.probe:
        probe(sweep.probe, rest, Path(sweep.probe_out))
        return
    if sweep.epochs != "auto":
        sweep.epochs = int(sweep.epochs)
    elif not sweep.deadline_minutes:
        raise SystemExit("--epochs auto needs --deadline-minutes")
    if sweep.protocol == "best-schedule":
        run_protocol(sweep, rest)
    else:
        if sweep.epochs == "auto":
            raise SystemExit("--epochs auto is for --protocol best-schedule")
        run(sweep, rest)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
