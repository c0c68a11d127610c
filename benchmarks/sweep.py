"""When does the internal task help? A resumable sweep over ChannelDrop's variants.

Each run trains one setting with one seed through ``examples/train.py``'s loop and appends one JSON
line to ``--jsonl``; a run already there (same setting, epochs, seed and data) is skipped, so a sweep
can span sessions: start each chunk with ``--max-minutes`` so that it ends inside one. Shards let
two processes share the plan (``--shard 0/2`` and ``--shard 1/2``, one thread each)::

    python benchmarks/sweep.py --data ../shared/data/cifar10 --train-limit 5000 --test-limit 2000 \\
        --epochs 10 --stages main,schedule --threads 1 --shard 0/2 --max-minutes 90
    python benchmarks/sweep.py --report --figure docs/figures/sweep_schedule.png

The grid (stage ``main``, ``--epochs`` each, seeds 0 and 1): plain training; ChannelDrop at the
classifier input with k = 2, 4, 8, with the identity state, with rescaling, with self-distillation;
inside the last stage (``layer3.1``) and at an inner stage (``layer2``); CutMix with and without
ChannelDrop. ChannelDrop at the *output* of the last stage equals ChannelDrop at the classifier input
(global average pooling commutes with zeroing channels), so it is not run twice. Stage ``schedule``
trains plain and ChannelDrop-k4 (or the settings named by ``--schedule``) at half and twice
``--epochs``; stage ``confirm`` adds seed 2 for
plain training and the settings named by ``--confirm``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import train  # examples/train.py
from train import Setting

from ipt_compose import ChannelDrop

DEFAULT_JSONL = "runs/sweep/results.jsonl"


def variants() -> list[Setting]:
    """The settings of stage ``main``."""
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
    """``(setting, epochs, seed)`` runs in order: the cheap, informative ones first."""
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


def data_key(args: argparse.Namespace) -> dict[str, Any]:
    """What must match for two runs to be comparable (besides setting, epochs and seed)."""
    return {
        "data": args.data or args.dataset,
        "train_limit": args.train_limit,
        "test_limit": args.test_limit,
        "model": args.model,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "schedule": args.schedule,
    }


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(sweep: argparse.Namespace, rest: list[str]) -> None:
    args = train.parse_args([*rest, "--epochs", str(sweep.epochs), "--no-plots"])
    if args.threads:
        torch.set_num_threads(args.threads)
    shard, shards = (int(v) for v in sweep.shard.split("/"))
    path = Path(sweep.jsonl)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = data_key(args)
    done = {
        (r["setting"], r["epochs"], r["seed"]) for r in read_lines(path) if r["key"] == key
    }
    train_set, test_set, info = train.load_data(args)
    mean = train_set.images.float().mean(dim=(0, 2, 3)) / 255
    std = train_set.images.float().std(dim=(0, 2, 3)) / 255
    start = time.monotonic()
    confirm = [c for c in sweep.confirm.split(",") if c]
    schedule = tuple(n for n in sweep.schedule.split(",") if n)
    stages = [s for s in sweep.stages.split(",") if s]
    runs = plan(stages, sweep.epochs, confirm, schedule, sweep.extra)
    for index, (setting, epochs, seed) in enumerate(runs):
        if index % shards != shard or (setting.name, epochs, seed) in done:
            continue
        elapsed = (time.monotonic() - start) / 60
        if sweep.max_minutes and elapsed > sweep.max_minutes:
            print(f"stopping after {elapsed:.0f} minutes; rerun to resume", flush=True)
            break
        args.epochs = epochs
        record = train.run_one(setting, seed, train_set, test_set, args, info, mean, std)
        line = {"key": key, "setting": setting.name, "epochs": epochs, "seed": seed, **record}
        with path.open("a") as f:  # one line per run: appends from two shards do not interleave
            f.write(json.dumps(line) + "\n")


def summarize(lines: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Mean, sample std and seeds of every accuracy column per (setting, epochs)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for line in lines:
        groups.setdefault((line["setting"], line["epochs"]), []).append(line)
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for group, rs in groups.items():
        entry: dict[str, Any] = {"seeds": sorted(r["seed"] for r in rs)}
        for column in ("single", "aggregated", "distilled"):
            values = [100 * r["accuracy"][column] for r in rs if column in r["accuracy"]]
            if values:
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                entry[column] = (statistics.mean(values), spread, values)
        entry["best"] = max(entry[c][0] for c in ("single", "aggregated", "distilled") if c in entry)
        entry["s_per_epoch"] = statistics.median(r["time_per_epoch_s"] for r in rs)
        out[group] = entry
    return out


def report(sweep: argparse.Namespace) -> str:
    lines = read_lines(Path(sweep.jsonl))
    if not lines:
        raise SystemExit(f"no runs in {sweep.jsonl}")
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


def plot_schedule(summary: dict[tuple[str, int], dict[str, Any]], path: Path) -> None:
    """Accuracy against schedule length: plain, ChannelDrop-k4 and with distillation; mean and seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    lines = (
        ("baseline", "single", "tab:gray"),
        ("cd-head-k4", "aggregated", "tab:blue"),
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jsonl", default=DEFAULT_JSONL, help="results, one JSON line per run")
    parser.add_argument("--stages", default="main,schedule", help="main, schedule, confirm")
    parser.add_argument("--epochs", type=int, default=10, help="schedule length of stage main")
    parser.add_argument("--confirm", default="", help="settings that get a third seed (stage confirm)")
    parser.add_argument("--schedule", default="baseline,cd-head-k4",
                        help="settings that stage schedule trains at half and twice --epochs")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME@EPOCHS=SEEDS",
                        help="also run these (repeatable), e.g. cd-head-k4-all@20=0,1,2; "
                        "use --stages '' to run only these")
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th planned run from i")
    parser.add_argument("--max-minutes", type=float, default=0, help="start no run after this")
    parser.add_argument("--report", action="store_true", help="summarise --jsonl and exit")
    parser.add_argument("--figure", default=None, help="with --report: accuracy vs epochs PNG")
    sweep, rest = parser.parse_known_args(argv)
    if sweep.report:
        report(sweep)
    else:
        run(sweep, rest)


if __name__ == "__main__":
    main()
