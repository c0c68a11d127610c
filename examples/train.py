"""Train and compare pretext configurations (plain, ChannelDrop, CutMix, Rotation, SLA) on one budget.

With no arguments it runs offline in a few minutes on a CPU: scikit-learn's 8×8 digits upscaled to
16×16×3, plain training against the internal pretext task ``ChannelDrop(k=4)``, without and with
self-distillation (the best setting of ``benchmarks/sweep.py``), two seeds::

    python examples/train.py

On CIFAR-10 in an ImageFolder tree (``train/`` and ``test/`` sub-folders)::

    python examples/train.py --data ../shared/data/cifar10 --train-limit 10000 \\
        --configs baseline,channeldrop,cutmix,cutmix+channeldrop,rotation,sla-rotation \\
        --seeds 0,1 --epochs 15 --out runs/cifar

or with torchvision's downloader: ``--dataset cifar10 --download``. Images are decoded once into
memory (and cached under ``runs/cache``), augmented on the device (random crop with padding 4,
horizontal flip), and every configuration trains the same model on the same schedule. At the end it
prints a table per configuration (test accuracy single / aggregated, time per epoch, the ratio of
training time to the baseline's) and writes ``results.json`` and PNG plots to ``--out``.

Configurations:

* ``baseline``: plain cross-entropy.
* ``channeldrop``: ``Compose([ChannelDrop(k=4)])``, the internal pretext task at the classifier input.
* ``channeldrop-layer3``: ``ChannelDrop(k=4, at="layer3")``, inside the network.
* ``channeldrop-distill``: ``ChannelDrop(k=4)`` with self-distillation (SLA+SD): a plain head learns the
  labels and the aggregated joint prediction; reported as ``distilled`` accuracy too.
* ``cutmix``: torchvision's ``v2.CutMix`` with soft-label cross-entropy.
* ``cutmix+channeldrop``: ``v2.CutMix`` first, then the pretext on the mixed labels.
* ``rotation``: ``Compose([Rotation()])``, one rotation drawn per image (sample mode).
* ``sla-rotation``: ``Compose([Rotation()], mode="all")``, SLA: every image in all 4 rotations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import (
    ImageSet,
    augment,
    batches,
    cifar_resnet18,
    digits,
    image_folder,
    normalize,
    resnet20,
    torchvision_cifar10,
)

from ipt_compose import (
    ChannelDrop,
    Compose,
    JointModel,
    Pretext,
    Rotation,
    joint_cross_entropy,
    self_distillation_loss,
)


# ------------------------------------------------------------------------------------ configs
@dataclass(frozen=True)
class Setting:
    """One training configuration.

    Attributes:
        name: the name in tables and JSON.
        pretexts: the pretexts (empty: plain cross-entropy on the plain classifier).
        mode: ``Compose``'s mode.
        cutmix: torchvision's ``v2.CutMix`` before the pretexts.
        distill: ``JointModel(..., distill=True)`` trained with ``self_distillation_loss`` too.
    """

    name: str
    pretexts: tuple[Pretext, ...] = ()
    mode: str = "sample"
    cutmix: bool = False
    distill: bool = False

    def compose(self, num_classes: int) -> Compose | None:
        if not self.pretexts:
            return None
        return Compose(list(self.pretexts), num_classes=num_classes, mode=self.mode)  # type: ignore[arg-type]


SETTINGS = {
    s.name: s
    for s in (
        Setting("baseline"),
        Setting("channeldrop", (ChannelDrop(k=4),)),
        Setting("channeldrop-layer3", (ChannelDrop(k=4, at="layer3"),)),
        Setting("channeldrop-distill", (ChannelDrop(k=4),), distill=True),
        Setting("cutmix", cutmix=True),
        Setting("cutmix+channeldrop", (ChannelDrop(k=4),), cutmix=True),
        Setting("rotation", (Rotation(),)),
        Setting("sla-rotation", (Rotation(),), mode="all"),
    )
}
CONFIGS = tuple(SETTINGS)


def make_pretext(config: str, num_classes: int) -> Compose | None:
    """The pretext of a named configuration (``None`` for plain training)."""
    if config not in SETTINGS:
        raise ValueError(f"unknown config {config!r}; choose from {', '.join(CONFIGS)}")
    return SETTINGS[config].compose(num_classes)


def make_backbone(name: str, num_classes: int) -> nn.Module:
    if name == "resnet20":
        return resnet20(num_classes)
    if name == "resnet18":
        return cifar_resnet18(num_classes)
    raise ValueError(f"--model must be resnet20 or resnet18, got {name!r}")


def aggregates_for(setting: Setting, pretext: Compose | None) -> dict[str, str]:
    """Columns reported for a configuration: name → ``predict(aggregate=...)``."""
    if pretext is None:
        return {"single": "none"}
    out = {"single": "none", "aggregated": "features"}
    if any(p.site == "input" for p in pretext.pretexts):
        out["aggregated"] = "all"  # input pretexts: SLA+AG over all rotations
    if setting.distill:
        out["distilled"] = "distilled"
    return out


# ------------------------------------------------------------------------------------ loading
def load_data(args: argparse.Namespace) -> tuple[ImageSet, ImageSet, dict[str, Any]]:
    if args.data is not None:
        root = Path(args.data)
        train_dir, test_dir = root / "train", root / "test"
        if not train_dir.is_dir() or not test_dir.is_dir():
            raise SystemExit(f"--data {root} must hold train/ and test/ ImageFolder trees")
        cache = None if args.no_cache else Path(args.out).parent / "cache"
        t0 = time.perf_counter()
        train = image_folder(train_dir, limit=args.train_limit, seed=0, cache_dir=cache,
                             image_size=args.image_size)
        test = image_folder(test_dir, limit=args.test_limit, seed=0, cache_dir=cache,
                            image_size=args.image_size)
        info = {"dataset": str(root), "decode_s": round(time.perf_counter() - t0, 1)}
        flip = True
    elif args.dataset == "cifar10":
        train, test = torchvision_cifar10(args.data_root, download=args.download)
        train, test = train.subset(args.train_limit), test.subset(args.test_limit)
        info = {"dataset": "cifar10 (torchvision)"}
        flip = True
    else:
        train, test = digits(size=args.image_size or 16)
        train, test = train.subset(args.train_limit), test.subset(args.test_limit)
        info = {"dataset": "sklearn digits"}
        flip = False  # digits are not mirror-symmetric
    info.update(train=len(train), test=len(test), image_size=list(train.images.shape[-2:]),
                classes=train.num_classes, flip=flip if args.flip is None else args.flip)
    return train, test, info


# ------------------------------------------------------------------------------------ training
def _progress(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


@torch.no_grad()
def evaluate(
    model: nn.Module, test: ImageSet, columns: dict[str, str], prep: Callable[[Tensor], Tensor],
    batch_size: int,
) -> dict[str, float]:
    model.eval()
    correct = dict.fromkeys(columns, 0)
    for images, labels in batches(test, batch_size, shuffle=False):
        x, labels = prep(images), labels.to(prep.device)  # type: ignore[attr-defined]
        for name, aggregate in columns.items():
            joint = isinstance(model, JointModel)
            scores = model.predict(x, aggregate=aggregate) if joint else model(x)  # type: ignore[arg-type]
            correct[name] += int((scores.argmax(1) == labels).sum())
    return {name: correct[name] / len(test) for name in columns}


def run_one(
    config: str | Setting, seed: int, train: ImageSet, test: ImageSet, args: argparse.Namespace,
    info: dict[str, Any], mean: Tensor, std: Tensor,
) -> dict[str, Any]:
    """Train one configuration (a name in ``SETTINGS`` or a ``Setting``) with one seed."""
    setting = config if isinstance(config, Setting) else SETTINGS[config]
    config = setting.name
    device = torch.device(args.device)
    torch.manual_seed(seed)
    num_classes = train.num_classes
    backbone = make_backbone(args.model, num_classes)
    pretext = setting.compose(num_classes)
    model: nn.Module = (
        backbone
        if pretext is None
        else JointModel(backbone, pretext, num_classes, distill=setting.distill)
    )
    model.to(device)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    cutmix = None
    if setting.cutmix:
        from torchvision.transforms import v2

        cutmix = v2.CutMix(num_classes=num_classes)
    mean, std = mean.to(device), std.to(device)

    def prep(images: Tensor) -> Tensor:
        return normalize(images.to(device), mean, std).contiguous(memory_format=layout)

    prep.device = device  # type: ignore[attr-defined]

    steps_per_epoch = max(1, len(train) // args.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                                weight_decay=args.weight_decay)
    total = steps_per_epoch * args.epochs
    if args.schedule == "onecycle":
        scheduler: Any = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=args.lr, total_steps=total, pct_start=0.15, anneal_strategy="linear",
            div_factor=10.0, final_div_factor=100.0)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    columns = aggregates_for(setting, pretext)
    g = torch.Generator().manual_seed(seed)
    history: list[dict[str, Any]] = []
    train_time = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        loss_sum, seen = 0.0, 0
        bar = _progress(
            batches(train, args.batch_size, shuffle=True, generator=g, drop_last=True),
            steps_per_epoch, f"{config} s{seed} e{epoch}", args.progress)
        for images, labels in bar:
            x = augment(prep(images), padding=args.padding, flip=info["flip"], generator=g)
            x = x.contiguous(memory_format=layout)
            y: Tensor = labels.to(device)
            if cutmix is not None:
                x, y = cutmix(x, y)
            if pretext is None:
                loss = F.cross_entropy(model(x), y)
            else:
                batch = pretext(x, y, generator=g)
                if setting.distill:
                    out = model(batch.inputs, batch.states, return_plain=True)
                    loss = joint_cross_entropy(out.joint, batch.target) + self_distillation_loss(
                        out.plain, out.teacher, batch.target
                    )
                else:
                    loss = joint_cross_entropy(model(batch.inputs, batch.states), batch.target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(labels)
            seen += len(labels)
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        last = epoch == args.epochs
        if last or (args.eval_every > 0 and epoch % args.eval_every == 0):
            acc = evaluate(model, test, columns, prep, args.eval_batch_size)
        else:
            acc = {}
        history.append({"epoch": epoch, "loss": loss_sum / max(seen, 1), "time_s": epoch_time,
                        **{f"acc_{k}": v for k, v in acc.items()}})
        acc_text = "  ".join(f"{k} {100 * v:5.2f}%" for k, v in acc.items())
        print(f"[{config} seed {seed}] epoch {epoch:3d}/{args.epochs}  loss {loss_sum / max(seen, 1):.4f}"
              f"  {epoch_time:6.1f}s  {acc_text}", flush=True)
    final = acc  # the last epoch is always evaluated
    return {
        "config": config,
        "seed": seed,
        "epochs": args.epochs,
        "train_time_s": train_time,
        "time_per_epoch_s": train_time / args.epochs,
        "accuracy": final,
        "history": history,
    }


# ------------------------------------------------------------------------------------ report
def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and spread (sample std, min, max) per configuration.

    Time per epoch is the fastest epoch over every seed (the median is kept too): on a shared
    machine a burst of load from other processes slows some epochs, never speeds one up, so the
    minimum is the least skewed estimate of a configuration's own cost and of its ratio to the
    baseline.
    """
    by_config: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_config.setdefault(r["config"], []).append(r)

    def epoch_time(rs: list[dict[str, Any]]) -> float:
        return min(h["time_s"] for r in rs for h in r["history"])

    base = by_config.get("baseline")
    base_time = epoch_time(base) if base else None
    summary: dict[str, dict[str, Any]] = {}
    for config, rs in by_config.items():
        entry: dict[str, Any] = {"seeds": [r["seed"] for r in rs]}
        for col in rs[0]["accuracy"]:
            values = [r["accuracy"][col] for r in rs]
            entry[col] = {
                "mean": statistics.mean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values),
                "max": max(values),
                "values": values,
            }
        entry["time_per_epoch_s"] = epoch_time(rs)
        entry["median_epoch_s"] = statistics.median(h["time_s"] for r in rs for h in r["history"])
        entry["time_ratio"] = entry["time_per_epoch_s"] / base_time if base_time else None
        summary[config] = entry
    return summary


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    def cell(entry: dict[str, Any], col: str) -> str:
        if col not in entry:
            return "—"
        v = entry[col]
        return f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"

    header = "| config | seeds | single acc % | aggregated acc % | s/epoch (fastest) | time vs baseline |"
    lines = [header, "| --- | --- | --- | --- | --- | --- |"]
    for config, e in summary.items():
        ratio = f"{e['time_ratio']:.2f}×" if e["time_ratio"] is not None else "—"
        lines.append(f"| {config} | {len(e['seeds'])} | {cell(e, 'single')} | "
                     f"{cell(e, 'aggregated')} | {e['time_per_epoch_s']:.1f} | {ratio} |")
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], summary: dict[str, dict[str, Any]], out: Path,
         prefix: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    paths = []
    configs = list(summary)
    colors = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(configs)}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for r in records:
        pts = [(h["epoch"], h["acc_single"]) for h in r["history"] if "acc_single" in h]
        if pts:
            label = r["config"] if r["seed"] == summary[r["config"]]["seeds"][0] else None
            ax.plot(*zip(*pts, strict=True), color=colors[r["config"]], alpha=0.8, label=label,
                    marker="o" if len(pts) < 3 else None)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("test accuracy (single)")
    ax.set_title("Test accuracy per epoch (one line per seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"{prefix}accuracy_per_epoch.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(str(path))

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    width = 0.38
    for i, c in enumerate(configs):
        for j, col in enumerate(("single", "aggregated")):
            if col not in summary[c]:
                continue
            e = summary[c][col]
            x = i + (j - 0.5) * width
            ax.bar(x, 100 * e["mean"], width, color=colors[c], alpha=1.0 if j == 0 else 0.55,
                   label=None)
            ax.scatter([x] * len(e["values"]), [100 * v for v in e["values"]], color="black", s=10,
                       zorder=3)
    lows = [100 * summary[c][col]["min"] for c in configs for col in ("single", "aggregated")
            if col in summary[c]]
    ax.set_ylim(max(0.0, min(lows) - 5), min(100.0, max(100 * summary[c]["single"]["max"]
                                                       for c in configs) + 3))
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(configs, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("final test accuracy %")
    ax.set_title("Final accuracy: single (solid) / aggregated (light); dots = seeds")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out / f"{prefix}final_accuracy.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(str(path))
    return paths


def report(path: Path, out: Path, prefix: str, *, plots: bool = True) -> dict[str, Any]:
    """Summarise a saved ``results.json`` (complete or cut short) without training."""
    saved = json.loads(path.read_text())
    records = saved["records"]
    summary = summarize(records)
    table = format_table(summary)
    print(table, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    figures = plot(records, summary, out, prefix) if plots else []
    return {"meta": saved.get("meta", {}), "records": records, "summary": summary, "table": table,
            "figures": figures}


# ------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="ImageFolder root with train/ and test/ (default: digits)")
    p.add_argument("--dataset", default="digits", choices=("digits", "cifar10"),
                   help="built-in data when --data is not given (cifar10 uses torchvision)")
    p.add_argument("--data-root", default="runs/data", help="where --dataset cifar10 is stored")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10")
    p.add_argument("--train-limit", type=int, default=None, help="class-balanced training subset")
    p.add_argument("--test-limit", type=int, default=None, help="class-balanced test subset")
    p.add_argument("--image-size", type=int, default=None, help="resize images (digits: default 16)")
    p.add_argument("--no-cache", action="store_true", help="do not cache decoded images")
    p.add_argument("--configs", default="baseline,channeldrop,channeldrop-distill",
                   help=f"comma list of {CONFIGS}")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=None, help="default 10 (digits), 15 (other data)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (0: last only)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default="onecycle", choices=("onecycle", "cosine"))
    p.add_argument("--padding", type=int, default=None, help="random-crop padding (default 4; digits 2)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="random horizontal flip (default: on, off for digits)")
    p.add_argument("--model", default="resnet20", choices=("resnet20", "resnet18"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (on a busy shared CPU, 1 is often fastest)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last memory format (default: on for CPU)")
    p.add_argument("--out", default="runs/train", help="directory for results.json and plots")
    p.add_argument("--plot-prefix", default="", help="prefix of the PNG file names")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--report", default=None, metavar="RESULTS_JSON",
                   help="do not train: re-print the table and redraw the plots of a results.json")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="tqdm bars (default: when stderr is a terminal)")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 10 if args.data is None and args.dataset == "digits" else 15
    if args.padding is None:
        args.padding = 2 if args.data is None and args.dataset == "digits" else 4
    if args.channels_last is None:
        args.channels_last = torch.device(args.device).type == "cpu"
    if args.progress is None:
        args.progress = sys.stderr.isatty()
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every configuration × seed; return ``{"records", "summary", "table", ...}``."""
    args = parse_args(argv)
    if args.report is not None:
        return report(Path(args.report), Path(args.out), args.plot_prefix, plots=not args.no_plots)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c not in CONFIGS:
            raise SystemExit(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train, test, info = load_data(args)
    mean = train.images.float().mean(dim=(0, 2, 3)) / 255
    std = train.images.float().std(dim=(0, 2, 3)) / 255
    meta = {
        "argv": sys.argv[1:] if argv is None else list(argv),
        "data": info,
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "schedule": args.schedule,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "channels_last": args.channels_last,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
    }
    print(f"data: {info}", flush=True)
    records: list[dict[str, Any]] = []
    results_path = out / "results.json"
    # seeds outermost: a run cut short still has every configuration for the first seeds
    for seed in seeds:
        for config in configs:
            records.append(run_one(config, seed, train, test, args, info, mean, std))
            results_path.write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    summary = summarize(records)
    table = format_table(summary)
    print(table, flush=True)
    figures = [] if args.no_plots else plot(records, summary, out, args.plot_prefix)
    result = {"meta": meta, "records": records, "summary": summary, "table": table,
              "figures": figures}
    results_path.write_text(json.dumps(result, indent=1))
    print(f"wrote {results_path}" + (f" and {len(figures)} plots" if figures else ""), flush=True)
    return result


if __name__ == "__main__":
    main()
