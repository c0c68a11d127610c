"""Per-call cost of the label path: ours (CutMix + Compose + joint_cross_entropy) vs torchvision's.

One process, the two paths interleaved round by round, median over ``--rounds`` rounds:

* **ours**: ``Compose([CutMix(), ChannelDrop(k=4), Rotation()])`` on hard labels (mixes, rotates
  the images, draws the dropped groups, keeps the target sparse) + ``joint_cross_entropy`` on
  random logits of width ``N × 16``;
* **ours without Rotation**: the same with ``Compose([CutMix(), ChannelDrop(k=4)])``, to
  separate the cost of rotating the images from the cost of the labels;
* **torchvision**: ``v2.CutMix(num_classes=N)`` (dense ``(B, N)`` soft labels) +
  ``F.cross_entropy`` on random logits of width ``N``.

No model runs: this times only what the label path adds to a training step.

    python benchmarks/label_path.py [--rounds 50] [--batch-size 128] [--classes 100] [--size 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ipt_compose import ChannelDrop, Compose, CutMix, Rotation, joint_cross_entropy


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Time both paths and print the medians (milliseconds per call)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a busy box)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, n = args.batch_size, args.classes
    images = torch.rand(b, 3, args.size, args.size)
    labels = torch.randint(n, (b,))
    pretext = Compose([CutMix(), ChannelDrop(k=4), Rotation()], num_classes=n)
    width = pretext.space().size
    logits_ours = torch.randn(b, width)
    logits_tv = torch.randn(b, n)
    tv_cutmix = v2.CutMix(num_classes=n)

    def ours() -> float:
        batch = pretext(images, labels)
        return float(joint_cross_entropy(logits_ours, batch.target))

    no_rotation = Compose([CutMix(), ChannelDrop(k=4)], num_classes=n)
    logits_no_rotation = torch.randn(b, no_rotation.space().size)

    def ours_no_rotation() -> float:
        batch = no_rotation(images, labels)
        return float(joint_cross_entropy(logits_no_rotation, batch.target))

    def torchvision() -> float:
        _mixed, soft = tv_cutmix(images, labels)
        return float(F.cross_entropy(logits_tv, soft))

    paths = {"ours": ours, "ours_no_rotation": ours_no_rotation, "torchvision": torchvision}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(args.warmup + args.rounds):
        order = list(paths.items())
        shift = round_ % len(order)  # rotate which path runs first
        order = order[shift:] + order[:shift]
        for name, fn in order:
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if round_ >= args.warmup:
                times[name].append(elapsed * 1e3)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"label path, batch {b}, {args.size}x{args.size} images, N={n} classes "
        f"(ours: joint width {width}), median of {args.rounds} interleaved rounds, "
        f"{torch.get_num_threads()} threads"
    )
    rows = [
        ("ours: CutMix + Compose([ChannelDrop(k=4), Rotation()]) + joint_cross_entropy", "ours"),
        ("ours without Rotation: CutMix + Compose([ChannelDrop(k=4)]) + joint CE", "ours_no_rotation"),
        ("torchvision: v2.CutMix + F.cross_entropy", "torchvision"),
    ]
    for text, key in rows:
        print(f"  {text:<80} {medians[key]:7.3f} ms")
    print(f"  ratio ours / torchvision: {medians['ours'] / medians['torchvision']:.2f}")
    return medians


if __name__ == "__main__":
    main()
