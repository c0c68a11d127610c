"""Reliability: bad input, fuzzing, determinism, pickling, DataLoader workers, compile, precision,
memory format and the absence of host syncs in a training step.

Every public entry point is exercised with the bad inputs that fit it; each must raise ``ValueError``
or ``TypeError`` whose message names the offending argument. A hypothesis fuzz over shapes and
dtypes then checks that nothing else (a bare ``RuntimeError``/``IndexError`` from deep inside torch)
escapes.
"""

from __future__ import annotations

import copy
import io
import multiprocessing
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset, default_collate, get_worker_info
from torchvision.transforms import v2

import ipt_compose
from ipt_compose import (
    ChannelDrop,
    Compose,
    CutMix,
    Cutout,
    JointModel,
    JointTarget,
    LabelSpace,
    MixUp,
    RegionDrop,
    Rotation,
    joint_cross_entropy,
    self_distillation_loss,
)

N = 10  # classes


def cnn(channels: int = 8, classes: int = N) -> nn.Sequential:
    """A tiny CNN whose classifier sees pooled features ``(B, channels)``."""
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, classes),
    )


def images(b: int = 4, h: int = 8, w: int = 8, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(b * 100 + h + w)).to(dtype)


def labels(b: int = 4) -> Tensor:
    return torch.arange(b) % N


def model(pretext: list[Any] | None = None, **kwargs: Any) -> JointModel:
    pretexts = pretext if pretext is not None else [ChannelDrop(k=4), Rotation()]
    return JointModel(cnn(), Compose(pretexts, num_classes=N), num_classes=N, **kwargs)


def target(b: int = 4) -> JointTarget:
    """A target over ``class × channel_drop(4) × rotation(4)`` (160 joint labels)."""
    return Compose([ChannelDrop(k=4), Rotation()], num_classes=N)(images(b), labels(b)).target


def states(*rows: list[int]) -> Tensor:
    return torch.tensor(rows)


def soft(b: int = 4, n: int = N) -> Tensor:
    return torch.full((b, n), 1.0 / n)


class Unpooled(nn.Module):
    """A backbone whose classifier sees (B, C, L) features, not pooled (B, C) ones."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(64, N)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).flatten(2))


# ------------------------------------------------------------------------------------ bad inputs
# (entry point, bad input) -> (exception type, regex naming the argument). Each callable builds
# its objects fresh so that one case cannot leak state into another.
BAD: list[Any] = [
    # --- pretext constructors
    pytest.param(lambda: ChannelDrop(k=0), ValueError, r"k must be >= 1, got 0", id="ChannelDrop-k-0"),
    pytest.param(lambda: ChannelDrop(k=2.5), TypeError, r"k must be an int", id="ChannelDrop-k-float"),
    pytest.param(
        lambda: ChannelDrop(groups="odd"), ValueError, r"groups must be one of", id="ChannelDrop-groups"
    ),
    pytest.param(
        lambda: ChannelDrop(at=3), TypeError, r"at must be a submodule name", id="ChannelDrop-at-int"
    ),
    pytest.param(lambda: Cutout(grid=0), ValueError, r"grid must be >= 1", id="Cutout-grid-0"),
    pytest.param(lambda: Cutout(fill="black"), TypeError, r"fill must be a number", id="Cutout-fill-str"),
    pytest.param(
        lambda: Rotation(name=""), ValueError, r"name must be a non-empty str", id="Rotation-name-empty"
    ),
    pytest.param(
        lambda: Rotation(name="class"),
        ValueError,
        r"name must be .* other than 'class'",
        id="Rotation-name-class",
    ),
    # --- pretext.apply
    pytest.param(
        lambda: Rotation().apply(images(2, 8, 6), states(0, 0)),
        ValueError,
        r"square images.*H=8, W=6",
        id="Rotation-non-square",
    ),
    pytest.param(
        lambda: Rotation().apply(images(2, 8, 6), states(0, 0)[:0].new_zeros(2)),
        ValueError,
        r"square images",
        id="Rotation-non-square-identity-states",
    ),
    pytest.param(
        lambda: Rotation().apply(torch.rand(2, 8, 8), states(0, 0)),
        ValueError,
        r"images of shape \(B, C, H, W\)",
        id="Rotation-rank-3",
    ),
    pytest.param(
        lambda: Rotation().apply(images(2), torch.zeros(2)),
        TypeError,
        r"states must be an integer tensor",
        id="Rotation-states-float",
    ),
    pytest.param(
        lambda: Rotation().apply(images(2), torch.zeros(2, dtype=torch.bool)),
        TypeError,
        r"states must be an integer tensor",
        id="Rotation-states-bool",
    ),
    pytest.param(
        lambda: Rotation().apply(images(2), states(0, 4)),
        ValueError,
        r"states \(rotation state\) must lie in \[0, 4\)",
        id="Rotation-states-out-of-range",
    ),
    pytest.param(
        lambda: Rotation().apply(images(2), states(0, 1, 2)),
        ValueError,
        r"states must have shape \(2,\)",
        id="Rotation-states-batch",
    ),
    pytest.param(
        lambda: Rotation().apply([[0.0]], states(0)),
        TypeError,
        r"x must be a torch.Tensor",
        id="Rotation-x-list",
    ),
    pytest.param(
        lambda: ChannelDrop(k=4).apply(torch.rand(2, 2), states(0, 1)),
        ValueError,
        r"ChannelDrop\(k=4\) needs at least 4 channels.*2 channels",
        id="ChannelDrop-too-few-channels",
    ),
    pytest.param(
        lambda: ChannelDrop(k=4).apply(torch.rand(2), states(0, 1)),
        ValueError,
        r"x must have shape \(B, C, ...\)",
        id="ChannelDrop-rank-1",
    ),
    pytest.param(
        lambda: Cutout(grid=4).apply(images(2, 2, 2), states(0, 1)),
        ValueError,
        r"Cutout\(grid=4\) needs .*at least 4×4.*H=2, W=2",
        id="Cutout-too-small",
    ),
    pytest.param(lambda: RegionDrop(grid=0), ValueError, r"grid must be >= 1", id="RegionDrop-grid-0"),
    pytest.param(
        lambda: RegionDrop(at=""), TypeError, r"at must be a submodule name", id="RegionDrop-at-empty"
    ),
    pytest.param(
        lambda: RegionDrop().apply(torch.rand(2, 8), states(0, 1)),
        ValueError,
        r"RegionDrop needs a spatial feature map \(B, C, H, W\), got shape \(2, 8\)",
        id="RegionDrop-rank-2",
    ),
    pytest.param(
        lambda: RegionDrop(grid=4).apply(torch.rand(2, 3, 2, 2), states(0, 1)),
        ValueError,
        r"RegionDrop\(grid=4\) needs .*at least 4×4.*H=2, W=2",
        id="RegionDrop-too-small",
    ),
    # --- Compose constructor
    pytest.param(lambda: Compose(Rotation()), TypeError, r"pretexts must be a list", id="Compose-not-a-list"),
    pytest.param(
        lambda: Compose([]), ValueError, r"pretexts must hold at least one pretext", id="Compose-empty"
    ),
    pytest.param(
        lambda: Compose([MixUp()]),
        ValueError,
        r"pretexts must hold at least one pretext",
        id="Compose-only-mixer",
    ),
    pytest.param(
        lambda: Compose([Rotation(), Rotation()]),
        ValueError,
        r"share the name 'rotation'",
        id="Compose-duplicate-name",
    ),
    pytest.param(
        lambda: Compose([nn.ReLU()]), TypeError, r"pretexts\[0\] must be a Pretext", id="Compose-foreign-item"
    ),
    pytest.param(lambda: Compose([Rotation()], mode="every"), ValueError, r"mode must be", id="Compose-mode"),
    pytest.param(
        lambda: Compose([Rotation()], num_classes=0),
        ValueError,
        r"num_classes must be >= 1",
        id="Compose-num_classes-0",
    ),
    pytest.param(
        lambda: Compose([ChannelDrop(), MixUp()]),
        ValueError,
        r"mixer \(MixUp\) cannot follow the feature-site pretext 'channel_drop'",
        id="Compose-mixer-after-feature",
    ),
    pytest.param(
        lambda: Compose([ChannelDrop(), v2.CutMix(num_classes=N)]),
        ValueError,
        r"cannot follow the feature-site pretext 'channel_drop'",
        id="Compose-tv-mixer-after-feature",
    ),
    pytest.param(
        lambda: Compose([MixUp(), Rotation()], mode="all"),
        ValueError,
        r"mixers are refused in mode='all'",
        id="Compose-mixer-mode-all",
    ),
    pytest.param(
        lambda: Compose([Rotation()]).space(), ValueError, r"num_classes is unknown", id="Compose-space-no-N"
    ),
    pytest.param(
        lambda: Compose([Rotation()], num_classes=N).space(5),
        ValueError,
        r"num_classes=5 disagrees",
        id="Compose-space-N-disagrees",
    ),
    # --- Compose call
    pytest.param(
        lambda: Compose([Rotation()])(images(4)[0], labels(3)),
        ValueError,
        r"images must have shape \(B, C, H, W\)",
        id="Compose-images-rank-3",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4)[None], labels(1)),
        ValueError,
        r"images must have shape \(B, C, H, W\)",
        id="Compose-images-rank-5",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4).numpy(), labels(4)),
        TypeError,
        r"images must be a torch.Tensor",
        id="Compose-images-numpy",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), [0, 1, 2, 3]),
        TypeError,
        r"labels must be a torch.Tensor",
        id="Compose-labels-list",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), labels(3)),
        ValueError,
        r"images and labels must have the same batch size, got 4 images",
        id="Compose-batch-mismatch",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), torch.tensor(1)),
        ValueError,
        r"images and labels must have the same batch size",
        id="Compose-labels-rank-0",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), labels(4).view(4, 1)),
        ValueError,
        r"labels must be class indices of shape \(B,\)",
        id="Compose-labels-int-rank-2",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), soft().view(4, 2, 5)),
        ValueError,
        r"labels must have shape \(B, N\)",
        id="Compose-labels-soft-rank-3",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), labels(4).bool()),
        TypeError,
        r"labels must be an integer tensor",
        id="Compose-labels-bool",
    ),
    pytest.param(
        lambda: Compose([Rotation()], num_classes=N)(images(4), labels(4) + N),
        ValueError,
        r"labels \(class index\) must lie in \[0, 10\)",
        id="Compose-labels-out-of-range",
    ),
    pytest.param(
        lambda: Compose([Rotation()], num_classes=N)(images(4), labels(4) - 1),
        ValueError,
        r"labels \(class index\) must lie in \[0, 10\)",
        id="Compose-labels-negative",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), labels(4) - 1),
        ValueError,
        r"labels must be non-negative",
        id="Compose-labels-negative-no-N",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), labels(4)).target.dense(),
        ValueError,
        r"pass num_classes",
        id="Compose-dense-no-N",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), soft() * 2),
        ValueError,
        r"labels rows must sum to 1",
        id="Compose-soft-not-summing-to-1",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(4), soft().index_fill(1, torch.tensor([0]), float("nan"))),
        ValueError,
        r"labels must not contain NaN",
        id="Compose-soft-nan",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(2), torch.tensor([[1.2, -0.2], [0.5, 0.5]])),
        ValueError,
        r"labels must be non-negative",
        id="Compose-soft-negative",
    ),
    pytest.param(
        lambda: Compose([Rotation()], num_classes=N)(images(4), soft(4, 5)),
        ValueError,
        r"probabilities over 5 classes but num_classes is 10",
        id="Compose-soft-width",
    ),
    pytest.param(
        lambda: Compose([Rotation()])(images(2, 8, 6), labels(2)),
        ValueError,
        r"square images.*H=8, W=6",
        id="Compose-Rotation-non-square",
    ),
    pytest.param(
        lambda: Compose([MixUp(), Rotation()])(images(4).long(), labels(4)),
        TypeError,
        r"images must be floating point to be mixed",
        id="Compose-mixer-int-images",
    ),
    # --- JointModel constructor
    pytest.param(
        lambda: JointModel(lambda x: x, [ChannelDrop()], num_classes=N),
        TypeError,
        r"backbone must be an nn.Module",
        id="JointModel-backbone",
    ),
    pytest.param(
        lambda: JointModel(cnn(), [ChannelDrop()], num_classes=0),
        ValueError,
        r"num_classes must be >= 1",
        id="JointModel-num_classes-0",
    ),
    pytest.param(
        lambda: JointModel(cnn(), Compose([ChannelDrop()], num_classes=5), num_classes=N),
        ValueError,
        r"num_classes=10 disagrees with the pretext's Compose\(num_classes=5\)",
        id="JointModel-N-vs-Compose",
    ),
    pytest.param(
        lambda: JointModel(cnn(classes=5), [ChannelDrop()], num_classes=N),
        ValueError,
        r"has 5 outputs but num_classes=10",
        id="JointModel-N-vs-head",
    ),
    pytest.param(
        lambda: JointModel(cnn(), [ChannelDrop()], num_classes=N, head="fc"),
        ValueError,
        r"head='fc' is not a submodule",
        id="JointModel-unknown-head",
    ),
    pytest.param(
        lambda: JointModel(cnn(), [ChannelDrop()], num_classes=N, head="0"),
        TypeError,
        r"head '0' must be an nn.Linear",
        id="JointModel-head-not-linear",
    ),
    pytest.param(
        lambda: JointModel(nn.Sequential(nn.Conv2d(3, 4, 1)), [ChannelDrop()], num_classes=N),
        ValueError,
        r"backbone has no nn.Linear classifier",
        id="JointModel-no-linear",
    ),
    pytest.param(
        lambda: JointModel(cnn(), [ChannelDrop(at="layer3")], num_classes=N),
        ValueError,
        r"at='layer3' is not a submodule",
        id="JointModel-unknown-at",
    ),
    # --- JointModel forward
    pytest.param(
        lambda: model()(images(4), torch.zeros(4, 3, dtype=torch.long)),
        ValueError,
        r"states must have shape \(B', 2\)",
        id="JointModel-states-columns",
    ),
    pytest.param(
        lambda: model()(images(4), torch.zeros(4, dtype=torch.long)),
        ValueError,
        r"states must have shape \(B', 2\)",
        id="JointModel-states-rank-1",
    ),
    pytest.param(
        lambda: model()(images(4), torch.zeros(3, 2, dtype=torch.long)),
        ValueError,
        r"states must have 4 rows",
        id="JointModel-states-rows",
    ),
    pytest.param(
        lambda: model()(images(4), torch.full((4, 2), 4)),
        ValueError,
        r"states \(per pretext column\) must lie in",
        id="JointModel-states-out-of-range",
    ),
    pytest.param(
        lambda: model()(images(4), torch.full((4, 2), -1)),
        ValueError,
        r"states \(per pretext column\) must lie in",
        id="JointModel-states-negative",
    ),
    pytest.param(
        lambda: model()(images(4), torch.zeros(4, 2)),
        TypeError,
        r"states must be an integer tensor",
        id="JointModel-states-float",
    ),
    pytest.param(
        lambda: model()(images(4).tolist(), torch.zeros(4, 2, dtype=torch.long)),
        TypeError,
        r"x must be a torch.Tensor",
        id="JointModel-x-list",
    ),
    pytest.param(
        lambda: JointModel(cnn(channels=2), [ChannelDrop(k=4)], num_classes=N)(
            images(4), torch.zeros(4, 1, dtype=torch.long)
        ),
        ValueError,
        r"ChannelDrop\(k=4\) needs at least 4 channels.*2 channels",
        id="JointModel-too-few-channels",
    ),
    pytest.param(
        lambda: JointModel(Unpooled(), [ChannelDrop(k=2)], num_classes=N)(
            images(4), torch.zeros(4, 1, dtype=torch.long)
        ),
        ValueError,
        r"at=None\) needs pooled features",
        id="JointModel-unpooled-head-input",
    ),
    pytest.param(
        lambda: JointModel(cnn(), [RegionDrop()], num_classes=N)(
            images(4), torch.zeros(4, 1, dtype=torch.long)
        ),
        ValueError,
        r"RegionDrop needs a spatial feature map.*at='\.\.\.'",
        id="JointModel-RegionDrop-at-head",
    ),
    pytest.param(
        lambda: JointModel(cnn(), [RegionDrop(at="0")], num_classes=N, distill=True),
        ValueError,
        r"distill=True needs every feature pretext to be a ChannelDrop",
        id="JointModel-distill-RegionDrop",
    ),
    pytest.param(
        lambda: model()(images(4), torch.zeros(4, 2, dtype=torch.long), return_plain=True),
        ValueError,
        r"return_plain=True needs JointModel\(\.\.\., distill=True\)",
        id="JointModel-return_plain-without-distill",
    ),
    pytest.param(
        lambda: model().predict(images(4), aggregate="distilled"),
        ValueError,
        r"aggregate='distilled' needs JointModel\(\.\.\., distill=True\)",
        id="predict-distilled-without-distill",
    ),
    # --- predict
    pytest.param(
        lambda: model().predict(images(4), aggregate="mean"),
        ValueError,
        r"aggregate must be",
        id="predict-aggregate",
    ),
    pytest.param(
        lambda: model([Cutout(), ChannelDrop()]).predict(images(4)),
        ValueError,
        r"'cutout' \(Cutout\) has none; use aggregate='all' or .*identity=True",
        id="predict-no-identity",
    ),
    pytest.param(
        lambda: model().predict(images(4)[0]),
        ValueError,
        r"images of shape \(B, C, H, W\)",
        id="predict-rank-3",
    ),
    pytest.param(
        lambda: model().predict(images(2, 8, 6), aggregate="all"),
        ValueError,
        r"square images",
        id="predict-non-square",
    ),
    pytest.param(
        lambda: model().predict(torch.tensor(1.0)),
        TypeError,
        r"x must be a batch tensor",
        id="predict-rank-0",
    ),
    pytest.param(lambda: model().predict([1.0]), TypeError, r"x must be a batch tensor", id="predict-list"),
    # --- mixers
    pytest.param(lambda: MixUp(alpha=-1.0), ValueError, r"alpha must be positive", id="MixUp-alpha-negative"),
    pytest.param(lambda: CutMix(alpha="1"), TypeError, r"alpha must be a number", id="CutMix-alpha-str"),
    pytest.param(
        lambda: MixUp()(images(4)[0], labels(3), num_classes=N),
        ValueError,
        r"images must have shape \(B, C, H, W\)",
        id="MixUp-rank-3",
    ),
    pytest.param(
        lambda: MixUp()(images(4).to(torch.uint8), labels(4), num_classes=N),
        TypeError,
        r"images must be floating point",
        id="MixUp-uint8-images",
    ),
    pytest.param(
        lambda: MixUp()(images(4), labels(3), num_classes=N),
        ValueError,
        r"batch size",
        id="MixUp-batch-mismatch",
    ),
    pytest.param(
        lambda: MixUp()(images(4), labels(4) + N, num_classes=N),
        ValueError,
        r"labels \(class index\) must lie in \[0, 10\)",
        id="MixUp-labels-out-of-range",
    ),
    pytest.param(
        lambda: CutMix()(images(4), soft() * 0.5),
        ValueError,
        r"labels rows must sum to 1",
        id="CutMix-soft-not-summing-to-1",
    ),
    pytest.param(
        lambda: CutMix()(images(4), torch.full((4, N), float("nan"))),
        ValueError,
        r"labels must not contain NaN",
        id="CutMix-soft-nan",
    ),
    pytest.param(
        lambda: CutMix()(images(4), labels(4).float(), num_classes=N),
        TypeError,
        r"labels of shape \(B,\) must be integer class indices, got dtype torch.float32",
        id="CutMix-float-class-indices",
    ),
    pytest.param(
        lambda: CutMix()(torch.rand(4, 3, 0, 0), labels(4), num_classes=N),
        ValueError,
        r"images must have at least one pixel",
        id="CutMix-no-pixels",
    ),
    # --- joint_cross_entropy
    pytest.param(
        lambda: joint_cross_entropy(torch.zeros(4, 160, dtype=torch.long), target()),
        TypeError,
        r"logits must be a floating-point tensor",
        id="loss-logits-int",
    ),
    pytest.param(
        lambda: joint_cross_entropy(torch.rand(4, 160), labels(4)),
        TypeError,
        r"target must be a JointTarget",
        id="loss-target-tensor",
    ),
    pytest.param(
        lambda: joint_cross_entropy(torch.rand(4, N), target()),
        ValueError,
        r"logits must have 160 columns .*got 10",
        id="loss-width",
    ),
    pytest.param(
        lambda: joint_cross_entropy(torch.rand(3, 160), target()),
        ValueError,
        r"logits must have shape \(4, joint size\)",
        id="loss-rows",
    ),
    pytest.param(
        lambda: joint_cross_entropy(torch.rand(160), target()),
        ValueError,
        r"logits must have shape \(4, joint size\)",
        id="loss-rank-1",
    ),
    pytest.param(
        lambda: joint_cross_entropy(torch.rand(4, 160), target(), label_smoothing=1.5),
        ValueError,
        r"label_smoothing must lie in \[0, 1\]",
        id="loss-smoothing",
    ),
    pytest.param(
        lambda: joint_cross_entropy(torch.rand(4, 160), target(), reduction="avg"),
        ValueError,
        r"reduction must be",
        id="loss-reduction",
    ),
    # --- self_distillation_loss
    pytest.param(
        lambda: self_distillation_loss(torch.zeros(4, N), torch.zeros(4, N), labels(4)),
        TypeError,
        r"target must be a JointTarget",
        id="sd-loss-target-tensor",
    ),
    pytest.param(
        lambda: self_distillation_loss(torch.zeros(3, N), torch.zeros(4, N), target()),
        ValueError,
        r"plain and teacher must have the same shape",
        id="sd-loss-shapes",
    ),
    pytest.param(
        lambda: self_distillation_loss(torch.zeros(4, N, dtype=torch.long), torch.zeros(4, N), target()),
        TypeError,
        r"plain must be a floating-point tensor",
        id="sd-loss-int",
    ),
    pytest.param(
        lambda: self_distillation_loss(torch.zeros(4, N), torch.zeros(4, N), target(), temperature=0.0),
        ValueError,
        r"temperature must be positive",
        id="sd-loss-temperature",
    ),
    pytest.param(
        lambda: self_distillation_loss(torch.zeros(4, 3), torch.zeros(4, 3), target()),
        ValueError,
        r"plain and teacher must have 10 columns",
        id="sd-loss-width",
    ),
    # --- LabelSpace
    pytest.param(lambda: LabelSpace([]), ValueError, r"factors must hold at least", id="LabelSpace-empty"),
    pytest.param(
        lambda: LabelSpace([("rotation", 4)]),
        ValueError,
        r"first factor must be named 'class'",
        id="LabelSpace-first-factor",
    ),
    pytest.param(
        lambda: LabelSpace([("class", 2), ("r", 4), ("r", 4)]),
        ValueError,
        r"factor names must be unique",
        id="LabelSpace-duplicate",
    ),
    pytest.param(
        lambda: LabelSpace([("class", 0)]),
        ValueError,
        r"size of factor 'class' must be >= 1",
        id="LabelSpace-size-0",
    ),
    pytest.param(
        lambda: LabelSpace([("class", 2.0)]),
        TypeError,
        r"size of factor 'class' must be an int",
        id="LabelSpace-size-float",
    ),
    pytest.param(
        lambda: LabelSpace(["class"]),
        TypeError,
        r"factors\[0\] must be a \(name, size\) pair",
        id="LabelSpace-pair",
    ),
    pytest.param(
        lambda: LabelSpace([("class", 4)]).encode(torch.zeros(2, 1)),
        TypeError,
        r"indices must be an integer tensor",
        id="LabelSpace-encode-float",
    ),
    pytest.param(
        lambda: LabelSpace([("class", 4)]).encode(torch.zeros(2, 2, dtype=torch.long)),
        ValueError,
        r"indices must have shape \(\.\.\., 1\)",
        id="LabelSpace-encode-width",
    ),
    pytest.param(
        lambda: LabelSpace([("class", 4)]).encode(torch.tensor([[4]])),
        ValueError,
        r"indices \(per factor\) must lie in",
        id="LabelSpace-encode-out-of-range",
    ),
    pytest.param(
        lambda: LabelSpace([("class", 4)]).decode(torch.tensor([4])),
        ValueError,
        r"joint \(joint index\) must lie in \[0, 4\)",
        id="LabelSpace-decode-out-of-range",
    ),
    pytest.param(
        lambda: LabelSpace([("class", 4)]).marginal(torch.rand(2, 3), ["class"]),
        ValueError,
        r"values must have last dimension 4",
        id="LabelSpace-marginal-width",
    ),
    pytest.param(
        lambda: LabelSpace([("class", 4)]).marginal(torch.rand(2, 4), ["rotation"]),
        ValueError,
        r"'rotation'",
        id="LabelSpace-marginal-name",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD)
def test_bad_input_raises_naming_the_argument(call: Callable[[], object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------------------------ fuzz
class Permissive(nn.Module):
    """A backbone that accepts any batch (any rank >= 1, dtype, size), so that whatever escapes a
    fuzzed ``JointModel``/``predict`` call comes from the library, not from a conv layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        x = x.unsqueeze(1) if x.ndim == 1 else x.flatten(1)
        return self.fc(x.sum(dim=1, keepdim=True).expand(-1, 4))


FUZZ_DTYPES = (
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.uint8,
    torch.bool,
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int, *, normalise: bool, nan: bool) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if not dtype.is_floating_point:
        return (
            torch.randint(-1, 5, shape, generator=g).to(dtype)
            if dtype != torch.uint8
            else torch.randint(0, 5, shape, generator=g, dtype=torch.uint8)
        )
    t = torch.rand(shape, generator=g)
    if normalise and t.ndim >= 1 and t.numel():
        t = t / t.sum(dim=-1, keepdim=True).clamp_min(1e-6)
    if nan and t.numel():
        t.view(-1)[0] = float("nan")
    return t.to(dtype)


@st.composite
def fuzz_case(draw: st.DrawFn) -> dict[str, Any]:
    batch = draw(st.integers(0, 4))
    img_rank = draw(st.integers(1, 5))
    img_shape = (batch, *(draw(st.sampled_from([0, 1, 3, 4, 5])) for _ in range(img_rank - 1)))
    if img_rank == 4 and draw(st.booleans()):  # often a plausible (B, C, H, H) image
        side = draw(st.sampled_from([1, 4, 5]))
        img_shape = (batch, draw(st.sampled_from([1, 3, 4])), side, side)
    label_rank = draw(st.integers(0, 3))
    label_batch = batch if draw(st.integers(0, 3)) else draw(st.integers(0, 5))  # batch mismatch 1 in 4
    label_shape = (
        ()
        if label_rank == 0
        else (label_batch, *(draw(st.sampled_from([1, 2, 4])) for _ in range(label_rank - 1)))
    )
    return {
        "images": _tensor(
            img_shape,
            draw(st.sampled_from(FUZZ_DTYPES)),
            draw(st.integers(0, 99)),
            normalise=False,
            nan=False,
        ),
        "labels": _tensor(
            label_shape,
            draw(st.sampled_from(FUZZ_DTYPES)),
            draw(st.integers(0, 99)),
            normalise=draw(st.integers(0, 3)) > 0,
            nan=draw(st.integers(0, 9)) == 0,
        ),
    }


ENTRY_POINTS: dict[str, Callable[[Tensor, Tensor], object]] = {
    "Compose(Rotation)": lambda x, y: Compose([Rotation()], num_classes=4)(x, y),
    "Compose(Cutout, ChannelDrop), no N": lambda x, y: Compose([Cutout(), ChannelDrop(k=2)])(x, y),
    "Compose(MixUp, Rotation, CutMix)": lambda x, y: Compose(
        [MixUp(), Rotation(), CutMix(per_sample=True)], num_classes=4
    )(x, y),
    "Compose(v2.CutMix, Rotation)": lambda x, y: Compose(
        [v2.CutMix(num_classes=4), Rotation()], num_classes=4
    )(x, y),
    "Compose(mode=all)": lambda x, y: Compose([Rotation(), ChannelDrop(k=2)], num_classes=4, mode="all")(
        x, y
    ),
    "MixUp": lambda x, y: MixUp(per_sample=True)(x, y, num_classes=4),
    "CutMix": lambda x, y: CutMix()(x, y, num_classes=4),
    "Rotation.apply": lambda x, y: Rotation().apply(x, y),
    "Cutout.apply": lambda x, y: Cutout(identity=True).apply(x, y),
    "ChannelDrop.apply": lambda x, y: ChannelDrop(k=2, rescale=True).apply(x, y),
    "RegionDrop.apply": lambda x, y: RegionDrop(grid=2, identity=True).apply(x, y),
    "JointTarget.from_labels": lambda x, y: JointTarget.from_labels(y, 4).dense(),
    "joint_cross_entropy": lambda x, y: joint_cross_entropy(x, JointTarget.from_labels(y, 4)),
    "JointModel(states)": lambda x, y: _FUZZ_MODEL(torch.zeros(4, 2), y),
    "JointModel(x)": lambda x, y: _FUZZ_MODEL(
        x, torch.zeros(x.shape[0] if x.ndim else 1, 1, dtype=torch.long)
    ),
    "predict(features)": lambda x, y: _FUZZ_MODEL.predict(x),
    "predict(all, Rotation)": lambda x, y: _FUZZ_ROT_MODEL.predict(x, aggregate="all"),
    "predict(marginal, Rotation)": lambda x, y: _FUZZ_ROT_MODEL.predict(x, aggregate="marginal"),
    "LabelSpace.encode": lambda x, y: LabelSpace([("class", 4), ("r", 4)]).encode(y),
    "LabelSpace.decode": lambda x, y: LabelSpace([("class", 4), ("r", 4)]).decode(y),
    "LabelSpace.marginal": lambda x, y: LabelSpace([("class", 2), ("r", 2)]).marginal(x, ["class"]),
}
_FUZZ_MODEL = JointModel(Permissive(), [ChannelDrop(k=2)], num_classes=3)
_FUZZ_ROT_MODEL = JointModel(Permissive(), [Rotation(), ChannelDrop(k=2)], num_classes=3)


@FUZZ
@given(case=fuzz_case(), entry=st.sampled_from(sorted(ENTRY_POINTS)))
def test_fuzz_only_value_or_type_errors_escape(case: dict[str, Any], entry: str) -> None:
    """Whatever the shapes and dtypes, an entry point succeeds or raises ValueError/TypeError."""
    x, y = case["images"], case["labels"]
    try:
        out = ENTRY_POINTS[entry](x, y)
    except (ValueError, TypeError):
        return
    if isinstance(out, ipt_compose.PretextBatch):  # success: the rows line up
        assert out.states.shape[0] == out.target.batch_size
        assert out.inputs.dtype == x.dtype
        if out.target.num_classes is not None:
            dense = out.target.dense()
            torch.testing.assert_close(dense.sum(dim=1), torch.ones(dense.shape[0]), atol=1e-3, rtol=0)


def test_uint8_states_index_as_states_not_as_a_mask() -> None:
    """A uint8 index tensor indexes as a boolean mask in torch; states of any integer dtype are states."""
    x = images(4)
    for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32):
        s = torch.tensor([0, 1, 2, 3], dtype=dtype)
        torch.testing.assert_close(Rotation().apply(x, s), Rotation().apply(x, s.long()))
        features = torch.rand(4, 8)
        drop = ChannelDrop(k=4, rescale=True)
        torch.testing.assert_close(drop.apply(features, s), drop.apply(features, s.long()))


def test_empty_batches_flow_through() -> None:
    x, y = images(4)[:0], labels(4)[:0]
    for pretext in (
        Compose([Rotation(), ChannelDrop()], num_classes=N),
        Compose([Rotation()], num_classes=N, mode="all"),
        Compose([v2.MixUp(num_classes=N), Cutout()], num_classes=N),
    ):
        batch = pretext(x, y)
        assert batch.inputs.shape[0] == 0 and batch.target.dense().shape[0] == 0
    m = model()
    for aggregate in ("features", "all", "none", "marginal"):
        assert m.predict(x, aggregate=aggregate).shape == (0, N)


# ------------------------------------------------------------------------------------ determinism
def _pretext_all_kinds() -> Compose:
    return Compose(
        [
            MixUp(),
            Rotation(),
            CutMix(per_sample=True),
            Cutout(identity=True),
            ChannelDrop(k=4, groups="random"),
        ],
        num_classes=N,
    )


def _same_batch(a: ipt_compose.PretextBatch, b: ipt_compose.PretextBatch) -> None:
    torch.testing.assert_close(a.inputs, b.inputs, rtol=0, atol=0)
    torch.testing.assert_close(a.states, b.states, rtol=0, atol=0)
    torch.testing.assert_close(a.target.dense(), b.target.dense(), rtol=0, atol=0)


def test_same_generator_seed_same_states_images_targets() -> None:
    pretext = _pretext_all_kinds()
    x, y = images(8), labels(8)
    first = pretext(x, y, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global RNG must not matter when a generator is given
    second = pretext(x, y, generator=torch.Generator().manual_seed(7))
    _same_batch(first, second)
    other = pretext(x, y, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(first.states, other.states)


def test_global_seed_reproduces_without_a_generator() -> None:
    pretext = Compose([v2.CutMix(num_classes=N), *_pretext_all_kinds().items], num_classes=N)
    x, y = images(8), labels(8)
    torch.manual_seed(3)
    first = pretext(x, y)
    torch.manual_seed(3)
    _same_batch(first, pretext(x, y))


def _roundtrips() -> dict[str, Callable[[Any], Any]]:
    def torch_save(obj: Any) -> Any:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=False)

    return {
        "pickle": lambda o: pickle.loads(pickle.dumps(o)),
        "deepcopy": copy.deepcopy,
        "torch.save": torch_save,
    }


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "torch.save"])
def test_pretexts_mixers_compose_pickle_and_deepcopy(how: str) -> None:
    roundtrip = _roundtrips()[how]
    x, y = images(6), labels(6)
    objects: list[Any] = [
        Rotation(),
        Cutout(grid=3, fill=0.5, identity=True, name="erase"),
        ChannelDrop(k=3, groups="random", seed=5),
        MixUp(alpha=0.4, per_sample=True),
        CutMix(alpha=2.0),
        _pretext_all_kinds(),
        Compose([v2.MixUp(num_classes=N), Rotation()], num_classes=N),
    ]
    for obj in objects:
        clone = roundtrip(obj)
        assert type(clone) is type(obj) and repr(clone) == repr(obj)
        if isinstance(obj, Compose):
            torch.manual_seed(0)  # for torchvision's mixers
            a = obj(x, y, generator=torch.Generator().manual_seed(1))
            torch.manual_seed(0)
            _same_batch(a, clone(x, y, generator=torch.Generator().manual_seed(1)))
        elif isinstance(obj, (MixUp, CutMix)):
            a_img, a_t = obj(x, y, num_classes=N, generator=torch.Generator().manual_seed(1))
            b_img, b_t = clone(x, y, num_classes=N, generator=torch.Generator().manual_seed(1))
            torch.testing.assert_close(a_img, b_img, rtol=0, atol=0)
            torch.testing.assert_close(a_t.dense(), b_t.dense(), rtol=0, atol=0)
        else:
            s = obj.sample_states(6, generator=torch.Generator().manual_seed(1))
            features = x if obj.site == "input" else torch.rand(6, 7)
            torch.testing.assert_close(obj.apply(features, s), clone.apply(features, s), rtol=0, atol=0)


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "torch.save"])
def test_joint_model_pickles_and_deepcopies(how: str) -> None:
    """Hooks at the classifier and at a named site survive, and point at the copy, not the original."""
    pretext = Compose(
        [Rotation(), ChannelDrop(k=2, at="0"), ChannelDrop(k=4, name="head_drop")], num_classes=N
    )
    original = JointModel(cnn(), pretext, num_classes=N)
    clone = _roundtrips()[how](original)
    batch = pretext(images(4), labels(4), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(clone(batch.inputs, batch.states), original(batch.inputs, batch.states))
    torch.testing.assert_close(clone.predict(batch.inputs), original.predict(batch.inputs))
    # the clone's hooks act on the clone: a feature pretext that reads the clone's context runs
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(1.0)
    assert not torch.allclose(clone(batch.inputs, batch.states), original(batch.inputs, batch.states))


class PretextCollate:
    """collate_fn that runs the input-site work in the DataLoader worker.

    Each worker draws its states from its own generator, seeded from the worker's seed (which the
    DataLoader derives from its own generator), so workers do not repeat each other's draws and a
    seeded DataLoader reproduces the run.
    """

    def __init__(self, pretext: Compose) -> None:
        self.pretext = pretext
        self.generator: torch.Generator | None = None

    def __call__(self, samples: list[tuple[Tensor, Tensor]]) -> ipt_compose.PretextBatch:
        images_, labels_ = default_collate(samples)
        info = get_worker_info()
        if self.generator is None and info is not None:
            self.generator = torch.Generator().manual_seed(info.seed)
        return self.pretext(images_.float() / 255, labels_, generator=self.generator)


def _loader(pretext: Compose, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randint(0, 256, (24, 3, 8, 8), generator=g, dtype=torch.uint8),
        torch.randint(0, N, (24,), generator=g),
    )
    context = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    return DataLoader(
        data,
        batch_size=4,
        shuffle=True,
        num_workers=2,
        collate_fn=PretextCollate(pretext),
        multiprocessing_context=context,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


@pytest.mark.slow
def test_dataloader_workers_run_input_pretexts_and_states_reach_the_model() -> None:
    pretext = Compose([CutMix(), Rotation(), ChannelDrop(k=4)], num_classes=N)
    net = JointModel(cnn(), pretext, num_classes=N)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    runs = []
    for _ in range(2):
        seen = []
        for batch in _loader(pretext, seed=11):
            assert isinstance(batch, ipt_compose.PretextBatch)
            assert batch.inputs.shape == (4, 3, 8, 8) and batch.states.shape == (4, 2)
            logits = net(batch.inputs, batch.states)  # main process: the feature pretext runs here
            loss = joint_cross_entropy(logits, batch.target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert torch.isfinite(loss)
            seen.append(batch.states)
        runs.append(torch.cat(seen))
    assert runs[0].shape == (24, 2)
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)  # a seeded DataLoader reproduces
    # the two workers draw differently (batches 0, 2, 4 come from worker 0; 1, 3, 5 from worker 1)
    assert not torch.equal(runs[0][0:4], runs[0][4:8]) or not torch.equal(runs[0][8:12], runs[0][12:16])


# ------------------------------------------------------------------------------------ compile
def _training_step(net: JointModel) -> Callable[[Tensor, Tensor, JointTarget], Tensor]:
    def step(x: Tensor, s: Tensor, t: JointTarget) -> Tensor:
        return joint_cross_entropy(net(x, s), t, label_smoothing=0.1)

    return step


@pytest.mark.slow
def test_compiled_training_step_matches_eager() -> None:
    torch.manual_seed(0)
    pretext = Compose([Rotation(), ChannelDrop(k=4)], num_classes=N)
    net = JointModel(cnn(), pretext, num_classes=N)
    batch = pretext(images(8), labels(8), generator=torch.Generator().manual_seed(0))
    step = _training_step(net)
    eager = step(*batch)
    eager.backward()
    eager_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(step)(*batch)
    compiled.backward()
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    for p, g in zip(net.parameters(), eager_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)


GRAPH_CASES = {
    "ChannelDrop at the head": [ChannelDrop(k=4)],
    "MixUp, Rotation, ChannelDrop at a site and at the head": [
        MixUp(),
        Rotation(),
        ChannelDrop(k=2, at="0"),
        ChannelDrop(k=4, rescale=True, name="d2"),
    ],
    "CutMix, Cutout, RegionDrop, ChannelDrop": [
        CutMix(),  # one box for the batch: its host fast path must step aside while compiling
        Cutout(identity=True),
        RegionDrop(at="0"),
        ChannelDrop(k=4),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sample", "all"])
@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
def test_training_step_has_no_graph_breaks(case: str, mode: str) -> None:
    """Compose + JointModel + joint_cross_entropy trace into one graph (fullgraph=True)."""
    items = [copy.deepcopy(i) for i in GRAPH_CASES[case]]
    if mode == "all":
        items = [i for i in items if not isinstance(i, (MixUp, CutMix))]
    pretext = Compose(items, num_classes=N, mode=mode)
    net = JointModel(cnn(), pretext, num_classes=N)

    def step(x: Tensor, y: Tensor) -> Tensor:
        batch = pretext(x, y)
        return joint_cross_entropy(net(batch.inputs, batch.states), batch.target)

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(step)(images(4), labels(4))
    assert explanation.graph_break_count == 0, [r.reason for r in explanation.break_reasons]


@pytest.mark.slow
def test_predict_has_no_graph_breaks() -> None:
    net = model([Rotation(), ChannelDrop(k=4)])
    for aggregate in ("features", "all"):
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(lambda x, a=aggregate: net.predict(x, aggregate=a))(images(4))
        assert explanation.graph_break_count == 0, [r.reason for r in explanation.break_reasons]


# ------------------------------------------------------------------------------------ precision
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_images_keep_their_dtype(dtype: torch.dtype) -> None:
    x, y = images(4, dtype=dtype), labels(4)
    for pretext in (Rotation(), Cutout(identity=True)):
        assert pretext.apply(x, torch.tensor([0, 1, 2, 3])).dtype == dtype
    features = torch.rand(4, 8, dtype=dtype)
    for drop in (
        ChannelDrop(k=4),
        ChannelDrop(k=4, rescale=True),
        ChannelDrop(k=3, identity=True, rescale=True),
    ):
        assert drop.apply(features, torch.tensor([0, 1, 2, 2])).dtype == dtype
    composed = Compose(
        [MixUp(), Rotation(), CutMix(per_sample=True), Cutout(), ChannelDrop(k=4)], num_classes=N
    )
    batch = composed(x, y, generator=torch.Generator().manual_seed(0))
    assert batch.inputs.dtype == dtype
    assert Compose([v2.CutMix(num_classes=N), Rotation()], num_classes=N)(x, y).inputs.dtype == dtype
    assert Compose([Rotation(), ChannelDrop()], num_classes=N, mode="all")(x, y).inputs.dtype == dtype
    if (
        dtype == torch.bfloat16
    ):  # CPU kernels for bf16 convolutions are complete; half ones are not everywhere
        net = JointModel(cnn(), composed, num_classes=N).to(dtype)
        logits = net(batch.inputs, batch.states)
        assert logits.dtype == dtype
        loss = joint_cross_entropy(logits, batch.target)
        loss.backward()
        assert net.predict(x, aggregate="all").dtype == dtype


def test_autocast_bfloat16_keeps_dtypes() -> None:
    pretext = Compose(
        [MixUp(), Rotation(), ChannelDrop(k=4, rescale=True), ChannelDrop(k=2, at="0", name="d0")],
        num_classes=N,
    )
    net = JointModel(cnn(), pretext, num_classes=N)
    x, y = images(4), labels(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        batch = pretext(x, y, generator=torch.Generator().manual_seed(0))
        assert batch.inputs.dtype == torch.float32  # the images stay as they came
        logits = net(batch.inputs, batch.states)
        assert logits.dtype == torch.bfloat16  # the model runs in autocast's dtype
        loss = joint_cross_entropy(logits, batch.target)
        scores = net.predict(x)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in net.parameters())
    assert scores.shape == (4, N)


# ------------------------------------------------------------------------------------ memory format
def test_channels_last_stays_channels_last() -> None:
    x = images(4, 8, 8).contiguous(memory_format=torch.channels_last)
    y = labels(4)
    states_ = torch.tensor([0, 1, 2, 3])
    for pretext in (Rotation(), Cutout(identity=True)):
        assert pretext.apply(x, states_).is_contiguous(memory_format=torch.channels_last)
    fmap = torch.rand(4, 8, 5, 5).contiguous(memory_format=torch.channels_last)
    assert (
        ChannelDrop(k=4, rescale=True).apply(fmap, states_).is_contiguous(memory_format=torch.channels_last)
    )
    for items in (
        [MixUp(), Rotation(), CutMix(), Cutout(), ChannelDrop()],
        [v2.MixUp(num_classes=N), Rotation()],
    ):
        batch = Compose(items, num_classes=N)(x, y, generator=torch.Generator().manual_seed(0))
        assert batch.inputs.is_contiguous(memory_format=torch.channels_last), items
    batch = Compose([Rotation(), Cutout()], num_classes=N, mode="all")(x, y)
    assert batch.inputs.is_contiguous(memory_format=torch.channels_last)

    seen: list[Tensor] = []
    pretext = Compose([Rotation(), ChannelDrop(k=2, at="0"), ChannelDrop(k=4, name="head")], num_classes=N)
    net = JointModel(cnn(), pretext, num_classes=N).to(memory_format=torch.channels_last)
    net.backbone[1].register_forward_hook(lambda m, a, out: seen.append(a[0]))  # input of the ReLU
    batch = pretext(x, y)
    net(batch.inputs, batch.states).sum().backward()
    assert seen[-1].is_contiguous(memory_format=torch.channels_last)  # after ChannelDrop at "0"


# ------------------------------------------------------------------------------------ host syncs
_SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")


@pytest.mark.parametrize("mode", ["sample", "all"])
def test_training_step_makes_no_host_sync(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """One step (Compose + JointModel + joint_cross_entropy + backward) reads no tensor value on the host.

    The honest way to check this without a GPU is the ``meta`` device: meta tensors have shapes and
    dtypes but no values, so any data-dependent host read (``.item()``, ``.tolist()``, ``bool(t)``,
    ``.cpu()``) cannot succeed there. On top of that, the ``Tensor`` methods that read values are
    patched to raise. The library's value checks run their own off-CPU branch unchanged (they queue
    ``torch._assert_async``, as on a GPU); the test records those calls and asserts that the checks
    of the user's labels ran. Shape logic (Python ints from ``.shape``) is allowed: it is not a
    sync.
    """
    import ipt_compose._checks as checks

    real = checks._assert_async
    assert real is not None
    queued: list[str] = []

    def recording(ok: Tensor, message: str) -> None:
        queued.append(message)
        real(ok, message)

    monkeypatch.setattr(checks, "_assert_async", recording)
    items: list[Any] = [
        Rotation(),
        Cutout(identity=True),
        ChannelDrop(k=2, at="0"),
        ChannelDrop(k=4, rescale=True, name="head"),
    ]
    if mode == "sample":
        items = [MixUp(per_sample=True), *items[:1], CutMix(), *items[1:]]
    pretext = Compose(items, num_classes=N, mode=mode)
    net = JointModel(cnn(), pretext, num_classes=N).to("meta")
    x = torch.empty(4, 3, 8, 8, device="meta")
    y = torch.empty(4, dtype=torch.long, device="meta")
    soft_y = torch.empty(4, N, device="meta")

    def no_sync(name: str) -> Callable[..., object]:
        original = getattr(torch.Tensor, name)

        def read(self: Tensor, *args: object, **kwargs: object) -> object:
            # a CPU tensor's values are on the host already (one λ or box per batch is drawn there,
            # as torchvision does): reading them syncs nothing; a device tensor's would
            if self.device.type != "cpu":
                raise AssertionError(f"host sync in the training step: Tensor.{name} on {self.device}")
            return original(self, *args, **kwargs)

        return read

    with monkeypatch.context() as patch:
        for name in _SYNCS:
            patch.setattr(torch.Tensor, name, no_sync(name))
        for labels_ in (y, soft_y):
            batch = pretext(x, labels_)
            logits = net(batch.inputs, batch.states)
            loss = joint_cross_entropy(logits, batch.target, label_smoothing=0.1)
            loss.backward()
            assert loss.device.type == "meta"
            assert logits.shape == (batch.states.shape[0], N * pretext.num_states)
    assert any("labels" in m for m in queued), queued
