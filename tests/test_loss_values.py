"""The losses against their definitions written out by hand, every reduction, and their gradients by
value (issue 14).

The references below use per-row Python loops over explicit formulas, not ``F.cross_entropy``:

* ``joint_cross_entropy``: ``loss_i = -Σ_j ((1-ε) p_ij + ε / W) log q_ij`` with ``q = softmax(z)``,
  ``p`` the target's distribution over the ``W = N·K`` joint labels;
* ``self_distillation_loss``: ``loss_i = -Σ_c m_ic log softmax(s_i)_c + T² Σ_c a_ic (log a_ic -
  log softmax(s_i / T)_c)`` with ``m`` the target's class marginal, ``a = softmax(t_i / T)``;

and ``mean`` is ``Σ_i loss_i / B``, ``sum`` is ``Σ_i loss_i``, ``none`` is ``(loss_i)_i``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from ipt_compose import JointTarget, joint_cross_entropy, self_distillation_loss

REDUCTIONS = ["mean", "sum", "none"]
N, K = 3, 4  # classes, pretext states


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def targets() -> dict[str, JointTarget]:
    """One target of each form the loss takes a separate path for, over ``class(3) × r(4)``."""
    labels, states = torch.tensor([2, 0, 1, 1, 0]), torch.tensor([3, 0, 1, 2, 1])
    hard = JointTarget.from_labels(labels, N).lift(states, "r", K)
    assert hard.hard_labels is not None  # one joint label per row: the F.cross_entropy path
    weighted = hard.to(torch.float64)  # the same labels with explicit float64 weights: a mixture
    assert weighted.hard_labels is None
    soft = torch.softmax(torch.randn(5, N * K, generator=_gen(0), dtype=torch.float64), dim=1)
    return {
        "hard": hard,
        "hard_weighted": weighted,
        "mixture": weighted.mix(torch.tensor([1, 2, 3, 4, 0]), torch.tensor([0.7, 0.2, 1.0, 0.5, 0.0])),
        "mixture_repeated_index": weighted.mix(torch.tensor([0, 0, 0, 0, 0]), 0.25),
        "dense": JointTarget(soft, None, num_classes=N, factors=[("r", K)]),
    }


def distribution(target: JointTarget) -> list[list[float]]:
    """The target's probabilities over the joint labels, from its components, by hand."""
    rows = [[0.0] * (N * K) for _ in range(target.batch_size)]
    for i, (index, weight) in enumerate(zip(target.index.tolist(), target.weight.tolist(), strict=True)):
        for j, w in zip(index, weight, strict=True):
            rows[i][j] += w
    return rows


def log_softmax(row: list[float]) -> list[float]:
    top = max(row)
    log_total = top + math.log(sum(math.exp(v - top) for v in row))
    return [v - log_total for v in row]


def reduce(losses: list[float], reduction: str) -> Tensor:
    values = torch.tensor(losses, dtype=torch.float64)
    if reduction == "mean":
        return torch.tensor(sum(losses) / len(losses), dtype=torch.float64)
    if reduction == "sum":
        return torch.tensor(sum(losses), dtype=torch.float64)
    return values


def cross_entropy_by_hand(logits: Tensor, target: JointTarget, eps: float, reduction: str) -> Tensor:
    width = logits.shape[1]
    losses = []
    for z, p in zip(logits.tolist(), distribution(target), strict=True):
        log_q = log_softmax(z)
        losses.append(-sum(((1 - eps) * p_j + eps / width) * lq for p_j, lq in zip(p, log_q, strict=True)))
    return reduce(losses, reduction)


def class_marginal(target: JointTarget) -> list[list[float]]:
    return [[sum(row[c * K : (c + 1) * K]) for c in range(N)] for row in distribution(target)]


def distillation_by_hand(
    plain: Tensor, teacher: Tensor, target: JointTarget, temperature: float, reduction: str
) -> Tensor:
    losses = []
    for s, t, m in zip(plain.tolist(), teacher.tolist(), class_marginal(target), strict=True):
        ce = -sum(m_c * lq for m_c, lq in zip(m, log_softmax(s), strict=True))
        log_a = log_softmax([v / temperature for v in t])
        log_b = log_softmax([v / temperature for v in s])
        kl = sum(math.exp(la) * (la - lb) for la, lb in zip(log_a, log_b, strict=True))
        losses.append(ce + temperature**2 * kl)
    return reduce(losses, reduction)


def _weights(reduction: str, upstream: Tensor, rows: int) -> Tensor:
    """d(reduced loss)/d(loss_i) times the upstream gradient, as a column."""
    if reduction == "mean":
        return (upstream / rows).expand(rows).reshape(-1, 1)
    if reduction == "sum":
        return upstream.expand(rows).reshape(-1, 1)
    return upstream.reshape(-1, 1)


# ------------------------------------------------------------------ joint_cross_entropy
@pytest.mark.parametrize("eps", [0.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", sorted(targets()))
def test_joint_cross_entropy_is_its_definition(kind: str, reduction: str, eps: float) -> None:
    """Values by hand, every reduction, every target form (catches cross_entropy_sum_returns_mean,
    cross_entropy_hard_path_ignores_reduction, cross_entropy_hard_path_ignores_smoothing,
    cross_entropy_dense_path_averages, cross_entropy_smoothing_over_classes)."""
    target = targets()[kind]
    logits = 2 * torch.randn(target.batch_size, N * K, generator=_gen(1), dtype=torch.float64)
    logits.requires_grad_()
    loss = joint_cross_entropy(logits, target, label_smoothing=eps, reduction=reduction)  # type: ignore[arg-type]
    expected = cross_entropy_by_hand(logits.detach(), target, eps, reduction)
    assert loss.shape == expected.shape
    torch.testing.assert_close(loss, expected)

    # gradient by value: (softmax(z) - ((1-ε) p + ε/W)) per row, times the reduction's weight
    upstream = torch.randn(loss.shape, generator=_gen(2), dtype=torch.float64)
    (grad,) = torch.autograd.grad(loss, logits, upstream)
    smoothed = (1 - eps) * torch.tensor(distribution(target), dtype=torch.float64) + eps / (N * K)
    formula = (logits.detach().softmax(dim=1) - smoothed) * _weights(reduction, upstream, target.batch_size)
    torch.testing.assert_close(grad, formula)


def test_joint_cross_entropy_gradcheck_every_reduction() -> None:
    """Finite differences agree with autograd on every path and reduction."""
    for kind, target in targets().items():
        for reduction in REDUCTIONS:
            logits = torch.randn(target.batch_size, N * K, generator=_gen(3), dtype=torch.float64)
            assert torch.autograd.gradcheck(
                lambda z, t=target, r=reduction: joint_cross_entropy(z, t, label_smoothing=0.1, reduction=r),
                (logits.requires_grad_(),),
            ), (kind, reduction)


# ------------------------------------------------------------------ self_distillation_loss
@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", sorted(targets()))
def test_self_distillation_loss_is_its_definition(kind: str, reduction: str, temperature: float) -> None:
    """Values by hand, every reduction (catches distillation_sum_returns_mean,
    distillation_temperature_not_squared, distillation_kl_reversed)."""
    target = targets()[kind]
    plain = torch.randn(target.batch_size, N, generator=_gen(4), dtype=torch.float64)
    teacher = torch.randn(target.batch_size, N, generator=_gen(5), dtype=torch.float64)
    loss = self_distillation_loss(plain, teacher, target, temperature=temperature, reduction=reduction)  # type: ignore[arg-type]
    expected = distillation_by_hand(plain, teacher, target, temperature, reduction)
    assert loss.shape == expected.shape
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_self_distillation_gradient_reaches_the_student_only(reduction: str, temperature: float) -> None:
    """The student's gradient is ``(softmax(s) - m) + T (softmax(s/T) - softmax(t/T))`` per row;
    the teacher, though it requires grad, gets none (catches teacher_not_detached)."""
    target = targets()["mixture"]
    plain = torch.randn(target.batch_size, N, generator=_gen(6), dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(target.batch_size, N, generator=_gen(7), dtype=torch.float64, requires_grad=True)
    loss = self_distillation_loss(plain, teacher, target, temperature=temperature, reduction=reduction)  # type: ignore[arg-type]
    upstream = torch.randn(loss.shape, generator=_gen(8), dtype=torch.float64)
    loss.backward(upstream)
    s, t = plain.detach(), teacher.detach()
    marginal = torch.tensor(class_marginal(target), dtype=torch.float64)
    soft_gap = (s / temperature).softmax(1) - (t / temperature).softmax(1)
    per_row = (s.softmax(1) - marginal) + temperature * soft_gap
    assert plain.grad is not None
    torch.testing.assert_close(plain.grad, per_row * _weights(reduction, upstream, target.batch_size))
    teacher_grad = teacher.grad if teacher.grad is not None else torch.zeros_like(teacher)
    assert torch.equal(teacher_grad, torch.zeros_like(teacher)), "a gradient reached the teacher"


def test_no_gradient_reaches_a_head_through_the_teacher() -> None:
    """A teacher computed by a head with parameters: the loss leaves that head's gradients at zero
    while the student's head gets the gradient of the formula (catches teacher_not_detached)."""
    torch.manual_seed(0)
    features = torch.randn(5, 6, dtype=torch.float64)
    student, teacher_head = nn.Linear(6, N).double(), nn.Linear(6, N).double()
    target = targets()["hard"]
    loss = self_distillation_loss(student(features), teacher_head(features), target, temperature=2.0)
    loss.backward()
    for p in teacher_head.parameters():
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        assert torch.equal(grad, torch.zeros_like(p))
    s, t = student(features).detach(), teacher_head(features).detach()
    marginal = torch.tensor(class_marginal(target), dtype=torch.float64)
    d_logits = ((s.softmax(1) - marginal) + 2.0 * ((s / 2).softmax(1) - (t / 2).softmax(1))) / 5
    assert student.weight.grad is not None
    torch.testing.assert_close(student.weight.grad, d_logits.t() @ features)


def test_self_distillation_gradcheck() -> None:
    """Finite differences agree with autograd in the student's logits, every reduction."""
    target = targets()["dense"]
    teacher = torch.randn(target.batch_size, N, generator=_gen(9), dtype=torch.float64)
    for reduction in REDUCTIONS:
        plain = torch.randn(target.batch_size, N, generator=_gen(10), dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda s, r=reduction: self_distillation_loss(s, teacher, target, temperature=1.5, reduction=r),
            (plain,),
        )
