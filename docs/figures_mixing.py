"""Make docs/figures/mixed_batch.png: one CutMix batch in both orders, with its joint targets.

    python docs/figures_mixing.py          # writes docs/figures/mixed_batch.png

Four scikit-learn digits (classes 0-3, offline) go through ``CutMix`` and ``Rotation`` with one
box and one set of rotation states, in both orders: ``[CutMix(), Rotation()]`` (mix, then
pretext) and ``[Rotation(), CutMix()]`` (pretext, then mix). Under each image is its joint target
as a class × rotation grid. Every draw is seeded, so the file comes out the same each time.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from ipt_compose import CutMix, JointTarget, Rotation

OUT = Path(__file__).resolve().parent / "figures" / "mixed_batch.png"
NUM_CLASSES = 4


def digits_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The first digit of each class 0-3, upscaled to 32×32, as ``(4, 1, 32, 32)`` in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    labels = torch.arange(NUM_CLASSES)
    rows = [int((torch.as_tensor(data.target) == c).nonzero()[0]) for c in labels]
    x = torch.as_tensor(data.images[rows], dtype=torch.float32).unsqueeze(1) / 16.0
    return F.interpolate(x, size=(32, 32), mode="nearest"), labels


def main() -> Path:
    """Draw the figure and write it to ``docs/figures/mixed_batch.png``."""
    images, labels = digits_batch()
    rotation = Rotation()
    states = torch.tensor([1, 0, 2, 3])  # one rotation per row (row 1 and its partner differ)
    box = {"box": torch.tensor([6, 4, 26, 20])}  # x1, y1, x2, y2: λ = 1 - 320/1024
    target = JointTarget.from_labels(labels, NUM_CLASSES)

    mixed, mixed_target = CutMix().apply(images, target, box)
    first = rotation.apply(mixed, states), mixed_target.lift(states, "rotation", 4)
    lifted = target.lift(states, "rotation", 4)
    second = CutMix().apply(rotation.apply(images, states), lifted, box)

    orders = [
        ("[CutMix(), Rotation()]: mix, then pretext", first),
        ("[Rotation(), CutMix()]: pretext, then mix", second),
    ]
    lam = 1 - 320 / 1024
    fig = plt.figure(figsize=(8.4, 9.6), layout="constrained")
    fig.suptitle(f"CutMix (row i gets the box of row i-1, λ = {lam:.3f}) and Rotation", fontsize=12)
    for subfig, (title, (inputs, joint)) in zip(fig.subfigures(2, 1), orders, strict=True):
        subfig.suptitle(title, fontsize=11, fontweight="bold")
        axes = subfig.subplots(2, 4)
        dense = joint.dense().view(-1, NUM_CLASSES, 4)  # rearrange "b (c s) -> b c s"
        for i in range(4):
            ax = axes[0, i]
            ax.imshow(inputs[i, 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"row {i}: y={int(labels[i])}, s={int(states[i])}", fontsize=9)
            ax = axes[1, i]
            ax.imshow(dense[i], cmap="Blues", vmin=0, vmax=1)
            for c in range(NUM_CLASSES):
                for s in range(4):
                    value = float(dense[i, c, s])
                    if value > 0:
                        color = "white" if value > 0.5 else "black"
                        ax.text(s, c, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
            ax.set_xticks(range(4), [f"{90 * s}°" for s in range(4)], fontsize=7)
            ax.set_yticks(range(NUM_CLASSES), [str(c) for c in range(NUM_CLASSES)], fontsize=7)
            ax.set_xlabel("rotation", fontsize=8)
            if i == 0:
                ax.set_ylabel("class", fontsize=8)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=100)
    plt.close(fig)
    return OUT


if __name__ == "__main__":
    print(main())
