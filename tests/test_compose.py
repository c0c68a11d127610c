"""Tests of Compose: the product space, the batch it returns in both modes, and its errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ipt_compose import (
    ChannelDrop,
    Compose,
    Cutout,
    JointTarget,
    LabelSpace,
    MixUp,
    Pretext,
    PretextBatch,
    Rotation,
)

FAST = settings(max_examples=25, deadline=None)

# Pretext lists mixing sites in every order; names are distinct.
RECIPES: dict[str, list[Pretext]] = {
    "drop": [ChannelDrop(k=4)],
    "rot": [Rotation()],
    "drop_rot": [ChannelDrop(k=4), Rotation()],
    "rot_drop": [Rotation(), ChannelDrop(k=3, identity=True)],
    "cut_rot": [Cutout(grid=2, identity=True), Rotation()],
    "drop_cut_drop_rot": [
        ChannelDrop(k=2),
        Cutout(grid=2),
        ChannelDrop(k=3, name="drop2", at="0"),
        Rotation(),
    ],
}


def _images(batch: int, seed: int = 0, side: int = 6) -> torch.Tensor:
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(seed)) + 1


def _apply_inputs(pretexts: tuple[Pretext, ...], image: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """One image through the input-site pretexts of a state row, in list order."""
    out = image.unsqueeze(0)
    for column, p in enumerate(pretexts):
        if p.site == "input":
            out = p.apply(out, row[column : column + 1])
    return out[0]


# ---------------------------------------------------------------------------------- description
def test_space_in_list_order() -> None:
    pretext = Compose([ChannelDrop(k=4), Rotation(), Cutout(grid=3, identity=True)])
    space = pretext.space(10)
    assert isinstance(space, LabelSpace)
    assert space.names == ("class", "channel_drop", "rotation", "cutout")
    assert space.sizes == (10, 4, 4, 10)
    assert space.size == 10 * 4 * 4 * 10
    assert pretext.num_states == 160
    assert Compose([Rotation(), ChannelDrop(k=4)], num_classes=3).space().names == (
        "class",
        "rotation",
        "channel_drop",
    )


def test_space_needs_num_classes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        Compose([Rotation()]).space()
    with pytest.raises(ValueError, match="disagrees"):
        Compose([Rotation()], num_classes=10).space(5)


def test_nested_compose_flattens() -> None:
    a, b, c = ChannelDrop(k=2), Rotation(), Cutout(grid=2)
    nested = Compose([Compose([a, b]), c], num_classes=5)
    assert nested.pretexts == (a, b, c)
    flat = Compose([a, b, c], num_classes=5)
    assert nested.space() == flat.space()
    images, labels = _images(4), torch.tensor([0, 1, 2, 3])
    one = nested(images, labels, generator=torch.Generator().manual_seed(1))
    two = flat(images, labels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(one.inputs, two.inputs)
    assert torch.equal(one.states, two.states)
    assert torch.equal(one.target.dense(), two.target.dense())
    # a nested Compose's duplicate names are caught too
    with pytest.raises(ValueError, match="share the name"):
        Compose([Compose([Rotation()]), Rotation()])


def test_batch_unpacks() -> None:
    batch = Compose([Rotation()], num_classes=3)(_images(2), torch.tensor([0, 2]))
    assert isinstance(batch, PretextBatch)
    inputs, states, target = batch
    assert inputs is batch.inputs and states is batch.states and target is batch.target
    assert isinstance(target, JointTarget)


def test_generator_reproducible() -> None:
    pretext = Compose([Cutout(grid=2), ChannelDrop(k=4), Rotation()], num_classes=4)
    images, labels = _images(16), torch.arange(16) % 4
    runs = [pretext(images, labels, generator=torch.Generator().manual_seed(9)) for _ in range(2)]
    assert torch.equal(runs[0].inputs, runs[1].inputs)
    assert torch.equal(runs[0].states, runs[1].states)
    other = pretext(images, labels, generator=torch.Generator().manual_seed(10))
    assert not torch.equal(runs[0].states, other.states)


def test_input_not_modified_in_place() -> None:
    images, labels = _images(8), torch.arange(8) % 3
    before = images.clone()
    for mode in ("sample", "all"):
        Compose([Cutout(grid=2), Rotation()], num_classes=3, mode=mode)(images, labels)  # type: ignore[arg-type]
    assert torch.equal(images, before)


# --------------------------------------------------------------------------------- sample mode
@FAST
@given(
    recipe=st.sampled_from(sorted(RECIPES)),
    batch=st.integers(1, 9),
    num_classes=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_sample_mode_rows_decode(recipe: str, batch: int, num_classes: int, seed: int) -> None:
    """Hard labels: the argmax of each target row decodes to (label, states row)."""
    pretext = Compose(RECIPES[recipe], num_classes=num_classes)
    gen = torch.Generator().manual_seed(seed)
    images = _images(batch, seed)
    labels = torch.randint(num_classes, (batch,), generator=gen)
    out = pretext(images, labels, generator=gen)
    n = len(pretext.pretexts)
    assert out.inputs.shape == images.shape
    assert out.states.shape == (batch, n) and out.states.dtype == torch.long
    for column, p in enumerate(pretext.pretexts):
        assert bool((out.states[:, column] >= 0).all() and (out.states[:, column] < p.num_states).all())
    dense = out.target.dense()
    assert dense.shape == (batch, pretext.space().size)
    torch.testing.assert_close(dense.sum(dim=1), torch.ones(batch))
    decoded = pretext.space().decode(dense.argmax(dim=1))
    assert torch.equal(decoded, torch.cat([labels.unsqueeze(1), out.states], dim=1))
    assert bool((dense.max(dim=1).values == 1).all())
    # the inputs are the images under the input-site states of their row, in list order
    for i in range(batch):
        assert torch.equal(out.inputs[i], _apply_inputs(pretext.pretexts, images[i], out.states[i]))


def test_sample_mode_hard_labels_without_num_classes() -> None:
    out = Compose([Rotation()])(_images(3), torch.tensor([0, 4, 2]))
    with pytest.raises(ValueError, match="num_classes"):
        out.target.dense()
    dense = out.target.dense(num_classes=5)
    assert dense.shape == (3, 20)


@FAST
@given(
    recipe=st.sampled_from(sorted(RECIPES)),
    batch=st.integers(1, 6),
    num_classes=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_soft_labels(recipe: str, batch: int, num_classes: int, seed: int) -> None:
    """Soft labels (B, N): the target is labels ⊗ onehot(states); marginalising gives labels."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.rand(batch, num_classes, generator=gen).softmax(dim=1)
    for given_n in (None, num_classes):
        pretext = Compose(RECIPES[recipe], num_classes=given_n)
        out = pretext(_images(batch, seed), labels, generator=gen)
        space = pretext.space(num_classes)
        dense = out.target.dense()
        assert dense.shape == (batch, space.size)
        torch.testing.assert_close(space.marginal(dense, ["class"]), labels)
        states_index = (out.states * torch.tensor(space.strides[1:])).sum(dim=1)
        expected = torch.zeros(batch, space.size)
        for i in range(batch):
            expected[i, torch.arange(num_classes) * space.strides[0] + states_index[i]] = labels[i]
        torch.testing.assert_close(dense, expected)


# ------------------------------------------------------------------------------------ mode="all"
def _reference_rows(pretexts: tuple[Pretext, ...], batch: int) -> list[tuple[int, tuple[int, ...]]]:
    """(sample, states in list order) of every output row, written from the documented order:
    row-major over (sample, input states in list order, feature states in list order)."""
    inputs = [i for i, p in enumerate(pretexts) if p.site == "input"]
    features = [i for i, p in enumerate(pretexts) if p.site == "feature"]
    order = inputs + features
    rows = []
    for sample in range(batch):
        for combo in itertools.product(*(range(pretexts[i].num_states) for i in order)):
            states = [0] * len(pretexts)
            for column, value in zip(order, combo, strict=True):
                states[column] = value
            rows.append((sample, tuple(states)))
    return rows


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("batch", [1, 3])
def test_all_mode_row_order(recipe: str, batch: int) -> None:
    pretext = Compose(RECIPES[recipe], num_classes=4, mode="all")
    images, labels = _images(batch), torch.arange(batch) % 4
    out = pretext(images, labels)
    pretexts = pretext.pretexts
    k_in = math.prod(p.num_states for p in pretexts if p.site == "input")
    k_feat = math.prod(p.num_states for p in pretexts if p.site == "feature")
    rows = _reference_rows(pretexts, batch)
    assert out.inputs.shape == (batch * k_in, *images.shape[1:])
    assert out.states.shape == (batch * k_in * k_feat, len(pretexts))
    assert out.target.batch_size == batch * k_in * k_feat
    # each (sample, states) once, in the documented order
    assert [tuple(r) for r in out.states.tolist()] == [states for _, states in rows]
    assert len(set(rows)) == len(rows) == batch * pretext.num_states
    # target row r: (label of its sample, its states)
    decoded = pretext.space().decode(out.target.dense().argmax(dim=1))
    expected = torch.tensor([[int(labels[s]), *states] for s, states in rows])
    assert torch.equal(decoded, expected)
    # output row r comes from input row r // K_feat, whose image is its sample under its input states
    for r, (sample, states) in enumerate(rows):
        input_row = out.inputs[r // k_feat]
        assert torch.equal(input_row, _apply_inputs(pretexts, images[sample], torch.tensor(states)))
        feature_columns = [c for c, p in enumerate(pretexts) if p.site == "feature"]
        feature_sizes = [pretexts[c].num_states for c in feature_columns]
        if feature_columns:
            flat = 0
            for c, size in zip(feature_columns, feature_sizes, strict=True):
                flat = flat * size + states[c]
            assert flat == r % k_feat


def test_all_mode_soft_labels() -> None:
    labels = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    out = Compose([Rotation(), ChannelDrop(k=2)], mode="all")(_images(2), labels)
    dense = out.target.dense()
    assert dense.shape == (16, 16)
    space = Compose([Rotation(), ChannelDrop(k=2)]).space(2)
    torch.testing.assert_close(space.marginal(dense, ["class"]), labels.repeat_interleave(8, dim=0))


# ------------------------------------------------------------------------------------- bad input
def test_batch_sizes_differ() -> None:
    pretext = Compose([Rotation()], num_classes=3)
    with pytest.raises(ValueError, match=r"same batch size.*4 images"):
        pretext(_images(4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="same batch size"):
        pretext(_images(2), torch.tensor(1))
    with pytest.raises(ValueError, match="same batch size"):
        pretext(_images(2), torch.full((3, 3), 1 / 3))


@pytest.mark.parametrize("mode", ["sample", "all"])
def test_labels_out_of_range(mode: str) -> None:
    with pytest.raises(ValueError, match="labels"):
        Compose([Rotation()], num_classes=3, mode=mode)(_images(2), torch.tensor([0, 3]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels"):
        Compose([Rotation()], num_classes=3, mode=mode)(_images(2), torch.tensor([-1, 0]))  # type: ignore[arg-type]
    # without a class count the check happens at dense(num_classes=…) at the latest
    out = Compose([Rotation()], mode=mode)(_images(2), torch.tensor([0, 3]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels"):
        out.target.dense(num_classes=3)


def test_empty_list() -> None:
    with pytest.raises(ValueError, match="at least one pretext"):
        Compose([])
    with pytest.raises(ValueError, match="at least one pretext"):
        Compose([MixUp()])


def test_not_a_pretext() -> None:
    with pytest.raises(TypeError, match=r"pretexts\[1\].*Conv2d"):
        Compose([Rotation(), torch.nn.Conv2d(3, 3, 1)])
    with pytest.raises(TypeError, match=r"pretexts\[0\].*str"):
        Compose(["rotation"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="wrap a single pretext in a list"):
        Compose(Rotation())  # type: ignore[arg-type]


def test_duplicate_names() -> None:
    with pytest.raises(ValueError, match=r"share the name 'channel_drop'.*name="):
        Compose([ChannelDrop(k=4), ChannelDrop(k=2, at="layer3")])
    ok = Compose([ChannelDrop(k=4), ChannelDrop(k=2, at="layer3", name="drop_l3")])
    assert ok.space(2).names == ("class", "channel_drop", "drop_l3")


@pytest.mark.parametrize("shape", [(3, 6, 6), (2, 3, 6), (2, 1, 3, 6, 6)])
def test_images_not_4d(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        Compose([ChannelDrop(k=2)], num_classes=3)(torch.rand(shape), torch.zeros(shape[0], dtype=torch.long))


def test_images_and_labels_types() -> None:
    pretext = Compose([Rotation()], num_classes=3)
    with pytest.raises(TypeError, match="images"):
        pretext([[0.0]], torch.tensor([0]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="labels"):
        pretext(_images(2), [0, 1])  # type: ignore[arg-type]


def test_soft_label_width_mismatch() -> None:
    with pytest.raises(ValueError, match=r"4 classes.*num_classes is 3"):
        Compose([Rotation()], num_classes=3)(_images(2), torch.full((2, 4), 0.25))


def test_soft_labels_must_be_distributions() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        Compose([Rotation()], num_classes=3)(_images(2), torch.full((2, 3), 0.5))


def test_mixer_in_all_mode() -> None:
    with pytest.raises(ValueError, match=r"mode='all'.*pair copies"):
        Compose([MixUp(), Rotation()], mode="all")


def test_mixer_after_feature_pretext() -> None:
    with pytest.raises(ValueError, match=r"cannot follow the feature-site pretext 'channel_drop'.*before"):
        Compose([ChannelDrop(k=4), MixUp()])
    # before it, or after an input pretext, is fine
    Compose([MixUp(), ChannelDrop(k=4)])
    Compose([Rotation(), MixUp(), ChannelDrop(k=4)])


def test_bad_constructor_args() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        Compose([Rotation()], mode="every")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        Compose([Rotation()], num_classes=0)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        Compose([Rotation()], num_classes=2.0)  # type: ignore[arg-type]
