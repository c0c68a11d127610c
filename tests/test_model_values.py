"""JointModel by value against an explicit per-row loop (issue 14): RegionDrop and ChannelDrop inside
the network, ``predict``, self-distillation in both modes, and gradients by value.

The reference never calls the model's site machinery: it runs the backbone's layers one at a time
on one image, applies each pretext by hand where it acts (the rotation with ``torch.rot90``, a cell
or a channel group zeroed through ``torch.tensor_split``), and reads the joint logits through the
class-major layout ``j = ((c K1) + s1) K2 + s2 …`` written out here.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ipt_compose import (
    ChannelDrop,
    Compose,
    JointModel,
    Pretext,
    RegionDrop,
    Rotation,
    joint_cross_entropy,
    self_distillation_loss,
)

N = 5


def small_cnn() -> nn.Sequential:
    """Layers "0" conv (3 → 6), "1" relu, "2" conv (6 → 7), "3" relu, pool, flatten, head "6"."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 7, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(7, N),
    ).double()


def trained(model: JointModel) -> JointModel:
    """Break the symmetry of the state blocks (and of the plain head), so every state matters."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def raw_images(batch: int, height: int, width: int) -> Tensor:
    g = torch.Generator().manual_seed(batch)
    return torch.rand(batch, 3, height, width, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------ the reference, by hand
def zero_cell(fmap: Tensor, cell: int, grid: int) -> Tensor:
    """Zero cell ``cell`` (row-major) of a ``grid × grid`` split of ``(C, H, W)``."""
    rows = torch.tensor_split(torch.arange(fmap.shape[-2]), grid)[cell // grid]
    cols = torch.tensor_split(torch.arange(fmap.shape[-1]), grid)[cell % grid]
    out = fmap.clone()
    out[:, rows.view(-1, 1), cols.view(1, -1)] = 0
    return out


def zero_group(features: Tensor, group: int, k: int) -> Tensor:
    """Zero contiguous channel group ``group`` of ``k`` of ``(C, ...)``."""
    out = features.clone()
    out[torch.tensor_split(torch.arange(features.shape[0]), k)[group]] = 0
    return out


def by_hand(p: Pretext, x: Tensor, state: int) -> Tensor:
    """One pretext on one row (``x`` without its batch dimension)."""
    offset = int(p.identity_state is not None)
    if state < offset:
        return x
    if isinstance(p, Rotation):
        return torch.rot90(x, state, dims=(-2, -1))
    if isinstance(p, RegionDrop):
        return zero_cell(x, state - offset, p.grid)
    if isinstance(p, ChannelDrop):
        assert p.groups == "contiguous" and not p.rescale
        return zero_group(x, state - offset, p.k)
    raise AssertionError(f"no reference for {p!r}")


def joint_column(sizes: Sequence[int], c: int, states: Sequence[int]) -> int:
    """Class-major joint index of ``(c, *states)`` over factors of ``sizes`` (class first)."""
    index = c
    for size, s in zip(sizes[1:], states, strict=True):
        index = index * size + s
    return index


def forward_by_hand(model: JointModel, image: Tensor, states: Sequence[int]) -> tuple[Tensor, Tensor]:
    """The joint logits ``(N K,)`` of one image under one row of states, and the classifier's input
    before any feature pretext (``model.backbone`` must be an ``nn.Sequential`` with the head last)."""
    pretexts = model.pretext.pretexts
    h = image
    for p, s in zip(pretexts, states, strict=True):
        if p.site == "input":
            h = by_hand(p, h, s)
    h = h.unsqueeze(0)
    layers = list(model.backbone.named_children())
    for name, layer in layers[:-1]:
        h = layer(h)
        for p, s in zip(pretexts, states, strict=True):
            if p.site == "feature" and p.at == name:
                h = by_hand(p, h[0], s).unsqueeze(0)
    features = h[0]
    for p, s in zip(pretexts, states, strict=True):
        if p.site == "feature" and p.at is None:
            h = by_hand(p, h[0], s).unsqueeze(0)
    head = model.head
    return F.linear(h[0], head.weight, head.bias), features


Run = Callable[[int, tuple[int, ...]], tuple[Tensor, Tensor]]


def by_hand_on(model: JointModel, images: Tensor) -> Run:
    """``forward_by_hand`` of image ``sample`` under ``states``, each pair computed once."""

    @functools.cache
    def run(sample: int, states: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            return forward_by_hand(model, images[sample], states)

    return run


def class_scores_by_hand(model: JointModel, run: Run, sample: int, states: Sequence[int]) -> Tensor:
    """``z[(c, *states)]`` for every class ``c``."""
    z, _ = run(sample, tuple(states))
    sizes = model.space.sizes
    return torch.stack([z[joint_column(sizes, c, states)] for c in range(N)])


def predict_by_hand(model: JointModel, run: Run, sample: int, aggregate: str) -> Tensor:
    pretexts = model.pretext.pretexts
    rest = tuple(p.identity_state if p.identity_state is not None else 0 for p in pretexts)
    if aggregate == "marginal":
        z, _ = run(sample, rest)
        return z.view(N, -1).logsumexp(dim=1)
    if aggregate == "none":
        return class_scores_by_hand(model, run, sample, rest)
    choices = [
        range(p.num_states) if aggregate == "all" or p.site == "feature" else [p.identity_state]
        for p in pretexts
    ]
    rows = list(itertools.product(*choices))
    return torch.stack([class_scores_by_hand(model, run, sample, row) for row in rows]).mean(dim=0)


def rows_of_mode_all(pretexts: Sequence[Pretext], batch: int) -> list[tuple[int, tuple[int, ...]]]:
    """``(sample, states)`` of every output row of ``mode="all"``, in the documented order:
    row-major over (sample, input states in list order, feature states in list order)."""
    order = [i for i, p in enumerate(pretexts) if p.site == "input"]
    order += [i for i, p in enumerate(pretexts) if p.site == "feature"]
    rows = []
    for sample in range(batch):
        for combo in itertools.product(*(range(pretexts[i].num_states) for i in order)):
            states = [0] * len(pretexts)
            for column, value in zip(order, combo, strict=True):
                states[column] = value
            rows.append((sample, tuple(states)))
    return rows


# ------------------------------------------------------------------ RegionDrop (and friends) inside
RECIPES: dict[str, tuple[Callable[[], list[Pretext]], tuple[int, int]]] = {
    "region_drop": (lambda: [RegionDrop(grid=2, at="2")], (8, 6)),
    "rotation_region_channel": (
        lambda: [Rotation(), RegionDrop(grid=2, at="0", identity=True), ChannelDrop(k=2)],
        (5, 5),
    ),
    "channel_region_reversed": (
        lambda: [ChannelDrop(k=2, name="head_drop"), RegionDrop(grid=2, at="2"), Rotation()],
        (6, 6),
    ),
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_sample_mode_equals_the_loop(recipe: str) -> None:
    """Each output row is the backbone run by hand on its image with its states (catches
    site_reads_feature_index_not_column, compose_states_columns_reversed, and the pretext mutants
    at a site)."""
    make, (height, width) = RECIPES[recipe]
    pretext = Compose(make(), num_classes=N)
    model = trained(JointModel(small_cnn(), pretext, num_classes=N))
    images = raw_images(6, height, width)
    batch = pretext(images, torch.arange(6) % N, generator=torch.Generator().manual_seed(2))
    run = by_hand_on(model, images)
    with torch.no_grad():
        logits = model(batch.inputs, batch.states)
        for i in range(6):
            torch.testing.assert_close(logits[i], run(i, tuple(batch.states[i].tolist()))[0])
        # states that Compose did not draw (checked, read column by column) give the same rows
        torch.testing.assert_close(model(batch.inputs, batch.states.clone()), logits)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_mode_all_equals_the_loop(recipe: str) -> None:
    """``mode="all"``: row ``r`` is its sample under its states, in the documented order (catches
    site_expanded_states_wrong_rows, feature_factor_inserted_innermost, all_mode_* mutants)."""
    make, (height, width) = RECIPES[recipe]
    pretext = Compose(make(), num_classes=N, mode="all")
    model = trained(JointModel(small_cnn(), pretext, num_classes=N))
    images = raw_images(2, height, width)
    batch = pretext(images, torch.tensor([3, 1]))
    rows = rows_of_mode_all(pretext.pretexts, 2)
    assert [tuple(s) for s in batch.states.tolist()] == [states for _, states in rows]
    run = by_hand_on(model, images)
    with torch.no_grad():
        logits = model(batch.inputs, batch.states)
        assert logits.shape[0] == len(rows)
        for r, (sample, states) in enumerate(rows):
            torch.testing.assert_close(logits[r], run(sample, states)[0])


@pytest.mark.parametrize("aggregate", ["features", "all", "none", "marginal"])
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_predict_equals_the_loop(recipe: str, aggregate: str) -> None:
    """``predict`` against the average written by hand (catches predict_mean_over_wrong_copies,
    predict_skips_identity_state, space_offset_wrong_strides, the site mutants)."""
    make, (height, width) = RECIPES[recipe]
    model = trained(JointModel(small_cnn(), make(), num_classes=N)).eval()
    images = raw_images(2, height, width)
    got = model.predict(images, aggregate=aggregate)  # type: ignore[arg-type]
    run = by_hand_on(model, images)
    expected = torch.stack([predict_by_hand(model, run, i, aggregate) for i in range(2)])
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("aggregate", ["features", "all", "none"])
def test_one_matmul_predict_and_to_plain_equal_the_loop(aggregate: str) -> None:
    """ChannelDrop at the head only: predict runs one linear map; it and to_plain equal the loop
    (catches aggregate_blocks_class_major, aggregate_ignores_channel_scale, aggregate_bias_summed,
    predict_all_reads_first_input_block, to_plain_bias_not_copied)."""
    pretexts = [ChannelDrop(k=2), Rotation(), ChannelDrop(k=3, identity=True, name="second")]
    model = trained(JointModel(small_cnn(), pretexts, num_classes=N)).eval()
    images = raw_images(3, 6, 6)
    run = by_hand_on(model, images)
    expected = torch.stack([predict_by_hand(model, run, i, aggregate) for i in range(3)])
    torch.testing.assert_close(model.predict(images, aggregate=aggregate), expected)  # type: ignore[arg-type]
    if aggregate != "all":
        torch.testing.assert_close(model.to_plain(aggregate)(images), expected)  # type: ignore[arg-type]


def test_class_logits_by_hand() -> None:
    """``class_logits``: ``log Σ_t softmax(z)[(c, t)]`` per row (catches class_logits_not_normalised)."""
    model = JointModel(small_cnn(), [ChannelDrop(k=2), Rotation()], num_classes=N)
    z = 3 * torch.randn(4, N * 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = torch.tensor(
        [
            [math.log(sum(math.exp(v) for v in row[c * 8 : (c + 1) * 8]) / sum(math.exp(v) for v in row))
             for c in range(N)]
            for row in z.tolist()
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(model.class_logits(z), expected)


def test_widened_head_is_one_copy_of_the_classifier_per_state() -> None:
    """Row ``(c, s)`` of the wide head is row ``c`` of the classifier, for every state (catches
    head_blocks_tiled)."""
    backbone = small_cnn()
    old_weight, old_bias = backbone[6].weight.detach().clone(), backbone[6].bias.detach().clone()
    model = JointModel(backbone, [ChannelDrop(k=2), Rotation()], num_classes=N)
    sizes = model.space.sizes
    for c in range(N):
        for s1, s2 in itertools.product(range(2), range(4)):
            row = joint_column(sizes, c, (s1, s2))
            assert torch.equal(model.head.weight[row], old_weight[c])
            assert torch.equal(model.head.bias[row], old_bias[c])


# ------------------------------------------------------------------ self-distillation, both modes
def _distilled(mode: str) -> tuple[JointModel, Compose]:
    pretexts = [ChannelDrop(k=2), Rotation(), ChannelDrop(k=2, name="second", identity=True)]
    pretext = Compose(pretexts, num_classes=N, mode=mode)  # type: ignore[arg-type]
    return trained(JointModel(small_cnn(), pretext, num_classes=N, distill=True)), pretext


def teacher_by_hand(model: JointModel, run: Run, sample: int, states: Sequence[int]) -> Tensor:
    """The mean over every feature state ``t`` of ``z_t[(c, input states, t)]``."""
    pretexts = model.pretext.pretexts
    choices = [
        range(p.num_states) if p.site == "feature" else [s] for p, s in zip(pretexts, states, strict=True)
    ]
    rows = itertools.product(*choices)
    return torch.stack([class_scores_by_hand(model, run, sample, row) for row in rows]).mean(0)


@pytest.mark.parametrize("mode", ["sample", "all"])
def test_distillation_equals_the_loop(mode: str) -> None:
    """joint, student and teacher of every row against the loop, and the losses' gradients by value:
    the student's head gets ``Σ_r d_r f_rᵀ``, the joint head nothing through the teacher (catches
    student_tiled_in_all_mode, teacher_tiled_in_all_mode, teacher_reads_wrong_rows_in_all_mode,
    student_sees_dropped_features)."""
    model, pretext = _distilled(mode)
    images = raw_images(2, 6, 6)
    labels = torch.tensor([4, 1])
    batch = pretext(images, labels, generator=torch.Generator().manual_seed(3))
    out = model(batch.inputs, batch.states, return_plain=True)
    rows = (
        rows_of_mode_all(pretext.pretexts, 2)
        if mode == "all"
        else [(i, tuple(s)) for i, s in enumerate(batch.states.tolist())]
    )
    assert out.joint.shape[0] == out.plain.shape[0] == out.teacher.shape[0] == len(rows)
    assert not out.teacher.requires_grad
    features = []
    run = by_hand_on(model, images)
    with torch.no_grad():
        for r, (sample, states) in enumerate(rows):
            joint, f = run(sample, states)
            features.append(f)
            torch.testing.assert_close(out.joint[r], joint)
            torch.testing.assert_close(out.plain[r], model.plain_head(f))
            torch.testing.assert_close(out.teacher[r], teacher_by_hand(model, run, sample, states))

    loss = self_distillation_loss(out.plain, out.teacher, batch.target, temperature=2.0, reduction="sum")
    loss.backward()
    joint_grad = model.head.weight.grad
    assert joint_grad is None or torch.equal(joint_grad, torch.zeros_like(joint_grad))
    s, t = out.plain.detach(), out.teacher.detach()
    marginal = F.one_hot(labels[[sample for sample, _ in rows]], N).double()
    d_plain = (s.softmax(1) - marginal) + 2.0 * ((s / 2).softmax(1) - (t / 2).softmax(1))
    assert model.plain_head.weight.grad is not None
    torch.testing.assert_close(model.plain_head.weight.grad, d_plain.t() @ torch.stack(features))
    torch.testing.assert_close(model.plain_head.bias.grad, d_plain.sum(dim=0))


# ------------------------------------------------------------------ gradients by value
def test_training_step_gradients_by_value() -> None:
    """The joint head's gradient is ``(softmax(z) - p)ᵀ f̃ / B`` with ``f̃`` the dropped features; the
    first conv's gradient agrees with finite differences of the whole step."""
    pretext = Compose([Rotation(), RegionDrop(grid=2, at="2"), ChannelDrop(k=3)], num_classes=N)
    model = trained(JointModel(small_cnn(), pretext, num_classes=N))
    images = raw_images(4, 6, 6)
    batch = pretext(images, torch.tensor([0, 2, 4, 1]), generator=torch.Generator().manual_seed(4))
    batch = batch._replace(target=batch.target.mix(1, 0.7))  # a soft target: two labels per row
    logits = model(batch.inputs, batch.states)
    joint_cross_entropy(logits, batch.target).backward()

    dense = batch.target.dense().double()
    dropped = []
    for i in range(4):
        h = batch.inputs[i : i + 1]
        for layer in list(model.backbone)[:-1]:
            h = layer(h)
            if layer is model.backbone[2]:
                h = zero_cell(h[0], int(batch.states[i, 1]), 2).unsqueeze(0)
        dropped.append(zero_group(h[0], int(batch.states[i, 2]), 3))
    delta = (logits.detach().softmax(dim=1) - dense) / 4
    torch.testing.assert_close(model.head.weight.grad, delta.t() @ torch.stack(dropped).detach())
    torch.testing.assert_close(model.head.bias.grad, delta.sum(dim=0))

    conv = model.backbone[0]
    names = {"backbone.0.weight"}

    def loss_of(weight: Tensor) -> Tensor:
        params = {n: p for n, p in model.named_parameters() if n not in names}
        params["backbone.0.weight"] = weight
        z = torch.func.functional_call(model, params, (batch.inputs, batch.states.clone()))
        return joint_cross_entropy(z, batch.target)

    # finite differences (fast mode: along random directions) agree with the functional gradient,
    # and the functional gradient is the one the training step left on the conv
    weight = conv.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(loss_of, (weight,), fast_mode=True)
    (functional,) = torch.autograd.grad(loss_of(weight), [weight])
    assert conv.weight.grad is not None
    torch.testing.assert_close(conv.weight.grad, functional)
