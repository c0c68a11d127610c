"""Overhead of pretext tasks against plain training and inference, measured in one process.

Every case is timed once per round, the cases interleaved in a fixed order, and the median over
rounds is reported with its ratio to the plain case, so a machine whose load drifts affects every
case alike::

    python benchmarks/overhead.py --model resnet20 --batch-size 128 --rounds 20 --json runs/overhead.json

Cases (a training step is pretext + forward + loss + backward + SGD step):

* training step: plain; ChannelDrop at the head (sample, all); ChannelDrop at layer3 (sample, all);
  Rotation (sample); SLA rotation (all: 4× batch); CutMix + ChannelDrop + Rotation (sample);
* inference: plain; ``predict`` single (state 0) and aggregated over ChannelDrop's states
  (``aggregate="features"``) at the head and at layer3; SLA+AG over rotations (``aggregate="all"``);
* the label path alone, at N=100 classes: ipt_compose's ``CutMix`` + pretexts +
  ``joint_cross_entropy`` and its backward to the logits, against torchvision's ``v2.CutMix`` +
  ``F.cross_entropy`` (both mix the images too). At K=16 (joint width 1600) twice: with two
  ``ChannelDrop(k=4)`` (the labels alone: feature pretexts leave the images as they are) and with
  ``ChannelDrop(k=4)`` + ``Rotation()``, which also rotates the images; and at K=4.

``--only PREFIX`` times just the cases whose names start with it (e.g. ``--only labels``).

``--ops`` and ``--micro`` add the library's own cost, the budget of issue 11 (``benchmarks/budget.py``):
the aten ops a step or a ``predict`` call adds to its plain counterpart (and the host reads among
them), and the CPU time it adds on a model too small to hide it (flatten + linear, B=128). With
``--ops``/``--micro`` alone, only those run; add ``--timing`` to run the step timings too.

``--compile`` times the training steps through ``torch.compile`` (``mode="reduce-overhead"``: CUDA
graphs on a GPU), the plain step compiled alike.

Targets (read from the output, not asserted): ChannelDrop-at-head training step ≤ 1.03× plain,
aggregated predict ≤ 1.05× plain inference, label path ≤ 1.2× torchvision's.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import budget  # benchmarks/budget.py
from _data import cifar_resnet18, resnet20

from ipt_compose import (
    ChannelDrop,
    Compose,
    CutMix,
    JointModel,
    Rotation,
    joint_cross_entropy,
)

NUM_CLASSES = 10


def _backbone(name: str) -> nn.Module:
    return resnet20(NUM_CLASSES) if name == "resnet20" else cifar_resnet18(NUM_CLASSES)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_cases(args: argparse.Namespace) -> tuple[dict[str, Callable[[], Any]], dict[str, str]]:
    """Name → zero-argument callable, and name → the group whose plain case it is compared to."""
    device = torch.device(args.device)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, 32, 32, generator=g).to(device)
    images = images.contiguous(memory_format=layout)
    labels = torch.randint(NUM_CLASSES, (args.batch_size,), generator=g).to(device)

    def model_for(pretext: Compose | None) -> nn.Module:
        torch.manual_seed(0)
        backbone = _backbone(args.model)
        model = backbone if pretext is None else JointModel(backbone, pretext, NUM_CLASSES)
        return model.to(device, memory_format=layout)

    def train_step(pretext: Compose | None) -> Callable[[], None]:
        model = model_for(pretext)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def loss_of() -> Tensor:
            if pretext is None:
                return F.cross_entropy(model(images), labels)
            batch = pretext(images, labels)
            return joint_cross_entropy(model(batch.inputs, batch.states), batch.target)

        compute = torch.compile(loss_of, mode="reduce-overhead") if args.compile else loss_of

        def step() -> None:
            loss = compute()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _sync(device)

        return step

    def infer(pretext: Compose | None, aggregate: str | None) -> Callable[[], None]:
        model = model_for(pretext)
        model.eval()

        @torch.no_grad()
        def run() -> None:
            if isinstance(model, JointModel):
                model.predict(images, aggregate=aggregate)  # type: ignore[arg-type]
            else:
                model(images)
            _sync(device)

        return run

    def cd(mode: str = "sample", at: str | None = None) -> Compose:
        return Compose([ChannelDrop(k=4, at=at)], num_classes=NUM_CLASSES, mode=mode)  # type: ignore[arg-type]

    cases: dict[str, Callable[[], Any]] = {}
    group: dict[str, str] = {}
    train = {
        "train: plain": None,
        "train: ChannelDrop head, sample": cd(),
        "train: ChannelDrop head, all": cd("all"),
        "train: ChannelDrop layer3, sample": cd(at="layer3"),
        "train: ChannelDrop layer3, all": cd("all", at="layer3"),
        "train: Rotation, sample": Compose([Rotation()], num_classes=NUM_CLASSES),
        "train: SLA rotation, all (4x batch)": Compose([Rotation()], num_classes=NUM_CLASSES, mode="all"),
        "train: CutMix + ChannelDrop + Rotation": Compose(
            [CutMix(), ChannelDrop(k=4), Rotation()], num_classes=NUM_CLASSES
        ),
    }
    for name, pretext in train.items():
        cases[name] = train_step(pretext)
        group[name] = "train: plain"
    infer_cases: dict[str, tuple[Compose | None, str | None]] = {
        "infer: plain": (None, None),
        "infer: ChannelDrop head, single": (cd(), "none"),
        "infer: ChannelDrop head, aggregated (features)": (cd(), "features"),
        "infer: ChannelDrop layer3, aggregated (features)": (cd(at="layer3"), "features"),
        "infer: Rotation, SLA+AG (all)": (Compose([Rotation()], num_classes=NUM_CLASSES), "all"),
    }
    for name, (pretext, aggregate) in infer_cases.items():
        cases[name] = infer(pretext, aggregate)
        group[name] = "infer: plain"

    # ---- the label path alone, N = 100 classes
    n = 100
    lab_images = torch.randn(args.batch_size, 3, 32, 32, generator=g).to(device)
    lab_labels = torch.randint(n, (args.batch_size,), generator=g).to(device)
    from torchvision.transforms import v2

    tv_cutmix = v2.CutMix(num_classes=n)
    plain_logits = torch.randn(args.batch_size, n, generator=g).to(device).requires_grad_(True)

    def label_torchvision() -> None:
        _, soft = tv_cutmix(lab_images, lab_labels)
        F.cross_entropy(plain_logits, soft).backward()
        _sync(device)

    def label_ours(pretext: Compose) -> Callable[[], None]:
        logits = torch.randn(args.batch_size, n * pretext.num_states, generator=g).to(device)
        logits.requires_grad_(True)

        def run() -> None:
            batch = pretext(lab_images, lab_labels)
            joint_cross_entropy(logits, batch.target).backward()
            _sync(device)

        return run

    reference = "labels: torchvision v2.CutMix + F.cross_entropy (N=100)"
    label_cases = {
        reference: label_torchvision,
        # the labels alone at K=16: two feature pretexts leave the images as they are
        "labels: CutMix + ChannelDrop + ChannelDrop + joint CE (N=100, K=16)": label_ours(
            Compose([CutMix(), ChannelDrop(k=4), ChannelDrop(k=4, name="second")], num_classes=n)
        ),
        # the design's stack: Rotation also rotates the 32×32 images, work torchvision's case lacks
        "labels: CutMix + ChannelDrop + Rotation + joint CE (N=100, K=16)": label_ours(
            Compose([CutMix(), ChannelDrop(k=4), Rotation()], num_classes=n)
        ),
        "labels: CutMix + ChannelDrop + joint CE (N=100, K=4)": label_ours(
            Compose([CutMix(), ChannelDrop(k=4)], num_classes=n)
        ),
    }
    for name, fn in label_cases.items():
        cases[name] = fn
        group[name] = reference
    return cases, group


def measure(cases: dict[str, Callable[[], Any]], rounds: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(warmup + rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(elapsed)
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20", choices=("resnet20", "resnet18"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--only", default=None, help="time only the cases whose name starts with this")
    p.add_argument("--ops", action="store_true", help="count the ops each case adds (budget.py)")
    p.add_argument("--micro", action="store_true", help="time the library's own CPU cost (budget.py)")
    p.add_argument("--timing", action="store_true", help="with --ops/--micro: run the step timings too")
    p.add_argument("--compile", action="store_true",
                   help="compile the training steps with torch.compile(mode='reduce-overhead')")
    args = p.parse_args(argv)
    budget_result: dict[str, Any] = {}
    if args.ops or args.micro:
        budget_argv = [*(["--ops"] if args.ops else []), *(["--micro"] if args.micro else [])]
        if args.threads:
            budget_argv += ["--threads", str(args.threads)]
        budget_result = budget.main(budget_argv)
        if not args.timing:
            if args.json:
                budget.write_json(args.json, {"budget": budget_result})
            return {"budget": budget_result}
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.channels_last is None:
        args.channels_last = torch.device(args.device).type == "cpu"
    cases, group = build_cases(args)
    if args.only:
        chosen = {name for name in cases if name.startswith(args.only)}
        chosen |= {group[name] for name in chosen}  # and the plain case each is compared with
        cases = {name: fn for name, fn in cases.items() if name in chosen}
        if not cases:
            raise SystemExit(f"--only {args.only!r} matches no case")
    times = measure(cases, args.rounds, args.warmup)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    rows = []
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
        rows.append({
            "case": name,
            "median_ms": 1000 * medians[name],
            "iqr_ms": 1000 * (q[2] - q[0]),
            "ratio": medians[name] / medians[group[name]],
            "baseline": group[name],
        })
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  {'median ms':>10}  {'IQR ms':>8}  {'ratio':>6}")
    for r in rows:
        print(f"{r['case']:<{width}}  {r['median_ms']:10.2f}  {r['iqr_ms']:8.2f}  {r['ratio']:5.2f}x")
    device = torch.device(args.device)
    meta = {
        "model": args.model,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "channels_last": args.channels_last,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python "
        f"{platform.python_version()}",
        "argv": sys.argv[1:] if argv is None else list(argv),
        "compile": args.compile,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
    }
    result = {"meta": meta, "rows": rows, "budget": budget_result}
    if args.json:
        budget.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
