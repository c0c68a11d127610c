"""Interop with the mixers users already run: torchvision v2, timm ``Mixup`` and kornia.

Soft labels from torchvision and timm go straight into ``Compose``; torchvision's mixers also work
inside ``Compose``; kornia's label triples convert with :func:`ipt_compose.from_kornia` and give
the loss kornia documents. timm and kornia tests skip when the package is absent.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ipt_compose import ChannelDrop, Compose, JointTarget, Rotation, from_kornia, joint_cross_entropy


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_lifts(batch_target: JointTarget, soft: torch.Tensor) -> None:
    """The joint target's class marginal is ``soft`` and its rows are distributions."""
    dense = batch_target.dense()
    assert (dense >= 0).all()
    torch.testing.assert_close(dense.sum(dim=1), torch.ones(dense.shape[0]))
    torch.testing.assert_close(batch_target.marginal(["class"]).dense(), soft)


# ------------------------------------------------------------------------------------ torchvision
class TestTorchvision:
    @pytest.mark.parametrize("mixer", [v2.MixUp, v2.CutMix])
    def test_soft_labels_go_straight_into_compose(self, mixer: type) -> None:
        torch.manual_seed(0)
        images, labels = torch.rand(6, 3, 8, 8), torch.randint(10, (6,))
        mixed, soft = mixer(num_classes=10)(images, labels)
        pretext = Compose([ChannelDrop(k=4), Rotation()], num_classes=10)
        batch = pretext(mixed, soft, generator=_gen(0))
        _assert_lifts(batch.target, soft)
        logits = torch.randn(6, 160)
        torch.testing.assert_close(
            joint_cross_entropy(logits, batch.target), F.cross_entropy(logits, batch.target.dense())
        )

    @pytest.mark.parametrize("mixer", [v2.MixUp, v2.CutMix])
    @pytest.mark.parametrize("batch_size", [1, 2, 5, 8])
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_inside_compose_equals_torchvision_on_dense_joint_labels(
        self, mixer: type, batch_size: int, seed: int
    ) -> None:
        num_classes = 3
        images = torch.rand(batch_size, 2, 8, 8, generator=_gen(100 + seed))
        labels = torch.randint(num_classes, (batch_size,), generator=_gen(200 + seed))
        pretext = Compose([Rotation(), mixer(num_classes=num_classes)], num_classes=num_classes)
        torch.manual_seed(seed)
        batch = pretext(images, labels, generator=_gen(seed))  # generator: states; global: tv
        # reference: torchvision itself mixes the dense joint labels of the rotated batch
        states = Rotation().sample_states(batch_size, generator=_gen(seed))
        rotated = Rotation().apply(images, states)
        joint = JointTarget.from_labels(labels, num_classes).lift(states, "rotation", 4).dense()
        torch.manual_seed(seed)
        ref_images, ref_dense = mixer(num_classes=num_classes * 4)(rotated, joint)
        torch.testing.assert_close(batch.inputs, ref_images)
        torch.testing.assert_close(batch.target.dense(), ref_dense)
        assert batch.target.weight.shape[1] <= 2  # stays sparse: never the (B, N*K) labels

    def test_before_pretext_mixes_class_labels(self) -> None:
        images, labels = torch.rand(4, 1, 8, 8, generator=_gen(3)), torch.tensor([0, 1, 2, 3])
        torch.manual_seed(3)
        batch = Compose([v2.CutMix(num_classes=4), Rotation()], num_classes=4)(images, labels)
        torch.manual_seed(3)
        _, soft = v2.CutMix(num_classes=4)(images, labels)
        _assert_lifts(batch.target, soft)
        rotation = batch.target.dense().view(4, 4, 4).sum(dim=1)
        torch.testing.assert_close(rotation, F.one_hot(batch.states[:, 0], 4).float())


# ------------------------------------------------------------------------------------------ timm
class TestTimm:
    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    @pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
    @pytest.mark.parametrize("mix", [{"mixup_alpha": 1.0}, {"mixup_alpha": 0.0, "cutmix_alpha": 1.0}])
    def test_smoothed_targets_lift_exactly(self, smoothing: float, mode: str, mix: dict[str, float]) -> None:
        timm_mixup = pytest.importorskip("timm.data.mixup")
        import numpy as np

        np.random.seed(0)
        torch.manual_seed(0)
        mixup = timm_mixup.Mixup(**mix, label_smoothing=smoothing, num_classes=10, mode=mode, prob=1.0)
        images, labels = torch.rand(6, 3, 8, 8), torch.randint(10, (6,))
        mixed, soft = mixup(images.clone(), labels)
        assert soft.shape == (6, 10)
        pretext = Compose([ChannelDrop(k=4), Rotation()], num_classes=10)
        batch = pretext(mixed, soft, generator=_gen(0))
        _assert_lifts(batch.target, soft)
        torch.testing.assert_close(batch.inputs, Rotation().apply(mixed, batch.states[:, 1]))
        logits = torch.randn(6, 160)
        torch.testing.assert_close(
            joint_cross_entropy(logits, batch.target), F.cross_entropy(logits, batch.target.dense())
        )


# ---------------------------------------------------------------------------------------- kornia
def _kornia_mixup_loss(y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """kornia's documented ``loss_mixup`` (RandomMixUpV2 docstring), verbatim in substance."""
    loss_a = F.cross_entropy(logits, y[:, 0].long(), reduction="none")
    loss_b = F.cross_entropy(logits, y[:, 1].long(), reduction="none")
    return ((1 - y[:, 2]) * loss_a + y[:, 2] * loss_b).mean()


def _kornia_cutmix_label(y: torch.Tensor, num_classes: int, own_lambda: bool) -> torch.Tensor:
    """kornia's documented ``cutmix_label`` recipe (its first RandomCutMix), on V2's triples.

    ``lb = lb * keep + onehot(permuted) * (1 - keep)`` round after round, with ``keep`` the weight
    of what the row showed before the round (``λ`` if it weights the own label, ``1 - λ`` if not).
    """
    lb = F.one_hot(y[0, :, 0].long(), num_classes).to(y.dtype)
    for out_label in y:
        keep = out_label[:, 2] if own_lambda else 1 - out_label[:, 2]
        permuted = F.one_hot(out_label[:, 1].long(), num_classes).to(y.dtype)
        lb = lb * keep[:, None] + permuted * (1 - keep[:, None])
    return lb


def _onehot_images(batch: int, size: int) -> torch.Tensor:
    """Image ``i`` is 1 in channel ``i``: channel means of a mix are the exact pixel shares."""
    return torch.eye(batch).view(batch, batch, 1, 1).expand(batch, batch, size, size).contiguous()


def _cutmix(kornia_aug, num_mix: int, correct: bool):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # use_correct_lambda=False warns
        return kornia_aug.RandomCutMixV2(
            num_mix=num_mix, data_keys=["input", "class"], use_correct_lambda=correct
        )


class TestKornia:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_mixup_loss_equals_kornia_recipe(self, seed: int) -> None:
        K = pytest.importorskip("kornia.augmentation")
        torch.manual_seed(seed)
        images, labels = torch.rand(6, 3, 8, 8), torch.randint(10, (6,))
        mixed, y = K.RandomMixUpV2(data_keys=["input", "class"])(images, labels)
        assert y.shape == (6, 3)
        logits = torch.randn(6, 10)
        target = from_kornia(y, 10)
        torch.testing.assert_close(joint_cross_entropy(logits, target), _kornia_mixup_loss(y, logits))
        # λ weights the paired image: the image is (1 - λ) x_i + λ x_π(i)
        lam = y[:, 2].view(-1, 1, 1, 1)
        pairs = [int((labels == c).nonzero()[0]) if (labels == c).sum() == 1 else -1 for c in y[:, 1]]
        for i, j in enumerate(pairs):
            if j >= 0:
                torch.testing.assert_close(mixed[i], (1 - lam[i]) * images[i] + lam[i] * images[j])

    @pytest.mark.parametrize("correct", [False, True])
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_cutmix_one_round_is_exact(self, correct: bool, seed: int) -> None:
        K = pytest.importorskip("kornia.augmentation")
        torch.manual_seed(seed)
        images = _onehot_images(6, 8)
        mixed, y = _cutmix(K, 1, correct)(images, torch.arange(6))
        assert y.shape == (1, 6, 3)
        weights = "own" if correct else "paired"
        target = from_kornia(y, 6, lambda_weights=weights)
        shares = mixed.mean(dim=(2, 3))  # exact share of each source image in each output
        torch.testing.assert_close(target.dense(), shares)
        # and the loss is kornia's MixUp recipe with λ read in its convention
        logits = torch.randn(6, 6)
        y0 = y[0] if not correct else torch.stack([y[0, :, 0], y[0, :, 1], 1 - y[0, :, 2]], 1)
        torch.testing.assert_close(joint_cross_entropy(logits, target), _kornia_mixup_loss(y0, logits))

    @pytest.mark.parametrize("correct", [False, True])
    def test_cutmix_rounds_follow_kornia_recipe(self, correct: bool) -> None:
        K = pytest.importorskip("kornia.augmentation")
        torch.manual_seed(0)
        cutmix = _cutmix(K, 3, correct)
        error_ours = error_mean = 0.0
        for _ in range(20):
            mixed, y = cutmix(_onehot_images(6, 12), torch.arange(6))
            assert y.shape == (3, 6, 3)
            target = from_kornia(y, 6, lambda_weights="own" if correct else "paired")
            assert target.weight.shape == (6, 4)
            torch.testing.assert_close(target.dense(), _kornia_cutmix_label(y, 6, correct))
            # running product tracks the true pixel shares far better than an average of rounds
            shares = mixed.mean(dim=(2, 3))
            paired = 1 - y[..., 2] if correct else y[..., 2]
            average = (
                sum(
                    (1 - p[:, None]) * F.one_hot(r[:, 0].long(), 6)
                    + p[:, None] * F.one_hot(r[:, 1].long(), 6)
                    for r, p in zip(y, paired, strict=True)
                )
                / 3
            )
            error_ours += (target.dense() - shares).abs().sum().item()
            error_mean += (average - shares).abs().sum().item()
        assert error_ours < 0.5 * error_mean

    def test_stays_on_device_and_composes(self) -> None:
        K = pytest.importorskip("kornia.augmentation")
        torch.manual_seed(0)
        images, labels = torch.rand(4, 3, 8, 8), torch.randint(5, (4,))
        mixed, y = _cutmix(K, 2, True)(images, labels)
        target = from_kornia(y, 5, lambda_weights="own")
        batch = Compose([ChannelDrop(k=4), Rotation()], num_classes=5)(mixed, target)
        _assert_lifts(batch.target, target.dense())
        assert batch.target.weight.shape == (4, 3)  # own class + one partner per round
