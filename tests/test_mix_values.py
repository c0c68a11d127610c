"""The mixers by value, on the paths that draw their own parameters (issue 14).

CutMix's label weight must be the pixel share of the row's own image wherever the box is drawn
(``Compose``, ``mix()``, one box per batch or one per row), clipping at the border included; its box
must follow torchvision's ``v2.CutMix`` rule (half-side ``int(0.5·sqrt(1-λ)·side)``, centre uniform,
clipped), checked exactly on torchvision's own draws and in distribution against torchvision.

The pixel shares are read off *one-hot images*: image ``i`` is 1 in channel ``i`` and 0 elsewhere,
so the channel means of a mixed batch are exactly each source image's share of each output row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import Tensor
from torchvision.transforms import v2

import ipt_compose.mix as mix_module
from ipt_compose import ChannelDrop, Compose, CutMix, JointTarget, MixUp, Rotation

B = 4  # rows, classes and channels of the one-hot images
SEEDS = range(50)
# square and non-square sizes, small ones too, so that boxes often reach the border
SIZES = [(7, 7), (5, 9), (12, 4), (3, 3), (16, 16), (6, 11)]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def onehot_images(batch: int, height: int, width: int) -> Tensor:
    """Image ``i`` is 1 in channel ``i``: a mix's channel means are the exact pixel shares."""
    eye = torch.eye(batch, dtype=torch.float64)
    return eye.view(batch, batch, 1, 1).expand(batch, batch, height, width).contiguous()


def shares(mixed: Tensor) -> Tensor:
    """``(B, B)``: the share of source image ``j`` in output row ``i``."""
    return mixed.mean(dim=(2, 3))


def assert_weights_are_shares(weights: Tensor, mixed: Tensor) -> None:
    """Label weights (in the target's dtype) equal the pixel shares of ``mixed``."""
    torch.testing.assert_close(weights, shares(mixed).to(weights.dtype))


def _sizes() -> Iterator[tuple[int, int, int]]:
    for seed in SEEDS:
        height, width = SIZES[seed % len(SIZES)]
        yield seed, height, width


def _touches_border(box: Tensor, height: int, width: int) -> Tensor:
    x1, y1, x2, y2 = box.unbind(-1)
    return (x1 == 0) | (y1 == 0) | (x2 == width) | (y2 == height)


# ------------------------------------------------------------------ the weight is the pixel share
@pytest.mark.parametrize("per_sample", [False, True], ids=["one-box", "per-sample"])
def test_cutmix_weight_is_the_own_pixel_share_on_the_compose_path(per_sample: bool) -> None:
    """Compose draws the box: each row's class weights equal the pixel shares of the source images,
    for 50 draws, most of them clipped at the border.

    Catches: cutmix_weight_from_unclipped_box, cutmix_per_sample_weight_from_unclipped_box,
    cutmix_pastes_from_next_row, cutmix_mask_inclusive, mix_lambda_on_partner_*.
    """
    clipped = 0
    for seed, height, width in _sizes():
        mixer = CutMix(alpha=1.0, per_sample=per_sample)
        pretext = Compose([mixer, ChannelDrop(k=2)], num_classes=B)
        images = onehot_images(B, height, width)
        batch = pretext(images, torch.arange(B), generator=_gen(seed))
        assert_weights_are_shares(batch.target.marginal(["class"]).dense(), batch.inputs)
        box = mixer.sample_params(images, generator=_gen(seed))["box"]  # the same draw, replayed
        clipped += int(_touches_border(box, height, width).sum())
    assert clipped >= 25, f"only {clipped} boxes reached the border: clipping is barely exercised"


@pytest.mark.parametrize("per_sample", [False, True], ids=["one-box", "per-sample"])
def test_cutmix_weight_is_the_own_pixel_share_standalone(per_sample: bool) -> None:
    """``CutMix()(images, labels)`` (``Mixer.mix``): the same law outside ``Compose``."""
    for seed, height, width in _sizes():
        mixed, target = CutMix(per_sample=per_sample)(
            onehot_images(B, height, width), torch.arange(B), num_classes=B, generator=_gen(seed)
        )
        assert_weights_are_shares(target.dense(), mixed)


@pytest.mark.parametrize("per_sample", [False, True], ids=["one-box", "per-sample"])
@pytest.mark.parametrize("mixer", [MixUp, CutMix])
def test_pretext_then_mix_weighs_each_source_by_its_pixel_share(mixer: type, per_sample: bool) -> None:
    """``Compose([Rotation(), mixer])``: every joint label (class ``j``, rotation of row ``j``) gets
    exactly the share of image ``j`` in the row (rotations keep channel means).

    Catches: mixup_image_lambda_on_partner, mix_partner_rolled_the_other_way, the λ-on-partner
    mutants, and the CutMix box mutants on the joint (not only class) target.
    """
    for seed in SEEDS:
        side = (3, 5, 8, 13)[seed % 4]
        pretext = Compose([Rotation(), mixer(alpha=0.7, per_sample=per_sample)], num_classes=B)
        batch = pretext(onehot_images(B, side, side), torch.arange(B), generator=_gen(seed))
        # the rows' own rotations, before mixing: the mix keeps the order of the rows
        rotation = Rotation().sample_states(B, generator=_gen(seed))
        expected = torch.zeros(B, B, 4, dtype=torch.float64)
        share = shares(batch.inputs)
        for j in range(B):
            expected[:, j, int(rotation[j])] = share[:, j]
        dense = batch.target.dense()
        torch.testing.assert_close(dense, expected.view(B, B * 4).to(dense.dtype))


@pytest.mark.parametrize("per_sample", [False, True], ids=["one-box", "per-sample"])
def test_mixup_weight_is_the_own_pixel_share(per_sample: bool) -> None:
    """MixUp: image and label weights agree (catches mixup_image_lambda_on_partner)."""
    for seed in SEEDS:
        pretext = Compose([MixUp(alpha=0.4, per_sample=per_sample), ChannelDrop(k=2)], num_classes=B)
        batch = pretext(onehot_images(B, 2, 3), torch.arange(B), generator=_gen(seed))
        assert_weights_are_shares(batch.target.marginal(["class"]).dense(), batch.inputs)


@pytest.mark.parametrize("mixer", [v2.CutMix, v2.MixUp])
def test_torchvision_mixer_inside_compose_weighs_by_pixel_share(mixer: type) -> None:
    """The adapter recovers torchvision's pairing and λ: the target follows the pixels
    (catches torchvision_partner_from_columns)."""
    for seed, height, width in _sizes():
        torch.manual_seed(seed)
        batch = Compose([mixer(num_classes=B), ChannelDrop(k=2)], num_classes=B)(
            onehot_images(B, height, width), torch.arange(B)
        )
        assert_weights_are_shares(batch.target.marginal(["class"]).dense(), batch.inputs)


# ------------------------------------------------------------------ the box rule: torchvision's draws
def _torchvision_draws(seed: int, height: int, width: int, alpha: float) -> tuple[float, int, int, Any]:
    """torchvision's λ and box centre for one seed, and the box it makes from them."""
    tv = v2.CutMix(alpha=alpha, num_classes=2)
    image = torch.zeros(1, 1, height, width)
    torch.manual_seed(seed)
    box = tv.make_params([image])["box"]
    torch.manual_seed(seed)  # the same draws, in make_params' order: λ, x, y
    lam = float(tv._dist.sample(()))
    centre_x, centre_y = int(torch.randint(width, size=(1,))), int(torch.randint(height, size=(1,)))
    return lam, centre_x, centre_y, box


def test_one_box_equals_torchvision_on_its_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fed torchvision's λ and centre, the host path draws torchvision's exact box, clipping
    included (catches cutmix_half_side_quarter, cutmix_height_width_swapped and an unclipped box)."""
    for seed, height, width in _sizes():
        lam, centre_x, centre_y, expected = _torchvision_draws(seed, height, width, alpha=1.0)
        centres = iter([centre_x, centre_y])
        monkeypatch.setattr(mix_module, "draw_beta_on_host", lambda alpha, generator=None, lam=lam: lam)
        monkeypatch.setattr(
            mix_module, "draw_integer_on_host", lambda high, generator=None, centres=centres: next(centres)
        )
        box = CutMix().sample_params(torch.zeros(2, 1, height, width))["box"]
        assert tuple(box.tolist()) == tuple(expected), (seed, height, width)


def test_per_sample_boxes_equal_torchvision_on_its_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-row path, fed torchvision's draws row by row, draws torchvision's boxes."""
    height, width = 9, 14
    draws = [_torchvision_draws(seed, height, width, alpha=1.0) for seed in SEEDS]
    lams = torch.tensor([d[0] for d in draws])
    centres = iter([torch.tensor([d[1] for d in draws]), torch.tensor([d[2] for d in draws])])
    monkeypatch.setattr(mix_module, "draw_beta", lambda alpha, shape, **kwargs: lams.clone())
    monkeypatch.setattr(mix_module, "draw_integers", lambda high, count, **kwargs: next(centres))
    boxes = CutMix(per_sample=True).sample_params(torch.zeros(len(draws), 1, height, width))["box"]
    assert [tuple(b) for b in boxes.tolist()] == [tuple(d[3]) for d in draws]


# ------------------------------------------------------------------ the box rule: in distribution
def _ks(a: Tensor, b: Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (ties handled: ECDFs at every observed value)."""
    a, b = a.double().sort().values, b.double().sort().values
    points = torch.cat([a, b]).unique()
    cdf_a = torch.searchsorted(a, points, right=True).double() / len(a)
    cdf_b = torch.searchsorted(b, points, right=True).double() / len(b)
    return float((cdf_a - cdf_b).abs().max())


DRAWS = 2000
KS_LIMIT = 0.07  # the 0.1% critical value for 2000 against 2000 is 0.062; fixed seeds: no flakes


def _box_stats(boxes: Tensor, height: int, width: int) -> dict[str, Tensor]:
    x1, y1, x2, y2 = boxes.unbind(-1)
    return {
        "width": x2 - x1,
        "height": y2 - y1,
        "lam": 1 - ((x2 - x1) * (y2 - y1)).double() / (height * width),
    }


@pytest.mark.parametrize("alpha", [1.0, 0.4])
@pytest.mark.parametrize("per_sample", [False, True], ids=["one-box", "per-sample"])
def test_box_distribution_matches_torchvision(per_sample: bool, alpha: float) -> None:
    """Box widths, heights and λ = 1 - area/(H W) are distributed as torchvision's, on a non-square
    image (catches the half-side, height/width, unclipped-box and ignored-alpha mutants)."""
    height, width = 24, 40
    image = torch.zeros(1, 1, height, width)
    tv = v2.CutMix(alpha=alpha, num_classes=2)
    torch.manual_seed(0)
    theirs = torch.tensor([tv.make_params([image])["box"] for _ in range(DRAWS)])
    mixer = CutMix(alpha=alpha, per_sample=per_sample)
    g = _gen(1)
    if per_sample:
        ours = mixer.sample_params(torch.zeros(DRAWS, 1, height, width), generator=g)["box"]
    else:
        ours = torch.stack([mixer.sample_params(image, generator=g)["box"] for _ in range(DRAWS)])
    assert ((ours[:, 0] <= ours[:, 2]) & (ours[:, 1] <= ours[:, 3])).all()
    mine, reference = _box_stats(ours, height, width), _box_stats(theirs, height, width)
    for name in mine:
        statistic = _ks(mine[name], reference[name])
        assert statistic < KS_LIMIT, f"{name}: KS statistic {statistic:.3f} against torchvision"


def test_ks_statistic_sees_a_quarter_side() -> None:
    """The distribution test has power: boxes of half the side are far from torchvision's."""
    height, width = 24, 40
    images = torch.zeros(DRAWS, 1, height, width)
    boxes = CutMix(per_sample=True).sample_params(images, generator=_gen(0))["box"]
    x1, y1, x2, y2 = boxes.unbind(-1)
    halved = torch.stack([x1, y1, x1 + (x2 - x1) // 2, y1 + (y2 - y1) // 2], dim=-1)
    assert _ks(_box_stats(boxes, height, width)["lam"], _box_stats(halved, height, width)["lam"]) > 0.2


def test_cutmix_target_of_a_soft_and_a_lifted_target() -> None:
    """The mix() path on targets that are not hard class labels keeps the law (dense and mixture
    forms of the target)."""
    for seed, height, width in _sizes():
        soft = torch.softmax(torch.randn(B, B, generator=_gen(seed), dtype=torch.float64), dim=1)
        for target in (
            JointTarget.from_labels(soft),
            JointTarget.from_labels(torch.arange(B), B).to(torch.float64).lift(torch.arange(B) % 2, "r", 2),
        ):
            mixed, out = CutMix(per_sample=bool(seed % 2)).mix(
                onehot_images(B, height, width), target, generator=_gen(seed)
            )
            dense = target.dense().to(torch.float64)
            torch.testing.assert_close(out.dense().to(torch.float64), shares(mixed) @ dense)
