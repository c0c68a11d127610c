"""The internal task's variants: ChannelDrop options, RegionDrop, and self-distillation."""

from __future__ import annotations

import copy
import itertools
import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ipt_compose import (
    ChannelDrop,
    Compose,
    JointModel,
    JointOutput,
    JointTarget,
    RegionDrop,
    Rotation,
    joint_cross_entropy,
    self_distillation_loss,
)


def small_cnn(num_classes: int = 5) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(12, num_classes),
    )


# ---------------------------------------------------------------------------- ChannelDrop options
@settings(max_examples=30, deadline=None)
@given(channels=st.integers(4, 13), k=st.integers(1, 4), rows=st.integers(1, 5), seed=st.integers(0, 99))
def test_rescale_scales_kept_channels_and_zeroes_the_group(
    channels: int, k: int, rows: int, seed: int
) -> None:
    drop = ChannelDrop(k=k, rescale=True)
    x = torch.rand(rows, channels, 3, 3, dtype=torch.float64) + 0.5
    states = torch.randint(k, (rows,), generator=torch.Generator().manual_seed(seed))
    out = drop.apply(x, states)
    ids = drop.group_ids(channels)
    for r in range(rows):
        dropped = ids == states[r]
        kept = (~dropped).sum().item()
        assert torch.all(out[r, dropped] == 0)
        torch.testing.assert_close(out[r, ~dropped], x[r, ~dropped] * channels / kept)


@pytest.mark.parametrize("layout", ["contiguous", "interleaved", "random"])
def test_group_layouts_partition_channels_into_near_equal_groups(layout: str) -> None:
    drop = ChannelDrop(k=3, groups=layout, seed=7)  # type: ignore[arg-type]
    ids = drop.group_ids(10)
    counts = torch.bincount(ids, minlength=3)
    assert sorted(counts.tolist()) == [3, 3, 4]
    if layout == "interleaved":
        assert ids.tolist() == [c % 3 for c in range(10)]
    if layout == "random":
        assert torch.equal(ids, ChannelDrop(k=3, groups="random", seed=7).group_ids(10))
        assert not torch.equal(ids, ChannelDrop(k=3, groups="random", seed=8).group_ids(10))


def test_channel_scale_matches_apply() -> None:
    drop = ChannelDrop(k=3, identity=True, rescale=True, groups="interleaved")
    x = torch.rand(4, 7)
    states = torch.tensor([0, 1, 2, 3])
    expected = x * drop.channel_scale(7, dtype=x.dtype)[states]
    torch.testing.assert_close(drop.apply(x, states), expected)


def test_bad_group_layout() -> None:
    with pytest.raises(ValueError, match="groups"):
        ChannelDrop(k=2, groups="striped")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- RegionDrop
@settings(max_examples=30, deadline=None)
@given(grid=st.integers(1, 3), height=st.integers(3, 7), width=st.integers(3, 7), identity=st.booleans())
def test_region_drop_zeroes_exactly_its_cell(grid: int, height: int, width: int, identity: bool) -> None:
    drop = RegionDrop(grid=grid, at="x", identity=identity)
    states = torch.arange(drop.num_states)
    x = torch.rand(drop.num_states, 2, height, width) + 1
    out = drop.apply(x, states)
    row_bounds = torch.arange(height).tensor_split(grid)
    col_bounds = torch.arange(width).tensor_split(grid)
    for s in range(drop.num_states):
        mask = torch.zeros(height, width, dtype=torch.bool)
        if not (identity and s == 0):
            cell = s - int(identity)
            rows, cols = row_bounds[cell // grid], col_bounds[cell % grid]
            mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.all(out[s][:, mask] == 0)
        assert torch.equal(out[s][:, ~mask], x[s][:, ~mask])


def test_region_drop_inside_a_model_and_errors() -> None:
    backbone = small_cnn()
    model = JointModel(backbone, Compose([RegionDrop(grid=2, at="2")]), num_classes=5).eval()
    x = torch.rand(3, 3, 8, 8)
    assert model(x, torch.tensor([[0], [1], [3]])).shape == (3, 20)
    assert model.predict(x).shape == (3, 5)
    pooled = JointModel(small_cnn(), Compose([RegionDrop(grid=2)]), num_classes=5)
    with pytest.raises(ValueError, match="spatial feature map"):
        pooled(x, torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="grid"):
        RegionDrop(grid=0)
    with pytest.raises(ValueError, match="needs maps of at least 3×3"):
        RegionDrop(grid=3, at="x").apply(torch.rand(1, 1, 2, 5), torch.tensor([0]))


# ---------------------------------------------------------------------------- self-distillation
def _distilled_model(pretexts: list) -> JointModel:  # type: ignore[type-arg]
    torch.manual_seed(0)
    return JointModel(small_cnn(), Compose(pretexts), num_classes=5, distill=True)


@pytest.mark.parametrize(
    "pretexts",
    [
        [ChannelDrop(k=4)],
        [ChannelDrop(k=2, identity=True), Rotation()],
        [Rotation(), ChannelDrop(k=2, rescale=True), ChannelDrop(k=3, name="second", groups="interleaved")],
    ],
    ids=["channeldrop", "channeldrop+rotation", "rotation+two-drops"],
)
def test_teacher_is_the_average_over_feature_states(pretexts: list) -> None:  # type: ignore[type-arg]
    model = _distilled_model(pretexts).eval()
    compose = model.pretext
    x, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 4])
    batch = compose(x, labels, generator=torch.Generator().manual_seed(1))
    out = model(batch.inputs, batch.states, return_plain=True)
    assert isinstance(out, JointOutput)
    feature_columns = [i for i, p in enumerate(compose.pretexts) if p.site == "feature"]
    expected = torch.zeros(4, 5)
    combos = list(itertools.product(*(range(compose.pretexts[i].num_states) for i in feature_columns)))
    for combo in combos:
        states = batch.states.clone()
        for column, value in zip(feature_columns, combo, strict=True):
            states[:, column] = value
        logits = model(batch.inputs, states)
        per_class = torch.cat(
            [torch.arange(5).view(1, 5, 1).expand(4, 5, 1), states.unsqueeze(1).expand(4, 5, -1)], dim=2
        )
        expected += logits.gather(1, model.space.encode(per_class))
    torch.testing.assert_close(out.teacher, expected / len(combos))
    assert not out.teacher.requires_grad
    # the plain head starts as the original classifier: at init it sees un-dropped features
    assert out.plain.shape == (4, 5)


def test_distilled_training_step_and_inference() -> None:
    model = _distilled_model([ChannelDrop(k=4)])
    x, labels = torch.rand(6, 3, 8, 8), torch.randint(5, (6,))
    batch = model.pretext(x, labels)
    out = model(batch.inputs, batch.states, return_plain=True)
    loss = joint_cross_entropy(out.joint, batch.target) + self_distillation_loss(
        out.plain, out.teacher, batch.target, temperature=2.0
    )
    loss.backward()
    # each head gets exactly the gradient of its own loss: the joint head the joint loss's (nothing
    # through the teacher), the plain head the distillation loss's
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    for part in ("joint", "plain"):
        model.zero_grad()
        out = model(batch.inputs, batch.states, return_plain=True)
        if part == "joint":
            joint_cross_entropy(out.joint, batch.target).backward()
            head = model.head
        else:
            self_distillation_loss(out.plain, out.teacher, batch.target, temperature=2.0).backward()
            head = model.plain_head
        for p in head.parameters():
            name = next(n for n, q in model.named_parameters() if q is p)
            assert p.grad is not None and bool(p.grad.abs().sum() > 0)
            torch.testing.assert_close(grads[name], p.grad, msg=name)
    model.eval()
    plain = model.predict(x, aggregate="distilled")
    torch.testing.assert_close(plain, model.plain_head(model.backbone[:-1](x)))


def test_distillation_in_mode_all_lines_up_with_rows() -> None:
    model = _distilled_model([ChannelDrop(k=2), Rotation()]).eval()
    compose = Compose(list(model.pretext.pretexts), mode="all")
    batch = compose(torch.rand(2, 3, 8, 8), torch.tensor([1, 3]))
    out = model(batch.inputs, batch.states, return_plain=True)
    assert out.joint.shape == (16, 40) and out.plain.shape == (16, 5) and out.teacher.shape == (16, 5)
    # output rows r and r' with the same input row share student and teacher
    torch.testing.assert_close(out.plain[0], out.plain[1])
    torch.testing.assert_close(out.teacher[0], out.teacher[1])


def test_self_distillation_loss_formula() -> None:
    plain = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(3, 4, dtype=torch.float64)
    target = JointTarget.from_labels(torch.tensor([0, 3, 1]), num_classes=4).lift(
        torch.tensor([1, 0, 1]), "rotation", 2
    )
    t = 3.0
    expected = F.cross_entropy(plain, torch.tensor([0, 3, 1])) + t**2 * F.kl_div(
        F.log_softmax(plain / t, 1), F.log_softmax(teacher / t, 1), log_target=True, reduction="batchmean"
    )
    torch.testing.assert_close(self_distillation_loss(plain, teacher, target, temperature=t), expected)


def test_distill_errors() -> None:
    with pytest.raises(ValueError, match="distill=True needs"):
        JointModel(small_cnn(), Compose([ChannelDrop(k=2, at="2")]), num_classes=5, distill=True)
    model = JointModel(small_cnn(), Compose([ChannelDrop(k=2)]), num_classes=5)
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="return_plain=True needs"):
        model(x, torch.zeros(2, 1, dtype=torch.long), return_plain=True)
    with pytest.raises(ValueError, match="aggregate='distilled' needs"):
        model.predict(x, aggregate="distilled")
    target = JointTarget.from_labels(torch.tensor([0, 1]), num_classes=5)
    with pytest.raises(ValueError, match="plain and teacher"):
        self_distillation_loss(torch.zeros(2, 5), torch.zeros(2, 4), target)
    with pytest.raises(ValueError, match="temperature"):
        self_distillation_loss(torch.zeros(2, 5), torch.zeros(2, 5), target, temperature=0.0)


def test_distilled_model_pickles_and_copies() -> None:
    model = _distilled_model([ChannelDrop(k=2)]).eval()
    x = torch.rand(2, 3, 8, 8)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        distilled = model.predict(x, aggregate="distilled")
        torch.testing.assert_close(clone.predict(x, aggregate="distilled"), distilled)
        torch.testing.assert_close(clone.predict(x), model.predict(x))
