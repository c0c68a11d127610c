"""Every public entry point, with the bad inputs that fit it: each must raise ``ValueError`` or
``TypeError`` whose message names the offending argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from ipt_compose import (
    ChannelDrop,
    Compose,
    CutMix,
    Cutout,
    JointModel,
    LabelSpace,
    MixUp,
    RegionDrop,
    Rotation,
    joint_cross_entropy,
    self_distillation_loss,
)
from tests._reliability import N, Unpooled, cnn, images, labels, model, soft, states, target

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


def test_cutout_fill_that_integer_images_cannot_hold() -> None:
    images_u8 = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    for fill in (-1.0, 256.0, -0.5):
        with pytest.raises(ValueError, match=r"Cutout\(fill=.*\) cannot be written into torch.uint8"):
            Cutout(fill=fill).apply(images_u8, torch.tensor([0, 1]))
    out = Cutout(fill=255.0).apply(images_u8, torch.tensor([0, 1]))
    assert out.max() == 255
