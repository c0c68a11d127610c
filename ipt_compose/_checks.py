"""Argument checks shared by the public entry points (private).

Every check raises at the call that received the bad value, naming the argument, what was expected
and what came. Checks on tensor *values* (ranges, sums, NaN) need the values on the host; on an
accelerator that would stall the stream, so there they are queued with ``torch._assert_async``,
which fails the next synchronising call instead of raising ``ValueError`` at once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_values(ok: Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless every element of the boolean tensor ``ok`` is true.

    On CPU (and when tracing is off) this raises at once. On an accelerator the check is queued
    without a host sync.
    """
    if ok.device.type == "cpu" or ok.device.type == "meta":
        if ok.device.type == "cpu" and not torch.compiler.is_compiling() and not bool(ok.all()):
            raise ValueError(message)
        return
    torch._assert_async(ok.all(), message)


def check_integer_tensor(name: str, value: object) -> Tensor:
    """Return ``value`` if it is an integer tensor, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (e.g. torch.long), got dtype {value.dtype}")
    return value


def check_range(name: str, value: Tensor, high: Tensor | int, what: str = "") -> None:
    """Check ``0 <= value < high`` elementwise (``high`` broadcasts against ``value``)."""
    label = f" ({what})" if what else ""
    check_values(
        (value >= 0) & (value < high),
        f"{name}{label} must lie in [0, {_describe(high)}), got values outside it",
    )


def check_probabilities(name: str, probs: Tensor, atol: float = 1e-4) -> None:
    """Check that ``probs`` is a float ``(B, N)`` tensor of non-negative rows that sum to 1."""
    if not isinstance(probs, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(probs).__name__}")
    if not probs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {probs.dtype}")
    if probs.ndim != 2:
        raise ValueError(f"{name} must have shape (B, N), got shape {tuple(probs.shape)}")
    check_values(~torch.isnan(probs), f"{name} must not contain NaN")
    check_values(probs >= 0, f"{name} must be non-negative (probabilities), got negative values")
    check_values(
        (probs.sum(dim=-1) - 1).abs() <= atol * max(1, probs.shape[-1]) ** 0.5,
        f"{name} rows must sum to 1 (probability distributions), got rows that do not",
    )


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int`` >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _describe(high: Tensor | int) -> str:
    return "the factor sizes" if isinstance(high, Tensor) else str(high)
