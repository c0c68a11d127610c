"""Make every figure in docs/figures/ (except mixed_batch.png, made with the mixing guide).

    python docs/make_figures.py            # writes docs/figures/*.png

The pictures use one CIFAR-10 test image (``test/horse/0003.jpg`` and, for CutMix, its partner
``test/bird/0003.jpg``) when ``../shared/data/cifar10`` is present (set ``IPT_CIFAR10`` to point
elsewhere), and otherwise a synthetic 32×32 image drawn by :func:`synthetic_image`. Every random
draw is seeded, so running the script again gives the same files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
CIFAR10 = Path(os.environ.get("IPT_CIFAR10", ROOT.parent / "shared" / "data" / "cifar10"))
IMAGE = ("horse", "0003.jpg")
PARTNER = ("bird", "0003.jpg")

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from ipt_compose import (  # noqa: E402
    ChannelDrop,
    Compose,
    CutMix,
    Cutout,
    JointTarget,
    Pretext,
    RegionDrop,
    Rotation,
)
from ipt_compose.space import LabelSpace  # noqa: E402
from ipt_compose.viz import save, state_grid, target_heatmap  # noqa: E402


def synthetic_image(seed: int = 0, size: int = 32) -> Tensor:
    """A CIFAR-like 32×32 RGB picture with no symmetry, so every rotation looks different.

    Sky gradient, green ground, a red house with a dark door left of centre and a yellow sun in
    the top-right corner, plus a little seeded noise.
    """
    g = torch.Generator().manual_seed(seed)
    rows = torch.linspace(0, 1, size).view(size, 1).expand(size, size)
    cols = torch.linspace(0, 1, size).view(1, size).expand(size, size)
    img = torch.stack([0.45 + 0.3 * rows, 0.65 + 0.2 * rows, torch.full_like(rows, 0.95)])
    ground = rows > 0.62
    img[:, ground] = torch.tensor([0.25, 0.6, 0.2]).view(3, 1)
    house = (rows > 0.38) & (rows <= 0.75) & (cols > 0.15) & (cols < 0.5)
    img[:, house] = torch.tensor([0.8, 0.2, 0.15]).view(3, 1)
    door = (rows > 0.55) & (rows <= 0.75) & (cols > 0.25) & (cols < 0.34)
    img[:, door] = torch.tensor([0.25, 0.12, 0.05]).view(3, 1)
    sun = (rows - 0.15) ** 2 + (cols - 0.82) ** 2 < 0.012
    img[:, sun] = torch.tensor([1.0, 0.85, 0.1]).view(3, 1)
    img = img + 0.03 * torch.randn(img.shape, generator=g)
    return img.clamp(0, 1)


def load_image(which: tuple[str, str], seed: int) -> Tensor:
    """One CIFAR-10 test image as ``(3, 32, 32)`` floats in [0, 1], or a synthetic stand-in."""
    path = CIFAR10 / "test" / which[0] / which[1]
    if path.is_file():
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            pixels = torch.from_numpy(np.array(im.convert("RGB"), dtype=np.float32))
        return (pixels / 255.0).permute(2, 0, 1).contiguous()
    return synthetic_image(seed)


class HalfTurn(Pretext):
    """A 2-state pretext for the worked example: state ``s`` rotates by ``s × 180°``."""

    site = "input"

    def __init__(self, *, name: str = "half_turn") -> None:
        super().__init__(name, 2, identity_state=0)

    def _apply_states(self, x: Tensor, states: Tensor) -> Tensor:
        return torch.where(states.view(-1, 1, 1, 1) == 1, torch.rot90(x, 2, (-2, -1)), x)


def pretext_grids(image: Tensor) -> None:
    from custom_pretext import ColorPermutation

    save(state_grid(Rotation(), image), FIGURES / "state_grid_rotation.png")
    save(state_grid(Cutout(grid=2, identity=True), image), FIGURES / "state_grid_cutout.png")
    save(state_grid(ChannelDrop(k=4), image), FIGURES / "state_grid_channel_drop.png")
    save(
        state_grid(ChannelDrop(k=4, identity=True), image),
        FIGURES / "state_grid_channel_drop_identity.png",
    )
    save(
        state_grid(RegionDrop(grid=2, at="layer3", identity=True), image),
        FIGURES / "state_grid_region_drop.png",
    )
    save(state_grid(ColorPermutation(), image, ncols=6), FIGURES / "state_grid_color_permutation.png")
    compose = Compose([ChannelDrop(k=4), Rotation()])
    save(state_grid(compose, image, num_classes=10, label=7), FIGURES / "state_grid_compose.png")


def class_state_grid() -> None:
    """The joint index of every (class, channel_drop, rotation) cell of a small space."""
    from matplotlib.figure import Figure

    space = LabelSpace([("class", 3), ("channel_drop", 2), ("rotation", 4)])
    n, k = space.num_classes, space.size // space.num_classes
    fig = Figure(figsize=(8.4, 2.9), layout="constrained")
    ax = fig.add_subplot()
    shade = torch.tensor([[0.87, 0.92, 0.98], [0.98, 0.90, 0.82]])  # channel_drop 0 / 1
    colours = shade[torch.arange(k) // 4].unsqueeze(0).expand(n, k, 3)
    ax.imshow(colours.numpy(), aspect="auto", interpolation="nearest")
    for j in range(space.size):
        ax.text(j % k, j // k, f"{j}", ha="center", va="center", fontsize=11)
    for x in range(1, k):
        ax.axvline(x - 0.5, color="white", linewidth=1.0 if x % 4 else 3.0)
    for y in range(1, n):
        ax.axhline(y - 0.5, color="white", linewidth=3.0)
    ax.set_yticks(range(n), [f"class {c}" for c in range(n)])
    ax.set_xticks(range(k), [f"d={s // 4}\nr={s % 4}" for s in range(k)], fontsize=8)
    ax.tick_params(length=0)
    ax.set_xlabel("pretext state s = 4·d + r   (d: channel_drop group, r: rotation ×90°)")
    ax.set_title(
        "joint index j = (class·2 + d)·4 + r  —  "
        'rearrange(z, "b (c d r) -> b c d r", d=2, r=4)',
        fontsize=10,
    )
    save(fig, FIGURES / "class_state_grid.png")


def worked_example_targets() -> dict[str, Tensor]:
    """The label-algebra page's example: 2 classes × HalfTurn, CutMix with λ = 0.75, two orders."""
    labels = torch.tensor([0, 1])
    pairing = torch.tensor([1, 0])  # row i pastes a box from row i - 1: here the other row
    states = torch.tensor([0, 1])  # row 0 upright, row 1 turned by 180°
    plain = JointTarget.from_labels(labels, num_classes=2)
    mix_then_pretext = plain.mix(pairing, 0.75).lift(states, "half_turn", 2)
    pretext_then_mix = plain.lift(states, "half_turn", 2).mix(pairing, 0.75)
    both = torch.cat([mix_then_pretext.dense(), pretext_then_mix.dense()])
    fig = target_heatmap(
        both,
        num_classes=2,
        layout="panels",
        factors=[("half_turn", 2)],
        row_labels=[
            "mix → pretext, row 0",
            "mix → pretext, row 1",
            "pretext → mix, row 0",
            "pretext → mix, row 1",
        ],
    )
    save(fig, FIGURES / "cutmix_orders_targets.png")
    return {"mix_then_pretext": mix_then_pretext.dense(), "pretext_then_mix": pretext_then_mix.dense()}


def worked_example_images(image: Tensor, partner: Tensor) -> None:
    """The two images of the worked example, built in both orders with a fixed CutMix box."""
    from matplotlib.figure import Figure

    images = torch.stack([image, partner])
    labels = torch.tensor([0, 1])
    states = torch.tensor([0, 1])
    box = {"box": torch.tensor([16, 16, 32, 32])}  # a 16×16 box: area 1/4, λ = 0.75
    turn, cutmix = HalfTurn(), CutMix()
    target = JointTarget.from_labels(labels, num_classes=2)
    mixed, _ = cutmix.apply(images, target, box)
    first = turn.apply(mixed, states)  # mix, then pretext
    second, _ = cutmix.apply(turn.apply(images, states), target, box)  # pretext, then mix
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    axes = fig.subplots(2, 3, squeeze=False)
    panels = [
        (images[0], "row 0: class 0"),
        (first[0], "mix → pretext\nrow 0, state 0"),
        (second[0], "pretext → mix\nrow 0, state 0"),
        (images[1], "row 1: class 1"),
        (first[1], "mix → pretext\nrow 1, state 1 (180°)"),
        (second[1], "pretext → mix\nrow 1, state 1 (180°)"),
    ]
    for ax, (picture, title) in zip(axes.flat, panels, strict=True):
        ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    save(fig, FIGURES / "cutmix_orders_images.png")


def main() -> None:
    torch.manual_seed(0)
    FIGURES.mkdir(parents=True, exist_ok=True)
    image = load_image(IMAGE, seed=0)
    partner = load_image(PARTNER, seed=1)
    pretext_grids(image)
    class_state_grid()
    worked_example_targets()
    worked_example_images(image, partner)
    for path in sorted(FIGURES.glob("*.png")):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
