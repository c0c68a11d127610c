"""Low precision (float16/bfloat16 images, autocast) and memory format (channels-last in,
channels-last out)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torchvision.transforms import v2

from ipt_compose import (
    ChannelDrop,
    Compose,
    CutMix,
    Cutout,
    JointModel,
    MixUp,
    Rotation,
    joint_cross_entropy,
)
from tests._reliability import N, cnn, images, labels


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
