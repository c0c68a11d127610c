"""Random draws that honour a ``torch.Generator`` on any device (private)."""

from __future__ import annotations

import torch
from torch import Tensor

from ipt_compose._checks import check_positive_int


def draw_integers(
    high: int,
    size: int,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``size`` integers uniform in ``[0, high)`` on ``device``, drawn from ``generator``'s device."""
    check_positive_int("batch_size", size, minimum=0)
    target_device = torch.device(device) if device is not None else None
    draw_device = generator.device if generator is not None else target_device
    out = torch.randint(high, (size,), generator=generator, device=draw_device)
    if target_device is not None and out.device != target_device:
        out = out.to(target_device, non_blocking=True)
    return out


def draw_uniform(
    size: tuple[int, ...],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Uniform ``[0, 1)`` floats on ``device``, drawn from ``generator``'s device."""
    target_device = torch.device(device) if device is not None else None
    draw_device = generator.device if generator is not None else target_device
    out = torch.rand(size, generator=generator, device=draw_device, dtype=dtype)
    if target_device is not None and out.device != target_device:
        out = out.to(target_device, non_blocking=True)
    return out


def draw_beta(
    alpha: float,
    size: tuple[int, ...],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``Beta(alpha, alpha)`` samples as ``G1 / (G1 + G2)`` with ``G ~ Gamma(alpha)``.

    ``torch.distributions`` takes no generator; the gamma kernel behind it does.
    """
    target_device = torch.device(device) if device is not None else None
    draw_device = generator.device if generator is not None else target_device
    concentration = torch.full((2, *size), float(alpha), device=draw_device, dtype=torch.float32)
    gammas = torch._standard_gamma(concentration, generator=generator)
    out = gammas[0] / (gammas[0] + gammas[1]).clamp_min(torch.finfo(gammas.dtype).tiny)
    return out.to(device=target_device or out.device, dtype=dtype or torch.get_default_dtype())
