"""Fuzz tests of the public entry points (hypothesis).

Three fuzzes, each with one job:

* **valid inputs, by construction** (``test_fuzz_valid_batches_follow_the_algebra``): a random
  ``Compose`` of pretexts and mixers (ours and torchvision's) in either mode, images and labels of
  random shapes, dtypes and kinds, all valid. Every example must return a batch, and the batch is
  checked by value: rows line up, states lie in range, target rows are distributions, and the dense
  target, the states and the inputs equal an independent replay of the algebra (the draws replayed
  in list order, the label algebra written in dense float64 form by hand);
* **invalid inputs, by construction** (``test_fuzz_invalid_inputs_raise``): a valid case with one
  thing broken must raise ``ValueError`` or ``TypeError``;
* **arbitrary inputs** (``test_fuzz_only_value_or_type_errors_escape``): whatever the shapes and
  dtypes, an entry point succeeds or raises ``ValueError``/``TypeError`` (no bare
  ``RuntimeError``/``IndexError`` from deep inside torch).

``pytest tests/test_fuzz.py --hypothesis-show-statistics`` shows how many examples reach a batch.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
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
    Pretext,
    RegionDrop,
    Rotation,
    joint_cross_entropy,
)
from tests._reliability import N, images, labels, model

# IPT_FUZZ_EXAMPLES=5000 for a deeper run by hand
FUZZ = settings(
    max_examples=int(os.environ.get("IPT_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# the tolerance of a value computed in a dtype against its float64 reference (float64: torchvision's
# mixers inside Compose hand back λ in float32, whatever the target's dtype)
TOLERANCE = {
    torch.float64: 1e-6,
    torch.float32: 1e-5,
    torch.float16: 4e-3,
    torch.bfloat16: 3e-2,
    torch.uint8: 0.0,
}


def _close(actual: Tensor, expected: Tensor, what: str, dtype: torch.dtype | None = None) -> None:
    """``actual`` (computed in ``dtype``, by default its own) against its float64 reference."""
    atol = TOLERANCE[dtype or actual.dtype]
    torch.testing.assert_close(actual.double(), expected.double(), atol=atol, rtol=0, msg=what)


# ================================================================================ valid by construction
@dataclass
class ValidCase:
    items: list[Any]
    mode: str
    num_classes: int
    give_num_classes: bool
    images: Tensor
    labels: Tensor
    seed: int

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return (
            f"ValidCase(items={self.items!r}, mode={self.mode!r}, num_classes={self.num_classes}, "
            f"give_num_classes={self.give_num_classes}, images={tuple(self.images.shape)} "
            f"{self.images.dtype}, labels={tuple(self.labels.shape)} {self.labels.dtype}, seed={self.seed})"
        )


def _pretext(draw: st.DrawFn, name: str, side: int, square: bool) -> Pretext:
    choices = ["channel_drop", "region_drop"] + (["rotation"] if square else [])
    if side >= 2:
        choices.append("cutout")
    kind = draw(st.sampled_from(choices))
    if kind == "rotation":
        return Rotation(name=name)
    if kind == "cutout":
        return Cutout(
            grid=draw(st.integers(1, min(side, 3))),
            identity=draw(st.booleans()),
            fill=draw(st.sampled_from([0.0, 0.5, -1.0])),
            name=name,
        )
    if kind == "region_drop":
        return RegionDrop(grid=draw(st.integers(1, 2)), at="0", identity=draw(st.booleans()), name=name)
    return ChannelDrop(
        k=draw(st.integers(1, 4)),
        identity=draw(st.booleans()),
        rescale=draw(st.booleans()),
        groups=draw(st.sampled_from(["contiguous", "interleaved", "random"])),
        name=name,
    )


def _mixer(draw: st.DrawFn, num_classes: int) -> Any:
    kind = draw(st.sampled_from(["mixup", "cutmix", "tv_mixup", "tv_cutmix"]))
    alpha = draw(st.sampled_from([0.3, 1.0, 2.0]))
    if kind == "tv_mixup":
        return v2.MixUp(alpha=alpha, num_classes=num_classes)
    if kind == "tv_cutmix":
        return v2.CutMix(alpha=alpha, num_classes=num_classes)
    return (MixUp if kind == "mixup" else CutMix)(alpha=alpha, per_sample=draw(st.booleans()))


@st.composite
def valid_cases(draw: st.DrawFn) -> ValidCase:
    mode = draw(st.sampled_from(["sample", "all"]))
    num_classes = draw(st.integers(1, 5))
    batch = 0 if draw(st.integers(0, 9)) == 0 else draw(st.integers(1, 5))  # empty 1 in 10
    height = draw(st.integers(1, 6))
    square = draw(st.booleans())
    width = height if square else draw(st.integers(1, 6))
    side = min(height, width)
    count = draw(st.integers(1, 4))
    items: list[Any] = []
    feature_seen = False
    for i in range(count):
        # mixers only in sample mode and never after a feature pretext
        if mode == "sample" and not feature_seen and draw(st.integers(0, 2)) == 0:
            items.append(_mixer(draw, num_classes))
            continue
        p = _pretext(draw, f"p{i}", side, square)
        feature_seen |= p.site == "feature"
        items.append(p)
    if not any(isinstance(item, Pretext) for item in items):
        items.append(_pretext(draw, "last", side, square))
    mixers = any(not isinstance(item, Pretext) for item in items)
    image_dtypes = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
    # uint8 images: never mixed (mixers need floats), never filled with a negative value (torch
    # cannot write -1 into uint8 and raises RuntimeError)
    negative_fill = any(isinstance(item, Cutout) and item.fill < 0 for item in items)
    integer_ok = not mixers and not negative_fill
    image_dtype = draw(st.sampled_from([*image_dtypes, torch.uint8] if integer_ok else image_dtypes))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    channels = draw(st.integers(1, 4))
    if image_dtype == torch.uint8:
        x = torch.randint(0, 256, (batch, channels, height, width), generator=g, dtype=torch.uint8)
    else:
        x = torch.rand(batch, channels, height, width, generator=g, dtype=torch.float64).to(image_dtype)
    if draw(st.booleans()):  # hard labels
        label_dtype = draw(st.sampled_from([torch.int64, torch.int32, torch.uint8]))
        y = torch.randint(num_classes, (batch,), generator=g).to(label_dtype)
    else:  # probabilities in multiples of 1/16: exact in every float dtype, rows sum to exactly 1
        label_dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
        counts = torch.zeros(batch, num_classes, dtype=torch.float64)
        for _ in range(16):
            counts[torch.arange(batch), torch.randint(num_classes, (batch,), generator=g)] += 1
        y = (counts / 16).to(label_dtype)
    return ValidCase(items, mode, num_classes, draw(st.booleans()), x, y, seed)


def _label_distribution(case: ValidCase) -> Tensor:
    """The labels as float64 probabilities ``(B, N)``."""
    y = case.labels
    if y.is_floating_point():
        return y.double()
    return torch.nn.functional.one_hot(y.long(), case.num_classes).double()


def _onehot_states(states: Tensor, size: int) -> Tensor:
    return torch.nn.functional.one_hot(states.long(), size).double()


def _lift(reference: Tensor, states: Tensor, size: int) -> Tensor:
    """``p ⊗ onehot(s)`` row by row, the new factor innermost (dense, float64)."""
    lifted = torch.einsum("bj,bk->bjk", reference, _onehot_states(states, size))
    return lifted.reshape(reference.shape[0], reference.shape[1] * size)


def _mix(values: Tensor, lam: Tensor) -> Tensor:
    """``λ v_i + (1 - λ) v_{i-1}``, ``λ`` one per row (float64)."""
    lam = lam.double().view(-1, *([1] * (values.ndim - 1)))
    return lam * values.double() + (1 - lam) * values.double().roll(1, 0)


def _replay_sample(case: ValidCase) -> tuple[Tensor, Tensor, Tensor]:
    """The images, states and dense target of ``mode="sample"``, replayed item by item in list
    order from the case's seed, the labels' algebra written by hand in dense float64."""
    g = torch.Generator().manual_seed(case.seed)
    x = case.images
    batch = x.shape[0]
    reference = _label_distribution(case)
    columns = []
    for item in case.items:
        if isinstance(item, Pretext):
            states = item.sample_states(batch, generator=g)
            columns.append(states)
            if item.site == "input":
                x = item.apply(x, states)
            reference = _lift(reference, states, item.num_states)
        elif isinstance(item, MixUp):
            lam = item.sample_params(x, generator=g)["lam"].double().expand(batch)
            x, reference = _mix(x, lam).to(x.dtype), _mix(reference, lam)
        elif isinstance(item, CutMix):
            box = item.sample_params(x, generator=g)["box"].expand(batch, 4)
            height, width = x.shape[-2:]
            mixed = x.clone()
            lam = torch.ones(batch, dtype=torch.float64)
            for i, (x1, y1, x2, y2) in enumerate(box.tolist()):
                mixed[i, :, y1:y2, x1:x2] = x[i - 1, :, y1:y2, x1:x2]
                lam[i] = 1 - (x2 - x1) * (y2 - y1) / (height * width)
            x, reference = mixed, _mix(reference, lam)
        elif batch:  # torchvision's mixer, on the dense joint labels (global RNG, seeded by the caller)
            mixer = copy.copy(item)
            mixer.num_classes = None
            x, reference = mixer(x, reference)
    return x, torch.stack(columns, dim=1), reference


def _reference_all(case: ValidCase, space: LabelSpace) -> tuple[list[tuple[int, tuple[int, ...]]], Tensor]:
    """``mode="all"``: every ``(sample, states)`` row in the documented order, and its dense target."""
    pretexts = [item for item in case.items if isinstance(item, Pretext)]
    order = [i for i, p in enumerate(pretexts) if p.site == "input"]
    order += [i for i, p in enumerate(pretexts) if p.site == "feature"]
    per_sample = _label_distribution(case)
    rows, dense = [], []
    for sample in range(case.images.shape[0]):
        for combo in itertools.product(*(range(pretexts[i].num_states) for i in order)):
            states = [0] * len(pretexts)
            for column, value in zip(order, combo, strict=True):
                states[column] = value
            rows.append((sample, tuple(states)))
            target = torch.zeros(space.size, dtype=torch.float64)
            for c in range(case.num_classes):
                target[int(space.encode(torch.tensor([c, *states])))] = per_sample[sample, c]
            dense.append(target)
    return rows, torch.stack(dense) if dense else torch.zeros(0, space.size, dtype=torch.float64)


@FUZZ
@given(case=valid_cases())
def test_fuzz_valid_batches_follow_the_algebra(case: ValidCase) -> None:
    """Every valid case gives a batch whose inputs, states and target equal the replayed algebra."""
    num_classes = case.num_classes if case.give_num_classes else None
    pretext = Compose(case.items, num_classes=num_classes, mode=case.mode)  # type: ignore[arg-type]
    torch.manual_seed(case.seed)  # torchvision's mixers draw from the global RNG
    batch = pretext(case.images, case.labels, generator=torch.Generator().manual_seed(case.seed))
    event("valid case: reached a batch")
    pretexts = pretext.pretexts
    b = case.images.shape[0]
    k_in = math.prod(p.num_states for p in pretexts if p.site == "input")
    k_feat = math.prod(p.num_states for p in pretexts if p.site == "feature")
    rows = b * k_in * k_feat if case.mode == "all" else b
    space = pretext.space(case.num_classes)

    # rows line up, states in range, dtypes kept
    assert batch.inputs.shape == (b * (k_in if case.mode == "all" else 1), *case.images.shape[1:])
    assert batch.inputs.dtype == case.images.dtype
    assert batch.states.shape == (rows, len(pretexts)) and batch.states.dtype == torch.long
    assert batch.target.batch_size == rows
    for column, p in enumerate(pretexts):
        assert bool(((batch.states[:, column] >= 0) & (batch.states[:, column] < p.num_states)).all())
    dense = batch.target.dense(num_classes=case.num_classes)
    assert dense.shape == (rows, space.size)
    assert bool((dense >= 0).all())
    _close(dense.sum(dim=1), torch.ones(rows, dtype=torch.float64), "target rows sum to 1")

    # the dense target, the states and the inputs equal the algebra
    if case.mode == "all":
        expected_rows, expected = _reference_all(case, space)
        assert [tuple(s) for s in batch.states.tolist()] == [states for _, states in expected_rows]
        _close(dense, expected, "dense target (mode='all')")
        for r in range(0, rows, k_feat):
            sample, states = expected_rows[r]
            image = case.images[sample : sample + 1]
            for column, p in enumerate(pretexts):
                if p.site == "input":
                    image = p.apply(image, torch.tensor([states[column]]))
            assert torch.equal(batch.inputs[r // k_feat], image[0])
        return
    torch.manual_seed(case.seed)
    inputs, states, expected = _replay_sample(case)
    assert torch.equal(batch.states, states)
    _close(batch.inputs, inputs, "inputs")
    _close(dense, expected, "dense target")
    # and the loss takes it: the sparse loss equals cross-entropy on the replayed dense target
    g = torch.Generator().manual_seed(case.seed)
    logits = torch.randn(rows, space.size, generator=g, dtype=torch.float64)
    reference_loss = -(dense.double() * logits.log_softmax(dim=1)).sum(dim=1)
    loss = joint_cross_entropy(logits, batch.target, reduction="none")
    _close(loss / 10, reference_loss / 10, "loss", dense.dtype)  # weights rounded in the target's dtype


# ================================================================================ invalid by construction
def _valid_batch(side: int = 4, batch: int = 3) -> tuple[Tensor, Tensor]:
    return torch.rand(batch, 3, side, side), torch.arange(batch) % 3


BREAKS: dict[str, Callable[[st.DataObject], Callable[[], object]]] = {
    "label out of range": lambda data: lambda: Compose([Rotation()], num_classes=3)(
        _valid_batch()[0], torch.tensor([0, 1, data.draw(st.sampled_from([3, 7, -1]))])
    ),
    "batch sizes differ": lambda data: lambda: Compose([Rotation(), ChannelDrop(k=2)], num_classes=3)(
        _valid_batch(batch=data.draw(st.integers(1, 4)))[0], torch.tensor([0, 1, 2, 0, 1])
    ),
    "non-square rotation": lambda data: lambda: Compose([Rotation()], num_classes=3)(
        torch.rand(3, 3, 4, data.draw(st.sampled_from([3, 5, 6]))), torch.tensor([0, 1, 2])
    ),
    "float class indices": lambda data: lambda: Compose([Rotation()], num_classes=3)(
        _valid_batch()[0],
        torch.tensor([0.0, 1.0, 2.0], dtype=data.draw(st.sampled_from([torch.float32, torch.float16]))),
    ),
    "soft labels not summing to 1": lambda data: lambda: Compose([Rotation()])(
        _valid_batch()[0], torch.full((3, 4), data.draw(st.sampled_from([0.5, 0.0, 0.3])))
    ),
    "soft labels with NaN": lambda data: lambda: Compose([ChannelDrop(k=2)])(
        _valid_batch()[0], torch.tensor([[float("nan"), 1.0]] * 3)
    ),
    "negative soft labels": lambda data: lambda: Compose([ChannelDrop(k=2)])(
        _valid_batch()[0], torch.tensor([[1.5, -0.5]] * 3)
    ),
    "soft label width disagrees": lambda data: lambda: Compose([Rotation()], num_classes=3)(
        _valid_batch()[0], torch.full((3, data.draw(st.sampled_from([2, 4]))), 0.25).softmax(dim=1)
    ),
    "images not 4-D": lambda data: lambda: Compose([ChannelDrop(k=2)], num_classes=3)(
        torch.rand(*((3, 4, 4) if data.draw(st.booleans()) else (3, 1, 3, 4, 4))), torch.tensor([0, 1, 2])
    ),
    "integer images mixed": lambda data: lambda: Compose(
        [data.draw(st.sampled_from([MixUp(), CutMix(), v2.CutMix(num_classes=3)])), Rotation()], num_classes=3
    )(torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 2])),
    "image smaller than the grid": lambda data: lambda: Compose([Cutout(grid=3)], num_classes=3)(
        torch.rand(3, 1, 2, data.draw(st.integers(1, 5))), torch.tensor([0, 1, 2])
    ),
    "states out of range": lambda data: lambda: model()(
        images(2), torch.tensor([[0, 0], [data.draw(st.sampled_from([4, -1])), 0]])
    ),
    "states of the wrong shape": lambda data: lambda: model()(
        images(2), torch.zeros(2, data.draw(st.sampled_from([1, 3])), dtype=torch.long)
    ),
    "mixer in mode all": lambda data: lambda: Compose([MixUp(), Rotation()], mode="all"),
    "mixer after a feature pretext": lambda data: lambda: Compose([ChannelDrop(k=2), CutMix()]),
}


@FUZZ
@given(broken=st.sampled_from(sorted(BREAKS)), data=st.data())
def test_fuzz_invalid_inputs_raise(broken: str, data: st.DataObject) -> None:
    """A valid call with one thing broken raises ValueError or TypeError, never returns."""
    call = BREAKS[broken](data)
    with pytest.raises((ValueError, TypeError)):
        call()


# ================================================================================ arbitrary inputs
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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=fuzz_case(), entry=st.sampled_from(sorted(ENTRY_POINTS)))
def test_fuzz_only_value_or_type_errors_escape(case: dict[str, Any], entry: str) -> None:
    """Whatever the shapes and dtypes, an entry point succeeds or raises ValueError/TypeError; what
    succeeds with a batch has rows that line up and sum to 1 (in the target's own dtype)."""
    x, y = case["images"], case["labels"]
    try:
        out = ENTRY_POINTS[entry](x, y)
    except (ValueError, TypeError):
        event("arbitrary input: raised ValueError/TypeError")
        return
    if not isinstance(out, ipt_compose.PretextBatch):
        event("arbitrary input: returned")
        return
    event("arbitrary input: reached a batch")
    assert out.states.shape[0] == out.target.batch_size
    assert out.inputs.dtype == x.dtype
    if out.target.num_classes is not None:
        dense = out.target.dense()
        atol = max(1e-3, 4 * torch.finfo(dense.dtype).eps)
        torch.testing.assert_close(dense.sum(dim=1), torch.ones_like(dense[:, 0]), atol=atol, rtol=0)


def test_the_issue_example_is_valid_and_kept_in_its_dtype() -> None:
    """Issue 14's example: empty images and float16 soft labels through MixUp, Rotation, CutMix
    return a float16 target with no rows (the old fuzz compared it with float32 ones and failed)."""
    batch = Compose([MixUp(), Rotation(), CutMix(per_sample=True)], num_classes=4)(
        torch.rand(0, 1, 1, 1), torch.rand(0, 4).half()
    )
    assert batch.target.dense().shape == (0, 16) and batch.target.dense().dtype == torch.float16


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
