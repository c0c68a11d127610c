"""Argument checks shared by the public entry points (private).

Every check raises at the call that received the bad value, naming the argument, what was expected
and what came. A check on tensor *values* (ranges, sums, NaN) is one fused comparison reduced to a
single boolean and handed to ``torch._assert_async`` on every device: on an accelerator that queues
the check without a host sync (a failure surfaces at the next synchronising call), on the CPU it
fails at once and is raised here as ``ValueError``. Values the library produced itself (the states
``Compose`` draws, the targets it builds) are not checked again.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# ``torch._assert_async`` is private torch API; without it, checks read the value on the CPU and are
# skipped on accelerators (a host sync per check would cost more than the check is worth there).
_assert_async: Callable[[Tensor, str], None] | None = getattr(torch, "_assert_async", None)


def describe(value: object) -> str:
    """A short description of ``value`` for error messages: a tensor's dtype, else the type name."""
    if isinstance(value, Tensor):
        return f"a tensor of dtype {value.dtype}"
    return type(value).__name__


def check_values(ok: Tensor, message: str, detail: Callable[[], str] | None = None) -> None:
    """Raise ``ValueError(message)`` unless the 0-dim boolean tensor ``ok`` is true.

    Args:
        ok: the verdict of one fused comparison: a boolean tensor, reduced here with ``.all()``
            unless it is reduced already.
        message: the error message (on an accelerator it is the device assertion's message).
        detail: optional, called only after a failure on the CPU, for a more precise message.
    """
    if ok.ndim:
        ok = ok.all()
    if _assert_async is None:
        if ok.is_cpu and not torch.compiler.is_compiling() and not bool(ok):
            raise ValueError(detail() if detail is not None else message)
        return
    if not ok.is_cpu or torch.compiler.is_compiling():
        _assert_async(ok, message)
        return
    try:
        _assert_async(ok, message)
    except RuntimeError:
        raise ValueError(detail() if detail is not None else message) from None


def check_integer_tensor(name: str, value: object) -> Tensor:
    """Return ``value`` if it is an integer tensor, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (e.g. torch.long), got dtype {value.dtype}")
    return value


def check_range(name: str, value: Tensor, high: Tensor | int, what: str = "") -> None:
    """Check ``0 <= value < high`` elementwise with one fused comparison.

    ``high`` is an int or a tensor that broadcasts against ``value`` (per-column bounds).
    ``value`` is clamped into the range and compared with itself: on the CPU with ``torch.equal``
    (the values are on the host already), elsewhere reduced to one boolean for
    :func:`check_values` (no host sync).
    """
    if isinstance(high, Tensor):
        inside = torch.minimum(value.clamp(min=0), high - 1)
    else:
        inside = value.clamp(0, high - 1)
    if value.is_cpu and _assert_async is not None and not torch.compiler.is_compiling():
        if torch.equal(inside, value):
            return
        ok = torch.zeros((), dtype=torch.bool)  # fails below, with the same message
    else:
        ok = inside.eq(value).all()
    label = f" ({what})" if what else ""
    bound = "the factor sizes" if isinstance(high, Tensor) else str(high)
    check_values(ok, f"{name}{label} must lie in [0, {bound}), got values outside it")


def check_probabilities(name: str, probs: Tensor, atol: float = 1e-4) -> None:
    """Check that ``probs`` is a float ``(B, N)`` tensor of non-negative rows that sum to 1."""
    if not isinstance(probs, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(probs).__name__}")
    if not probs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {probs.dtype}")
    if probs.ndim != 2:
        raise ValueError(f"{name} must have shape (B, N), got shape {tuple(probs.shape)}")
    tolerance = atol * max(1, probs.shape[-1]) ** 0.5
    # NaN fails `>= 0`, so one comparison covers NaN and negative entries
    ok = probs.ge(0).all() & (probs.sum(dim=-1) - 1).abs().le(tolerance).all()

    def detail() -> str:
        if bool(torch.isnan(probs).any()):
            return f"{name} must not contain NaN"
        if bool((probs < 0).any()):
            return f"{name} must be non-negative (probabilities), got negative values"
        return f"{name} rows must sum to 1 (probability distributions), got rows that do not"

    check_values(
        ok, f"{name} must hold probability rows (non-negative, no NaN, summing to 1)", detail
    )


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int`` >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value
