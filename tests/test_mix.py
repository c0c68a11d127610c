"""Tests of the joint-space mixers (MixUp, CutMix), their place inside Compose, and from_kornia.

The order laws of design item 5 are property tests: mixing then applying a pretext equals applying
the pretext then mixing whenever paired rows share their state; rows always sum to 1; the class
marginal is what the mixer alone gives.
"""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.transforms import v2

from ipt_compose import (
    ChannelDrop,
    Compose,
    CutMix,
    Cutout,
    JointTarget,
    MixUp,
    Rotation,
    from_kornia,
    joint_cross_entropy,
)

PROPERTY = settings(max_examples=30, deadline=None)
MIXERS = [MixUp, CutMix]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(seed: int, batch: int, num_classes: int, size: int = 8):  # type: ignore[no-untyped-def]
    g = _gen(seed)
    images = torch.rand(batch, 3, size, size, generator=g, dtype=torch.float64)
    labels = torch.randint(num_classes, (batch,), generator=g)
    return images, labels


def _assert_distributions(dense: torch.Tensor) -> None:
    assert (dense >= 0).all()
    torch.testing.assert_close(dense.sum(dim=1), torch.ones(dense.shape[0], dtype=dense.dtype))


def _inside(box: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean ``(size, size)`` mask of an ``(x1, y1, x2, y2)`` box."""
    x1, y1, x2, y2 = box.tolist()
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[y1:y2, x1:x2] = True
    return mask


# ---------------------------------------------------------------------------------------- MixUp
class TestMixUp:
    @given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 7), per_sample=st.booleans())
    @PROPERTY
    def test_images_and_target_follow_lambda(self, seed: int, batch: int, per_sample: bool) -> None:
        images, labels = _batch(seed, batch, 5)
        mixer = MixUp(alpha=0.7, per_sample=per_sample)
        params = mixer.sample_params(images, generator=_gen(seed))
        mixed, target = mixer.apply(images, JointTarget.from_labels(labels, 5), params)
        lam = params["lam"].double()
        assert lam.shape == ((batch,) if per_sample else ())
        weight = lam.view(-1, 1, 1, 1) if per_sample else lam
        torch.testing.assert_close(mixed, weight * images + (1 - weight) * images.roll(1, 0))
        own = F.one_hot(labels, 5).double()
        lam_col = lam.view(-1, 1) if per_sample else lam
        expected = lam_col * own + (1 - lam_col) * own.roll(1, 0)
        torch.testing.assert_close(target.dense().double(), expected)
        _assert_distributions(target.dense())
        assert target.weight.shape == (batch, 2)

    def test_per_sample_draws_one_lambda_per_row(self) -> None:
        params = MixUp(per_sample=True).sample_params(torch.rand(9, 1, 2, 2), generator=_gen(0))
        assert params["lam"].shape == (9,)
        assert params["lam"].unique().numel() == 9

    def test_batch_of_one_is_unchanged(self) -> None:
        images = torch.rand(1, 3, 4, 4)
        mixed, target = MixUp()(images, torch.tensor([2]), num_classes=3, generator=_gen(1))
        torch.testing.assert_close(mixed, images)
        torch.testing.assert_close(target.dense(), torch.tensor([[0.0, 0.0, 1.0]]))

    def test_generator_reproducible(self) -> None:
        images, labels = _batch(0, 5, 4)
        for mixer in (MixUp(), MixUp(per_sample=True)):
            a = mixer(images, labels, num_classes=4, generator=_gen(3))
            b = mixer(images, labels, num_classes=4, generator=_gen(3))
            c = mixer(images, labels, num_classes=4, generator=_gen(4))
            torch.testing.assert_close(a[0], b[0])
            torch.testing.assert_close(a[1].dense(), b[1].dense())
            assert not torch.equal(a[0], c[0])

    def test_does_not_modify_input_and_pickles(self) -> None:
        images, labels = _batch(0, 4, 3)
        before = images.clone()
        MixUp()(images, labels, num_classes=3)
        torch.testing.assert_close(images, before)
        clone = pickle.loads(pickle.dumps(MixUp(0.4, per_sample=True)))
        assert repr(clone) == "MixUp(alpha=0.4, per_sample=True)"

    def test_soft_labels_stay_dense(self) -> None:
        soft = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
        _, target = MixUp()(torch.rand(2, 1, 2, 2), soft, generator=_gen(0))
        assert target.is_dense
        _assert_distributions(target.dense())


# --------------------------------------------------------------------------------------- CutMix
class TestCutMix:
    @given(seed=st.integers(0, 2**31 - 1), size=st.integers(1, 9), alpha=st.floats(0.1, 4.0))
    @PROPERTY
    def test_box_follows_torchvision_rule(self, seed: int, size: int, alpha: float) -> None:
        box = CutMix(alpha).sample_params(torch.rand(2, 1, size, size), generator=_gen(seed))["box"]
        assert box.dtype == torch.long and box.shape == (4,)
        x1, y1, x2, y2 = box.tolist()
        assert 0 <= x1 <= x2 <= size and 0 <= y1 <= y2 <= size

    @given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 7), per_sample=st.booleans())
    @PROPERTY
    def test_lambda_is_one_minus_box_area(self, seed: int, batch: int, per_sample: bool) -> None:
        images, labels = _batch(seed, batch, 6, size=7)
        mixer = CutMix(per_sample=per_sample)
        box = mixer.sample_params(images, generator=_gen(seed))["box"]
        mixed, target = mixer.apply(images, JointTarget.from_labels(labels, 6), {"box": box})
        boxes = box if per_sample else box.expand(batch, 4)
        for i in range(batch):
            inside = _inside(boxes[i], 7)
            src = images[(i - 1) % batch]
            torch.testing.assert_close(mixed[i][:, inside], src[:, inside])
            torch.testing.assert_close(mixed[i][:, ~inside], images[i][:, ~inside])
            lam = 1 - inside.sum().item() / 49
            torch.testing.assert_close(target.weight[i, 0].item(), lam)
        _assert_distributions(target.dense())

    def test_per_sample_boxes_and_lambdas_differ_per_row(self) -> None:
        images = torch.rand(9, 1, 16, 16)
        box = CutMix(per_sample=True).sample_params(images, generator=_gen(0))["box"]
        assert box.shape == (9, 4)
        assert box.unique(dim=0).shape[0] > 1
        _, target = CutMix().apply(images, JointTarget.from_labels(torch.arange(9), 9), {"box": box})
        areas = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
        torch.testing.assert_close(target.weight[:, 0], 1 - areas.float() / 256)
        assert target.weight[:, 0].unique().numel() > 1

    @pytest.mark.parametrize("batch", [1, 3, 5])
    def test_any_batch_size(self, batch: int) -> None:
        images, labels = _batch(2, batch, 4)
        for per_sample in (False, True):
            mixed, target = CutMix(per_sample=per_sample)(images, labels, num_classes=4, generator=_gen(5))
            assert mixed.shape == images.shape
            _assert_distributions(target.dense())
        if batch == 1:
            torch.testing.assert_close(mixed, images)

    def test_matches_torchvision_for_same_box_and_lambda(self) -> None:
        num_classes, found = 5, 0
        for seed in range(20):
            images = torch.rand(4, 3, 12, 12) + 1.0  # distinct pixels: every pasted one differs
            labels = torch.tensor([0, 3, 1, 4])
            torch.manual_seed(seed)
            tv_images, tv_dense = v2.CutMix(num_classes=num_classes)(images, labels)
            changed = (tv_images != images).any(dim=(0, 1))
            if not changed.any():
                continue  # λ = 1: nothing pasted, no box to recover
            found += 1
            rows, cols = changed.nonzero(as_tuple=True)
            box = torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
            ours, target = CutMix().apply(images, JointTarget.from_labels(labels, num_classes), {"box": box})
            torch.testing.assert_close(ours, tv_images)
            torch.testing.assert_close(target.dense(), tv_dense)
        assert found >= 10

    def test_generator_reproducible(self) -> None:
        images, labels = _batch(0, 6, 4, size=16)
        for mixer in (CutMix(), CutMix(per_sample=True)):
            a = mixer(images, labels, num_classes=4, generator=_gen(11))
            b = mixer(images, labels, num_classes=4, generator=_gen(11))
            torch.testing.assert_close(a[0], b[0])
            torch.testing.assert_close(a[1].dense(), b[1].dense())


# ------------------------------------------------------------------------------------ order laws
def _centred_box(size: int, half: int) -> torch.Tensor:
    centre = size // 2
    return torch.tensor([centre - half, centre - half, centre + half, centre + half])


class TestOrderLaws:
    """Design item 5: mix-then-pretext vs pretext-then-mix."""

    @given(
        seed=st.integers(0, 2**31 - 1),
        batch=st.integers(1, 6),
        state=st.integers(0, 3),
        mixer=st.sampled_from(MIXERS),
        half=st.integers(0, 4),
    )
    @PROPERTY
    def test_orders_agree_when_paired_states_agree(
        self, seed: int, batch: int, state: int, mixer: type, half: int
    ) -> None:
        images, labels = _batch(seed, batch, 4)
        rotation, mix = Rotation(), mixer()
        params = (
            {"box": _centred_box(8, half)}  # a centred square box is invariant under rot90
            if mixer is CutMix
            else mix.sample_params(images, generator=_gen(seed))
        )
        states = torch.full((batch,), state)
        target = JointTarget.from_labels(labels, 4)
        # mix, then pretext
        mixed, mixed_target = mix.apply(images, target, params)
        first = rotation.apply(mixed, states), mixed_target.lift(states, "rotation", 4)
        # pretext, then mix
        lifted = target.lift(states, "rotation", 4)
        second = mix.apply(rotation.apply(images, states), lifted, params)
        torch.testing.assert_close(first[0], second[0])
        torch.testing.assert_close(first[1].dense(), second[1].dense())

    @given(seed=st.integers(0, 2**31 - 1), batch=st.integers(2, 6), mixer=st.sampled_from(MIXERS))
    @PROPERTY
    def test_pretext_then_mix_mixes_pretext_labels(self, seed: int, batch: int, mixer: type) -> None:
        images, labels = _batch(seed, batch, 3)
        g = _gen(seed)
        states = Rotation().sample_states(batch, generator=g)
        mix = mixer()
        params = mix.sample_params(images, generator=g)
        target = JointTarget.from_labels(labels, 3)
        _, after = mix.apply(images, target.lift(states, "rotation", 4), params)
        mixed_first = mix.apply(images, target, params)[1].lift(states, "rotation", 4)
        lam = after.weight[:, 0].double()
        onehot = F.one_hot(states, 4).double()
        rot_after = after.marginal(["class", "rotation"]).dense().view(batch, 3, 4).sum(1)
        torch.testing.assert_close(
            rot_after.double(), lam[:, None] * onehot + (1 - lam[:, None]) * onehot.roll(1, 0)
        )
        rot_first = mixed_first.dense().view(batch, 3, 4).sum(1)
        torch.testing.assert_close(rot_first.double(), onehot)  # one state per mixed image
        # both orders have the same class marginal
        torch.testing.assert_close(after.marginal(["class"]).dense(), mixed_first.marginal(["class"]).dense())

    @given(
        seed=st.integers(0, 2**31 - 1),
        batch=st.integers(1, 6),
        mixer=st.sampled_from(MIXERS),
        first=st.booleans(),
        per_sample=st.booleans(),
    )
    @PROPERTY
    def test_compose_class_marginal_is_the_mixer_alone(
        self, seed: int, batch: int, mixer: type, first: bool, per_sample: bool
    ) -> None:
        images, labels = _batch(seed, batch, 5)
        rotation, mix = Rotation(), mixer(per_sample=per_sample)
        items = [mix, rotation, ChannelDrop(k=2)] if first else [rotation, mix, ChannelDrop(k=2)]
        out = Compose(items, num_classes=5)(images, labels, generator=_gen(seed))
        # replay Compose's draws, in list order, from the same seed
        g = _gen(seed)
        if not first:
            rotation.sample_states(batch, generator=g)
        params = mix.sample_params(images, generator=g)
        _, alone = mix.apply(images, JointTarget.from_labels(labels, 5), params)
        dense = out.target.dense()
        assert dense.shape == (batch, 5 * 4 * 2)
        _assert_distributions(dense)
        torch.testing.assert_close(out.target.marginal(["class"]).dense(), alone.dense())
        assert out.target.weight.shape[1] <= 2


# -------------------------------------------------------------------------------- inside Compose
class TestComposeWithMixers:
    def test_mixing_twice_keeps_at_most_four_components(self) -> None:
        images, labels = _batch(0, 5, 10, size=16)
        pretext = Compose([MixUp(), Rotation(), CutMix(per_sample=True), ChannelDrop(k=4)], num_classes=10)
        batch = pretext(images, labels, generator=_gen(0))
        assert batch.target.weight.shape == (5, 4)
        assert (batch.target.weight > 0).sum(dim=1).max() <= 4
        _assert_distributions(batch.target.dense())

    def test_loss_never_builds_the_dense_target(self, monkeypatch: pytest.MonkeyPatch) -> None:
        images, labels = _batch(1, 6, 100, size=8)
        pretext = Compose([MixUp(), Rotation(), CutMix(), ChannelDrop(k=4)], num_classes=100)
        batch = pretext(images, labels, generator=_gen(1))
        logits = torch.randn(6, 1600, dtype=torch.float64)
        expected = F.cross_entropy(logits, batch.target.dense())

        def refuse(*args: object, **kwargs: object) -> torch.Tensor:
            raise AssertionError("joint_cross_entropy built the dense (B, N*K) target")

        monkeypatch.setattr(JointTarget, "dense", refuse)
        torch.testing.assert_close(joint_cross_entropy(logits, batch.target), expected)

    @pytest.mark.parametrize("mixer", [MixUp(), CutMix(), v2.MixUp(num_classes=3)])
    def test_mixer_after_feature_pretext_is_refused(self, mixer: object) -> None:
        with pytest.raises(ValueError, match="feature"):
            Compose([Rotation(), ChannelDrop(k=4), mixer])

    def test_mixer_refused_in_mode_all(self) -> None:
        with pytest.raises(ValueError, match="mode='all'"):
            Compose([MixUp(), Rotation()], mode="all")

    def test_mixer_after_cutout(self) -> None:
        images, labels = _batch(2, 3, 4)
        batch = Compose([Cutout(grid=2), CutMix()], num_classes=4)(images, labels)
        _assert_distributions(batch.target.dense())

    def test_generator_reproducible(self) -> None:
        images, labels = _batch(3, 4, 4, size=16)
        pretext = Compose([CutMix(), Rotation(), MixUp(per_sample=True)], num_classes=4)
        a = pretext(images, labels, generator=_gen(9))
        b = pretext(images, labels, generator=_gen(9))
        torch.testing.assert_close(a.inputs, b.inputs)
        torch.testing.assert_close(a.target.dense(), b.target.dense())
        assert torch.equal(a.states, b.states)

    def test_kornia_target_as_labels(self) -> None:
        target = from_kornia(torch.tensor([[0.0, 1.0, 0.25], [1.0, 0.0, 0.25]]), 2)
        batch = Compose([Rotation()], num_classes=2)(torch.rand(2, 1, 4, 4), target)
        torch.testing.assert_close(batch.target.marginal(["class"]).dense(), target.dense())
        lifted = target.lift(torch.tensor([0, 1]), "rotation", 4)
        with pytest.raises(ValueError, match="'class' alone"):
            Compose([Rotation()])(torch.rand(2, 1, 4, 4), lifted)
        with pytest.raises(ValueError, match="agree"):
            Compose([Rotation()], num_classes=3)(torch.rand(2, 1, 4, 4), target)


# ------------------------------------------------------------------------------------ from_kornia
class TestFromKornia:
    def test_mixup_triples_paired_lambda(self) -> None:
        triples = torch.tensor([[0.0, 2.0, 0.3], [2.0, 1.0, 0.0], [1.0, 1.0, 0.9]])
        expected = torch.tensor([[0.7, 0.0, 0.3], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        torch.testing.assert_close(from_kornia(triples, 3).dense(), expected)
        own = torch.tensor([[0.3, 0.0, 0.7], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
        torch.testing.assert_close(from_kornia(triples, 3, lambda_weights="own").dense(), own)

    def test_rounds_compose_in_order(self) -> None:
        rounds = torch.tensor([[[0.0, 1.0, 0.5]], [[0.0, 2.0, 0.25]]])
        target = from_kornia(rounds, 3)
        assert target.index.tolist() == [[0, 1, 2]]
        # round 1 keeps 1/2 of row 0, round 2 keeps 3/4 of what was there
        torch.testing.assert_close(target.dense(), torch.tensor([[0.375, 0.375, 0.25]]))
        own = from_kornia(rounds, 3, lambda_weights="own").dense()
        torch.testing.assert_close(own, torch.tensor([[0.125, 0.125, 0.75]]))

    def test_unknown_class_count(self) -> None:
        target = from_kornia(torch.tensor([[0.0, 7.0, 0.5]]))
        assert target.num_classes is None
        torch.testing.assert_close(target.dense(8)[0, 7], torch.tensor(0.5))

    @pytest.mark.parametrize(
        ("labels", "error", "match"),
        [
            (torch.zeros(4, 2), ValueError, "triples"),
            (torch.zeros(4), ValueError, "triples"),
            (torch.zeros(2, 2, 2, 3), ValueError, "triples"),
            (torch.zeros(0, 4, 3), ValueError, "triples"),
            (torch.zeros(2, 3, dtype=torch.long), TypeError, "floating"),
            (torch.tensor([[0.0, 1.0, 1.5]]), ValueError, "λ"),
            (torch.tensor([[0.0, 1.0, -0.1]]), ValueError, "λ"),
            (torch.tensor([[0.0, 1.0, float("nan")]]), ValueError, "λ"),
            (torch.tensor([[0.5, 1.0, 0.5]]), ValueError, "integer"),
            (torch.tensor([[-1.0, 1.0, 0.5]]), ValueError, "non-negative"),
            (torch.tensor([[0.0, 3.0, 0.5]]), ValueError, "< 3"),
            (torch.tensor([[[0.0, 1.0, 0.5]], [[1.0, 1.0, 0.5]]]), ValueError, "across rounds"),
        ],
    )
    def test_bad_input(self, labels: torch.Tensor, error: type, match: str) -> None:
        with pytest.raises(error, match=match):
            from_kornia(labels, 3)

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="lambda_weights"):
            from_kornia(torch.zeros(1, 3), 3, lambda_weights="mine")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"torch\.Tensor"):
            from_kornia([[0.0, 1.0, 0.5]], 3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="num_classes"):
            from_kornia(torch.zeros(1, 3), 0)


# ------------------------------------------------------------------------------------ bad input
class TestBadInput:
    @pytest.mark.parametrize("mixer", MIXERS)
    @pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
    def test_alpha_must_be_positive(self, mixer: type, alpha: float) -> None:
        with pytest.raises(ValueError, match="alpha"):
            mixer(alpha)

    @pytest.mark.parametrize("mixer", MIXERS)
    def test_alpha_and_per_sample_types(self, mixer: type) -> None:
        with pytest.raises(TypeError, match="alpha"):
            mixer("1.0")
        with pytest.raises(TypeError, match="alpha"):
            mixer(True)
        with pytest.raises(TypeError, match="per_sample"):
            mixer(per_sample=1)

    @pytest.mark.parametrize("mixer", [MixUp(), CutMix(), v2.CutMix(num_classes=3)])
    def test_images_must_be_float(self, mixer: object) -> None:
        images = torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8)
        with pytest.raises(TypeError, match="floating point"):
            Compose([mixer, Rotation()], num_classes=3)(images, torch.tensor([0, 1]))

    @pytest.mark.parametrize("mixer", MIXERS)
    def test_image_and_label_batches_must_agree(self, mixer: type) -> None:
        with pytest.raises(ValueError, match="batch size"):
            mixer()(torch.rand(3, 1, 4, 4), torch.tensor([0, 1]), num_classes=2)
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            mixer()(torch.rand(3, 4, 4), torch.tensor([0, 1, 1]), num_classes=2)

    @pytest.mark.parametrize(
        ("box", "error", "match"),
        [
            (torch.tensor([0, 0, 2]), ValueError, "shape"),
            (torch.zeros(3, 4, dtype=torch.long), ValueError, "shape"),
            (torch.zeros(2, 2, 4, dtype=torch.long), ValueError, "shape"),
            (torch.tensor([0.0, 0.0, 2.0, 2.0]), TypeError, "integer"),
            (torch.tensor([0, 0, 5, 2]), ValueError, "x2 <= 4"),
            (torch.tensor([3, 0, 1, 2]), ValueError, "x1 <= x2"),
            (torch.tensor([0, -1, 2, 2]), ValueError, "0 <= y1"),
        ],
    )
    def test_bad_box(self, box: torch.Tensor, error: type, match: str) -> None:
        target = JointTarget.from_labels(torch.tensor([0, 1]), 2)
        with pytest.raises(error, match=match):
            CutMix().apply(torch.rand(2, 1, 4, 4), target, {"box": box})

    def test_bad_lambda(self) -> None:
        target = JointTarget.from_labels(torch.tensor([0, 1]), 2)
        with pytest.raises(ValueError, match="shape"):
            MixUp().apply(torch.rand(2, 1, 4, 4), target, {"lam": torch.rand(3)})
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            MixUp().apply(torch.rand(2, 1, 4, 4), target, {"lam": torch.tensor(1.5)})
