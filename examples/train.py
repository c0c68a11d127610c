"""Train and compare pretext configurations (plain, ChannelDrop, CutMix, Rotation, SLA) on one budget.

With no arguments it runs offline in a few minutes on a CPU: scikit-learn's 8×8 digits upscaled to
16×16×3, plain training against the internal pretext task ``ChannelDrop(k=4)``, without and with
self-distillation (the best setting of ``benchmarks/sweep.py``), two seeds::

    python examples/train.py

Digits is a smoke test, not evidence: its 359 test images are ~99 % solved by every configuration,
so they differ by a few test images. The CIFAR-10 evidence is in ``docs/results.md``.

On CIFAR-10 in an ImageFolder tree (``train/`` and ``test/`` sub-folders)::

    python examples/train.py --data ../shared/data/cifar10 --train-limit 10000 \\
        --configs baseline,channeldrop,cutmix,cutmix+channeldrop,rotation,sla-rotation \\
        --seeds 0,1 --epochs 15 --out runs/cifar

or with torchvision's downloader: ``--dataset cifar10 --download``. Images are decoded once with
``torchvision.io`` (and cached under ``runs/cache``), held on the training device (``--device cuda``
moves them there once), augmented there per sample by kornia (random crop with padding 4,
horizontal flip), and every configuration trains the same model on the same schedule. The training
loop never waits for the device inside an epoch (the loss is summed on the device), and
``--compile`` runs the model through ``torch.compile(mode="reduce-overhead")`` (CUDA graphs on a GPU).
At the end it prints a table per configuration (test accuracy single / aggregated / distilled with
their spread over seeds, per-seed values, time per epoch and its ratio to the baseline's) and writes
``results.json`` and PNG plots to ``--out``. ``--holdout N`` evaluates on ``N`` held-out training
images instead of the test set, to choose hyper-parameters without touching the test set.

Configurations (``--configs``):

* ``baseline``: plain cross-entropy.
* ``channeldrop``: ``Compose([ChannelDrop(k=4)])``, the internal pretext task at the classifier input.
* ``channeldrop-all``: ``Compose([ChannelDrop(k=4)], mode="all")``: every image with all 4 drops
  (SLA's enumeration; at the head it costs only the classifier).
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
        Setting("channeldrop-all", (ChannelDrop(k=4),), mode="all"),
        Setting("channeldrop-layer3", (ChannelDrop(k=4, at="layer3"),)),
        Setting("channeldrop-distill", (ChannelDrop(k=4),), distill=True),
        Setting("cutmix", cutmix=True),
        Setting("cutmix+channeldrop", (ChannelDrop(k=4),), cutmix=True),
        Setting("rotation", (Rotation(),)),
        Setting("sla-rotation", (Rotation(),), mode="all"),
    )
}
CONFIGS = tuple(SETTINGS)
CONFIG_HELP = {
    "baseline": "plain cross-entropy",
    "channeldrop": "Compose([ChannelDrop(k=4)]) at the classifier input, one drop per image",
    "channeldrop-all": "the same with mode='all': every image with all 4 drops",
    "channeldrop-layer3": "ChannelDrop(k=4, at='layer3'), inside the network",
    "channeldrop-distill": "ChannelDrop(k=4) + self-distillation; adds the 'distilled' column",
    "cutmix": "torchvision v2.CutMix, soft-label cross-entropy",
    "cutmix+channeldrop": "v2.CutMix, then ChannelDrop(k=4) on the mixed labels",
    "rotation": "Compose([Rotation()]), one rotation per image",
    "sla-rotation": "Compose([Rotation()], mode='all'): SLA, all 4 rotations per image",
}


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
    """The training set and the evaluation set (the test set, or ``--holdout`` training images).

    With ``--holdout`` the held-out images come out of the (``--train-limit``) training set, so the
    test set is never looked at; with ``--data-on-device`` both sets are moved to ``--device`` once.
    """
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
    info["eval_set"] = "test"
    holdout = holdout_count(args.holdout, len(train))
    if holdout:
        train, test = train.split(holdout, seed=args.holdout_seed)
        info["eval_set"] = f"holdout ({holdout} training images, seed {args.holdout_seed})"
    if args.data_on_device:
        train, test = train.to(args.device), test.to(args.device)
    info.update(train=len(train), test=len(test), image_size=list(train.images.shape[-2:]),
                classes=train.num_classes, flip=flip if args.flip is None else args.flip)
    return train, test, info


def holdout_count(holdout: float, size: int) -> int:
    """``--holdout``: a count (``>= 1``) or a fraction of the training set (``< 1``); 0 for none."""
    if holdout <= 0:
        return 0
    count = int(holdout) if holdout >= 1 else round(holdout * size)
    if not 0 < count < size:
        raise SystemExit(f"--holdout {holdout} leaves no training images out of {size}")
    return count


def channel_stats(train: ImageSet) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of the training images in ``[0, 1]``, on the CPU."""
    images = train.images.float()
    return (images.mean(dim=(0, 2, 3)) / 255).cpu(), (images.std(dim=(0, 2, 3)) / 255).cpu()


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
    """Accuracy per column (``predict(aggregate=...)``), counted on the device, read back once."""
    model.eval()
    device: torch.device = prep.device  # type: ignore[attr-defined]
    correct = {name: torch.zeros((), dtype=torch.long, device=device) for name in columns}
    joint = isinstance(model, JointModel)
    for images, labels in batches(test, batch_size, shuffle=False):
        x, labels = prep(images), labels.to(device, non_blocking=True)
        for name, aggregate in columns.items():
            scores = model.predict(x, aggregate=aggregate) if joint else model(x)  # type: ignore[arg-type]
            correct[name] += (scores.argmax(1) == labels).sum()
    return {name: int(count) / len(test) for name, count in correct.items()}


def make_scheduler(
    optimizer: torch.optim.Optimizer, args: argparse.Namespace, total: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """``--schedule``: one-cycle (``--anneal linear``: warm-up 15 %, from lr/10 to lr/1000;
    ``--anneal cos``: torch's defaults, warm-up 30 %, cosine to lr/10⁵) or cosine annealing."""
    if args.schedule == "onecycle":
        if args.anneal == "linear":
            return torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=args.lr, total_steps=total, pct_start=0.15,
                anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(
    config: str | Setting, seed: int, train: ImageSet, test: ImageSet, args: argparse.Namespace,
    info: dict[str, Any], mean: Tensor, std: Tensor,
) -> dict[str, Any]:
    """Train one configuration (a name in ``SETTINGS`` or a ``Setting``) with one seed.

    Returns:
        ``{"config", "seed", "epochs", "lr", "schedule", "anneal", "train_time_s",
        "time_per_epoch_s", "accuracy": {column: fraction}, "history": [...]}``.
    """
    setting = config if isinstance(config, Setting) else SETTINGS[config]
    config = setting.name
    device = torch.device(args.device)
    torch.manual_seed(seed)  # weights, kornia's crops and flips, CutMix
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
    forward: Callable[..., Any] = model
    if args.compile:
        forward = torch.compile(model, mode=args.compile_mode)
    cutmix = None
    if setting.cutmix:
        from torchvision.transforms import v2

        cutmix = v2.CutMix(num_classes=num_classes)
    mean, std = mean.to(device), std.to(device)

    def prep(images: Tensor) -> Tensor:
        x = normalize(images.to(device, non_blocking=True), mean, std)
        return x.contiguous(memory_format=layout)

    prep.device = device  # type: ignore[attr-defined]

    steps_per_epoch = max(1, len(train) // args.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                                weight_decay=args.weight_decay)
    scheduler = make_scheduler(optimizer, args, steps_per_epoch * args.epochs)
    columns = aggregates_for(setting, pretext)
    g = torch.Generator().manual_seed(seed)  # batch order and pretext states
    history: list[dict[str, Any]] = []
    train_time = 0.0
    acc: dict[str, float] = {}
    for epoch in range(1, args.epochs + 1):
        model.train()
        _sync(device)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)  # summed on the device: no host sync per step
        seen = 0
        bar = _progress(
            batches(train, args.batch_size, shuffle=True, generator=g, drop_last=True),
            steps_per_epoch, f"{config} s{seed} e{epoch}", args.progress)
        for images, labels in bar:
            x = augment(prep(images), padding=args.padding, flip=info["flip"])
            x = x.contiguous(memory_format=layout)
            y: Tensor = labels.to(device, non_blocking=True)
            if cutmix is not None:
                x, y = cutmix(x, y)
            if pretext is None:
                loss = F.cross_entropy(forward(x), y)
            else:
                batch = pretext(x, y, generator=g)
                if setting.distill:
                    out = forward(batch.inputs, batch.states, return_plain=True)
                    loss = joint_cross_entropy(out.joint, batch.target) + self_distillation_loss(
                        out.plain, out.teacher, batch.target
                    )
                else:
                    loss = joint_cross_entropy(forward(batch.inputs, batch.states), batch.target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(labels)
            seen += len(labels)
        _sync(device)
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        last = epoch == args.epochs
        if last or (args.eval_every > 0 and epoch % args.eval_every == 0):
            acc = evaluate(model, test, columns, prep, args.eval_batch_size)
        else:
            acc = {}
        mean_loss = float(loss_sum) / max(seen, 1)
        history.append({"epoch": epoch, "loss": mean_loss, "time_s": epoch_time,
                        **{f"acc_{k}": v for k, v in acc.items()}})
        acc_text = "  ".join(f"{k} {100 * v:5.2f}%" for k, v in acc.items())
        print(f"[{config} seed {seed}] epoch {epoch:3d}/{args.epochs}  loss {mean_loss:.4f}"
              f"  {epoch_time:6.1f}s  {acc_text}", flush=True)
    return {
        "config": config,
        "seed": seed,
        "epochs": args.epochs,
        "lr": args.lr,
        "schedule": args.schedule,
        "anneal": args.anneal if args.schedule == "onecycle" else None,
        "eval_set": info.get("eval_set", "test"),
        "train_time_s": train_time,
        "time_per_epoch_s": train_time / args.epochs,
        "accuracy": acc,  # the last epoch is always evaluated
        "history": history,
    }


# ------------------------------------------------------------------------------------ report
COLUMNS = ("single", "aggregated", "distilled")


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and spread (sample std, min, max, per-seed values) per configuration.

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
    """A Markdown table: mean ± sample std over seeds per accuracy column, then the seeds' values."""

    def cell(entry: dict[str, Any], col: str) -> str:
        if col not in entry:
            return "—"
        v = entry[col]
        return f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"

    def per_seed(entry: dict[str, Any]) -> str:
        cols = [c for c in COLUMNS if c in entry]
        return "; ".join(
            f"s{seed}: " + " / ".join(f"{100 * entry[c]['values'][i]:.2f}" for c in cols)
            for i, seed in enumerate(entry["seeds"])
        )

    header = ("| config | seeds | single acc % | aggregated acc % | distilled acc % | per seed "
              "(single / aggregated / distilled) | s/epoch (fastest) | time vs baseline |")
    lines = [header, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for config, e in summary.items():
        ratio = f"{e['time_ratio']:.2f}×" if e["time_ratio"] is not None else "—"
        lines.append(f"| {config} | {len(e['seeds'])} | {cell(e, 'single')} | "
                     f"{cell(e, 'aggregated')} | {cell(e, 'distilled')} | {per_seed(e)} | "
                     f"{e['time_per_epoch_s']:.1f} | {ratio} |")
    return "\n".join(lines)


SWEEP_COMMAND = (
    "python benchmarks/sweep.py --data ../shared/data/cifar10 --train-limit 5000 --test-limit 2000 "
    "--epochs 10 --stages main,schedule --threads 1 --eval-every 0"
)


def reading(summary: dict[str, dict[str, Any]], test_size: int, dataset: str) -> str:
    """What the table can and cannot show: the size of one test image, the spread, the evidence."""
    one = 100.0 / max(test_size, 1)
    lines = [
        f"Mean ± sample std over seeds. One test image is {one:.2f} points of accuracy on these "
        f"{test_size} test images."
    ]
    best = [max(e[c]["mean"] for c in COLUMNS if c in e) for e in summary.values()]
    if best:
        gap = 100 * (max(best) - min(best))
        spread = max((100 * e[c]["std"] for e in summary.values() for c in COLUMNS if c in e),
                     default=0.0)
        lines.append(f"The configurations' best columns span {gap:.2f} points "
                     f"({gap / one:.1f} test images); the largest seed-to-seed std is {spread:.2f}.")
    if best and min(best) > 0.95:
        lines.append(
            "This set is saturated: every configuration scores above 95 %, so they differ by a few "
            "test images and the table is not a ranking."
        )
    elif "digits" in dataset or test_size < 1000:
        lines.append(
            f"With {test_size} test images a difference of a few images is noise, so the table is not "
            "a ranking (at its default 10 epochs digits saturates near 99 % for every configuration)."
        )
    lines.append(
        "Evidence on CIFAR-10 (5k-50k images, several seeds, intervals) is in docs/results.md "
        "('When does the internal task help?' and 'At full scale'); reproduce it with\n  "
        + SWEEP_COMMAND
    )
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], summary: dict[str, dict[str, Any]], out: Path,
         prefix: str) -> list[str]:
    """Two PNGs: accuracy per epoch (one line per seed) and final accuracy (bars from 0, seeds as dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    paths = []
    configs = list(summary)
    colors = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(configs)}
    seeds = sorted({r["seed"] for r in records})
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "P"]
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for r in records:
        pts = [(h["epoch"], 100 * h["acc_single"]) for h in r["history"] if "acc_single" in h]
        if pts:
            k = seeds.index(r["seed"])
            ax.plot(*zip(*pts, strict=True), color=colors[r["config"]], alpha=0.85,
                    linestyle=styles[k % len(styles)], marker=markers[k % len(markers)], markersize=4,
                    label=f"{r['config']} seed {r['seed']}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("test accuracy % (single)")
    ax.set_title("Test accuracy per epoch (colour: configuration; line and marker: seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = out / f"{prefix}accuracy_per_epoch.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(str(path))

    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    width = 0.27
    for i, c in enumerate(configs):
        for j, col in enumerate(COLUMNS):
            if col not in summary[c]:
                continue
            e = summary[c][col]
            x = i + (j - 1) * width
            ax.bar(x, 100 * e["mean"], width, yerr=100 * e["std"], capsize=2, color=colors[c],
                   alpha=(1.0, 0.6, 0.35)[j], edgecolor="black", linewidth=0.5)
            for k, v in enumerate(e["values"]):
                ax.scatter([x], [100 * v], color="black", s=12, zorder=3,
                           marker=markers[seeds.index(e_seed(summary[c], k)) % len(markers)])
    ax.set_ylim(0, 100)  # from 0: half-point differences look like what they are
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(configs, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("final test accuracy %")
    ax.set_title("Final accuracy: single / aggregated / distilled (darker to lighter);\n"
                 "error bar ± std, markers = seeds", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out / f"{prefix}final_accuracy.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(str(path))
    return paths


def e_seed(entry: dict[str, Any], index: int) -> int:
    """The seed of the ``index``-th value of a summary entry."""
    return int(entry["seeds"][index])


def finish(
    records: list[dict[str, Any]], meta: dict[str, Any], out: Path, prefix: str, *, plots: bool
) -> dict[str, Any]:
    """Print the table and what it can show, draw the plots, and name every file written."""
    summary = summarize(records)
    table = format_table(summary)
    print(table, flush=True)
    data = meta.get("data", {})
    note = reading(summary, int(data.get("test", 0) or 0), str(data.get("dataset", "")))
    print(note, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    figures = plot(records, summary, out, prefix) if plots else []
    return {"meta": meta, "records": records, "summary": summary, "table": table, "reading": note,
            "figures": figures}


def report(path: Path, out: Path, prefix: str, *, plots: bool = True) -> dict[str, Any]:
    """Summarise a saved ``results.json`` (complete or cut short) without training."""
    saved = json.loads(path.read_text())
    result = finish(saved["records"], saved.get("meta", {}), out, prefix, plots=plots)
    if result["figures"]:
        print("wrote plots: " + ", ".join(result["figures"]), flush=True)
    return result


# ------------------------------------------------------------------------------------ main
class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show every default (unless the help already says it) and keep the description's layout."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help`` lists every option with its default)."""
    configs_help = "comma list of configurations: " + "; ".join(
        f"{name}: {CONFIG_HELP[name]}" for name in CONFIGS)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    p.add_argument("--data", default=None,
                   help="ImageFolder root with train/ and test/ (default: --dataset)")
    p.add_argument("--dataset", default="digits", choices=("digits", "cifar10"),
                   help="built-in data when --data is not given (cifar10 uses torchvision)")
    p.add_argument("--data-root", default="runs/data", help="where --dataset cifar10 is stored")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10")
    p.add_argument("--train-limit", type=int, default=None,
                   help="class-balanced training subset (default: all)")
    p.add_argument("--test-limit", type=int, default=None,
                   help="class-balanced test subset (default: all)")
    p.add_argument("--holdout", type=float, default=0,
                   help="evaluate on this many held-out training images (a fraction if < 1) "
                   "instead of the test set; 0: the test set")
    p.add_argument("--holdout-seed", type=int, default=0, help="which training images are held out")
    p.add_argument("--image-size", type=int, default=None,
                   help="resize images to this size (default: digits 16, others unchanged)")
    p.add_argument("--no-cache", action="store_true", help="do not cache decoded images")
    p.add_argument("--configs", default="baseline,channeldrop,channeldrop-distill", help=configs_help)
    p.add_argument("--seeds", default="0,1",
                   help="comma list of seeds; each seed trains every configuration once (weights, "
                   "batch order, augmentation and pretext states all follow the seed)")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: 10 on digits, 15 on other data)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch size")
    p.add_argument("--eval-batch-size", type=int, default=500, help="evaluation batch size")
    p.add_argument("--eval-every", type=int, default=1,
                   help="evaluate every N epochs (0: after the last epoch only)")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate of SGD (Nesterov 0.9)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay")
    p.add_argument("--schedule", default="onecycle", choices=("onecycle", "cosine"),
                   help="learning-rate schedule, stepped every batch")
    p.add_argument("--anneal", default="linear", choices=("linear", "cos"),
                   help="one-cycle shape: linear (warm-up 15%%, lr/10 → lr → lr/1000) or cos "
                   "(torch's defaults: warm-up 30%%, lr/25 → lr → lr/2.5e5, cosine)")
    p.add_argument("--padding", type=int, default=None,
                   help="random-crop padding (default: 4; digits 2)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="random horizontal flip (default: on, off for digits)")
    p.add_argument("--model", default="resnet20", choices=("resnet20", "resnet18"),
                   help="CIFAR ResNet-20 (0.27 M parameters) or ResNet-18 with a CIFAR stem")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="training device")
    p.add_argument("--data-on-device", action=argparse.BooleanOptionalAction, default=None,
                   help="move the decoded images to --device once (default: on for CUDA)")
    p.add_argument("--compile", action="store_true",
                   help="train through torch.compile(model, mode=--compile-mode): CUDA graphs on a "
                   "GPU, which pay for small, launch-bound models; compiling takes a minute")
    p.add_argument("--compile-mode", default="reduce-overhead",
                   help="torch.compile mode for --compile")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (on a busy shared CPU, 1 is often fastest; "
                   "default: torch's choice)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last memory format (default: on for CPU)")
    p.add_argument("--out", default="runs/train", help="directory for results.json and plots")
    p.add_argument("--plot-prefix", default="", help="prefix of the PNG file names")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--report", default=None, metavar="RESULTS_JSON",
                   help="do not train: re-print the table and redraw the plots of a results.json")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="tqdm bars (default: when stderr is a terminal)")
    args = p.parse_args(argv)
    builtin = args.data is None and args.dataset == "digits"
    if args.epochs is None:
        args.epochs = 10 if builtin else 15
    if args.padding is None:
        args.padding = 2 if builtin else 4
    if args.channels_last is None:
        args.channels_last = torch.device(args.device).type == "cpu"
    if args.data_on_device is None:
        args.data_on_device = torch.device(args.device).type == "cuda"
    if args.progress is None:
        args.progress = sys.stderr.isatty()
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every configuration × seed; return ``{"records", "summary", "table", "figures", ...}``."""
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
    mean, std = channel_stats(train)
    meta = {
        "argv": sys.argv[1:] if argv is None else list(argv),
        "data": info,
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "schedule": args.schedule,
        "anneal": args.anneal,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "channels_last": args.channels_last,
        "compile": args.compile,
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
    result = finish(records, meta, out, args.plot_prefix, plots=not args.no_plots)
    saved = {k: result[k] for k in ("meta", "records", "summary", "table", "reading", "figures")}
    results_path.write_text(json.dumps(saved, indent=1))
    written = [str(results_path), *result["figures"]]
    print("wrote " + ", ".join(written), flush=True)
    return result


if __name__ == "__main__":
    main()
