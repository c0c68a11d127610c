"""A hypothesis fuzz over shapes and dtypes: nothing but ``ValueError``/``TypeError`` (no bare
``RuntimeError``/``IndexError`` from deep inside torch) escapes the public entry points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
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
)
from tests._reliability import N, images, labels, model


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
