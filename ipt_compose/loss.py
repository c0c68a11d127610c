"""Cross-entropy against joint targets, computed on the sparse form."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ipt_compose._checks import check_values, describe
from ipt_compose.target import JointTarget

__all__ = ["joint_cross_entropy", "self_distillation_loss"]

Reduction = Literal["mean", "sum", "none"]


def joint_cross_entropy(
    logits: Tensor,
    target: JointTarget,
    *,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Cross-entropy between joint logits and a :class:`~ipt_compose.target.JointTarget`.

    Equal, values and gradients, to ``F.cross_entropy(logits, target.dense(),
    label_smoothing=label_smoothing, reduction=reduction)``, but computed by gathering only the
    ``M`` columns each row's target puts weight on: with ``w_m, j_m`` the target's weights and
    joint indices, ``ε`` the smoothing and ``log p = log_softmax(z)``,
    ``loss = -(1-ε) Σ_m w_m log p[j_m] - ε mean(log p)``. Hard labels lifted by pretexts (one joint
    label per row) go straight to ``F.cross_entropy`` with class indices: the same ops as plain
    training. Smoothing spreads ``ε`` over the whole joint space (design item 6).

    Like ``F.cross_entropy``, it computes in float32 under autocast and returns float32 there.

    For accuracy and other metrics during training, reduce the joint logits to class scores with
    :meth:`JointModel.class_logits <ipt_compose.JointModel.class_logits>`: an argmax over the
    ``N·K`` joint logits is not a class.

    Args:
        logits: joint logits, class-major as the target's :class:`~ipt_compose.LabelSpace`.
        target: the joint target of the same rows.
        label_smoothing: ``ε`` in ``[0, 1]``. Leave it at 0 when the labels are already smoothed
            (timm's ``Mixup`` smooths them).
        reduction: ``"mean"`` over rows, ``"sum"``, or ``"none"`` for one loss per row.

    Returns:
        The loss: a scalar, or ``(B,)`` with ``reduction="none"``.

    Shape:
        - logits: :math:`(B, N \\cdot K)`
        - output: :math:`()` or :math:`(B)`

    Examples:
        >>> import torch.nn.functional as F
        >>> target = JointTarget.from_labels(torch.tensor([1, 0]), num_classes=2)
        >>> target = target.lift(torch.tensor([3, 0]), "rotation", 4)
        >>> logits = torch.randn(2, 8)
        >>> torch.allclose(joint_cross_entropy(logits, target), F.cross_entropy(logits, target.dense()))
        True
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {describe(logits)}")
    if not isinstance(target, JointTarget):
        raise TypeError(
            f"target must be a JointTarget (e.g. batch.target), got {type(target).__name__}; "
            "for plain labels use torch.nn.functional.cross_entropy"
        )
    if logits.ndim != 2 or logits.shape[0] != target.batch_size:
        raise ValueError(
            f"logits must have shape ({target.batch_size}, joint size) to match the target's rows, "
            f"got {tuple(logits.shape)}"
        )
    if logits.device != target.device:
        raise ValueError(
            f"logits and target must be on the same device, got logits on {logits.device} and the "
            f"target on {target.device}; move one with .to(...)"
        )
    width = logits.shape[1]
    if target.num_classes is not None:
        expected = target.num_classes * target.num_states
        if width != expected:
            raise ValueError(
                f"logits must have {expected} columns (the size of {target.space()!r}), got {width}"
            )
    elif width % target.num_states:
        raise ValueError(
            f"logits width {width} is not a multiple of the {target.num_states} pretext states of "
            "the target"
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if target.num_classes is None:
        check_values(target.index.lt(width).all(), f"target labels must index the {width} logit columns")

    labels = target.hard_labels
    if labels is not None:  # one joint label per row: exactly plain cross-entropy
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing, reduction=reduction)
    log_probs = torch.log_softmax(_upcast_under_autocast(logits), dim=1)
    weight = target.weight.to(log_probs.dtype)
    if target.is_dense:
        loss = -(weight * log_probs).sum(dim=1)
    else:
        loss = -(weight * log_probs.gather(1, target.index)).sum(dim=1)
    if label_smoothing:
        loss = (1 - label_smoothing) * loss - label_smoothing * log_probs.mean(dim=1)
    return _reduce(loss, reduction)


def self_distillation_loss(
    plain: Tensor,
    teacher: Tensor,
    target: JointTarget,
    *,
    temperature: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """The plain head's loss in self-distillation (SLA+SD, Lee et al., ICML 2020).

    ``CE(plain, class marginal of target) + T² KL(softmax(teacher / T) ‖ softmax(plain / T))``:
    the plain ``num_classes`` head learns the labels and the aggregated joint prediction, so that
    inference is one ordinary forward pass. The teacher is detached here too: no gradient reaches
    the joint head through this loss. Computes in float32 under autocast, like
    ``F.cross_entropy``.

    Args:
        plain: the plain head's class logits (``JointOutput.plain``).
        teacher: aggregated joint class logits (``JointOutput.teacher``).
        target: the rows' joint target; only its class marginal is used.
        temperature: ``T`` of the distillation term.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one loss per row).

    Returns:
        The loss, to add to :func:`joint_cross_entropy` of the joint logits.

    Shape:
        - plain, teacher: :math:`(B, N)`
        - output: :math:`()` or :math:`(B)`

    Examples:
        >>> target = JointTarget.from_labels(torch.tensor([1, 0]), num_classes=2)
        >>> self_distillation_loss(torch.zeros(2, 2), torch.zeros(2, 2), target)
        tensor(0.6931)
    """
    for name, value in (("plain", plain), ("teacher", teacher)):
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {describe(value)}")
    if plain.shape != teacher.shape or plain.ndim != 2:
        raise ValueError(
            f"plain and teacher must have the same shape (B, N), got {tuple(plain.shape)} and "
            f"{tuple(teacher.shape)}"
        )
    if not isinstance(target, JointTarget):
        raise TypeError(f"target must be a JointTarget (e.g. batch.target), got {type(target).__name__}")
    if target.num_classes is not None and plain.shape[1] != target.num_classes:
        raise ValueError(
            f"plain and teacher must have {target.num_classes} columns (the target's classes), "
            f"got {plain.shape[1]}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    plain = _upcast_under_autocast(plain)
    ce = joint_cross_entropy(plain, target.marginal(["class"]), reduction="none")
    teacher = _upcast_under_autocast(teacher.detach())
    if temperature != 1:
        plain, teacher = plain / temperature, teacher / temperature
    log_teacher = torch.log_softmax(teacher, dim=1)
    log_student = torch.log_softmax(plain, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(dim=1)
    return _reduce(ce + kl if temperature == 1 else ce + temperature**2 * kl, reduction)


def _reduce(loss: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _upcast_under_autocast(values: Tensor) -> Tensor:
    """``values`` in float32 when autocast is on for their device (``F.cross_entropy``'s rule)."""
    if values.dtype in (torch.float16, torch.bfloat16) and _autocast_enabled(values.device.type):
        return values.float()
    return values


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return device_type == "cuda" and torch.is_autocast_enabled()
