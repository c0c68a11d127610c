"""Property and exception tests of :func:`~ipt_compose.joint_cross_entropy` (design items 3, 6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ipt_compose import JointTarget, LabelSpace, joint_cross_entropy
from tests._strategies import KINDS, PROPERTY, make_target, target_cases

SMOOTHING = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


def _leaf_copy(target: JointTarget) -> tuple[JointTarget, torch.Tensor]:
    """The same target with its weights as a fresh leaf that requires grad."""
    weight = target.weight.detach().clone().requires_grad_(True)
    index = None if target.is_dense else target.index
    copy = JointTarget(weight, index, num_classes=target.num_classes, factors=target.factors)
    return copy, weight


# ---------------------------------------------------------------------------------- laws


@PROPERTY
@given(case=target_cases(kinds=KINDS), eps=SMOOTHING, reduction=REDUCTIONS)
def test_equals_cross_entropy_on_dense_values_and_gradients(
    case, eps: float, reduction: str
) -> None:
    """Law 10: values and gradients (logits and target weights) equal F.cross_entropy's."""
    space, target, g = case
    b = target.batch_size
    logits = (3 * torch.randn(b, space.size, generator=g, dtype=torch.float64)).requires_grad_()
    ours_target, ours_w = _leaf_copy(target)
    ref_target, ref_w = _leaf_copy(target)

    ours = joint_cross_entropy(logits, ours_target, label_smoothing=eps, reduction=reduction)
    ref = F.cross_entropy(
        logits, ref_target.dense(num_classes=space.num_classes), label_smoothing=eps,
        reduction=reduction,
    )
    assert ours.shape == ref.shape == ((b,) if reduction == "none" else ())
    torch.testing.assert_close(ours, ref)

    seed = torch.randn(ours.shape, generator=g, dtype=torch.float64)  # any upstream gradient
    ours_grads = torch.autograd.grad(ours, (logits, ours_w), seed)
    ref_grads = torch.autograd.grad(ref, (logits, ref_w), seed)
    for mine, theirs in zip(ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(mine, theirs)


@PROPERTY
@given(case=target_cases(max_factors=2, kinds=("hard", "mixture")), eps=SMOOTHING)
def test_float32_logits_match_cross_entropy(case, eps: float) -> None:
    """Law 10 in float32 (the training dtype); the float64 target weights are cast to it."""
    space, target, g = case
    logits = torch.randn(target.batch_size, space.size, generator=g)
    ours = joint_cross_entropy(logits, target, label_smoothing=eps)
    assert ours.dtype == torch.float32
    ref = F.cross_entropy(logits, target.dense().float(), label_smoothing=eps)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("kind", ["hard", "hard_unknown", "mixture"])
def test_mixture_target_never_builds_dense(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a mixture target the loss gathers M columns and never calls dense() (no (B, size))."""
    space = LabelSpace([("class", 5), ("channel_drop", 4), ("rotation", 4)])
    g = torch.Generator().manual_seed(0)
    target = make_target(space, kind, 4, g).mix(torch.tensor([1, 2, 3, 0]), 0.3)
    logits = torch.randn(4, space.size, dtype=torch.float64, requires_grad=True)
    expected = F.cross_entropy(logits, target.dense(num_classes=5), label_smoothing=0.1)

    def _refuse(self: JointTarget, num_classes: int | None = None) -> torch.Tensor:
        raise AssertionError("joint_cross_entropy built the dense (B, size) target")

    monkeypatch.setattr(JointTarget, "dense", _refuse)
    loss = joint_cross_entropy(logits, target, label_smoothing=0.1)
    assert target.weight.shape[1] < space.size
    torch.testing.assert_close(loss, expected)
    loss.backward()


def test_gradcheck_mixture_target() -> None:
    """Numerical gradients of the loss in the logits, float64, with smoothing."""
    target = JointTarget.from_labels(torch.tensor([2, 0, 1]), num_classes=3).to(torch.float64)
    target = target.lift(torch.tensor([1, 0, 1]), "rotation", 2).mix(torch.tensor([2, 0, 1]), 0.6)
    logits = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda z: joint_cross_entropy(z, target, label_smoothing=0.2, reduction="none"), (logits,)
    )


# ---------------------------------------------------------------------------------- bad input

HARD = JointTarget.from_labels(torch.tensor([1, 0]), num_classes=3).lift(
    torch.tensor([0, 1]), "rotation", 2
)
UNKNOWN = JointTarget.from_labels(torch.tensor([1, 4])).lift(torch.tensor([0, 1]), "rotation", 2)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: joint_cross_entropy(torch.randn(2, 7), HARD), ValueError,
         r"^logits must have 6 columns"),
        (lambda: joint_cross_entropy(torch.randn(2, 7), UNKNOWN), ValueError,
         r"^logits width 7 is not a multiple of the 2"),
        (lambda: joint_cross_entropy(torch.randn(2, 8), UNKNOWN), ValueError,
         r"^target labels must index the 8 logit columns"),
        (lambda: joint_cross_entropy(torch.randn(3, 6), HARD), ValueError,
         r"^logits must have shape \(2, joint size\)"),
        (lambda: joint_cross_entropy(torch.randn(6), HARD), ValueError, r"^logits must have shape"),
        (lambda: joint_cross_entropy(torch.zeros(2, 6, dtype=torch.long), HARD), TypeError,
         r"^logits must be a floating-point tensor"),
        (lambda: joint_cross_entropy([[0.0] * 6] * 2, HARD), TypeError, r"^logits"),
        (lambda: joint_cross_entropy(torch.randn(2, 6), torch.tensor([1, 0])), TypeError,
         r"^target must be a JointTarget"),
        (lambda: joint_cross_entropy(torch.randn(2, 6), HARD.dense()), TypeError,
         r"^target must be a JointTarget"),
        (lambda: joint_cross_entropy(torch.randn(2, 6), HARD, label_smoothing=1.5), ValueError,
         r"^label_smoothing must lie in \[0, 1\]"),
        (lambda: joint_cross_entropy(torch.randn(2, 6), HARD, label_smoothing=-0.1), ValueError,
         r"^label_smoothing"),
        (lambda: joint_cross_entropy(torch.randn(2, 6), HARD, reduction="avg"), ValueError,
         r"^reduction must be"),
    ],
)
def test_bad_loss_calls(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
