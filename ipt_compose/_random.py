"""Random draws that honour a ``torch.Generator`` on any device (private)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# ``torch._standard_gamma`` is the only gamma sampler that takes a generator, and it is private torch
# API. Without it, Beta draws fall back to ``torch.distributions.Beta`` run under a fork of the global
# RNG seeded from ``generator`` (same distribution, another stream).
_standard_gamma: Callable[..., Tensor] | None = getattr(torch, "_standard_gamma", None)


def draw_integers(
    high: int,
    size: int,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``size`` integers uniform in ``[0, high)`` on ``device``, drawn from ``generator``'s device."""
    if generator is None:
        return torch.randint(high, (size,), device=device)
    out = torch.randint(high, (size,), generator=generator, device=generator.device)
    return out if device is None else out.to(device, non_blocking=True)


def draw_uniform(
    size: tuple[int, ...],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Uniform ``[0, 1)`` floats on ``device``, drawn from ``generator``'s device."""
    draw_device = generator.device if generator is not None else device
    out = torch.rand(size, generator=generator, device=draw_device, dtype=dtype)
    return out.to(device, non_blocking=True) if device is not None else out


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
    draw_device = generator.device if generator is not None else torch.device(device or "cpu")
    concentration = torch.full((2, *size), float(alpha), device=draw_device, dtype=torch.float32)
    if _standard_gamma is not None:
        gammas = _standard_gamma(concentration, generator=generator)
    else:
        gammas = _gamma_without_kernel(concentration, generator)
    out = gammas[0] / (gammas[0] + gammas[1]).clamp_min(torch.finfo(gammas.dtype).tiny)
    return out.to(device=device or out.device, dtype=dtype or torch.get_default_dtype())


def draw_beta_on_host(alpha: float, generator: torch.Generator | None = None) -> float:
    """One ``Beta(alpha, alpha)`` draw as a Python float, from a CPU generator (or the global CPU RNG):
    the same stream as :func:`draw_beta` with ``size=()`` on the CPU, without tensor arithmetic."""
    concentration = torch.full((2,), float(alpha))
    gammas = (
        _standard_gamma(concentration, generator=generator)
        if _standard_gamma is not None
        else _gamma_without_kernel(concentration, generator)
    )
    first, second = (float(g) for g in gammas.tolist())
    return first / max(first + second, torch.finfo(torch.float32).tiny)


def draw_integer_on_host(high: int, generator: torch.Generator | None = None) -> int:
    """One integer uniform in ``[0, high)`` from a CPU generator (or the global CPU RNG)."""
    value: int = torch.randint(high, (1,), generator=generator).tolist()[0]
    return value


def _gamma_without_kernel(concentration: Tensor, generator: torch.Generator | None) -> Tensor:
    """``Gamma(concentration, 1)`` through public API: ``torch.distributions`` under a forked RNG."""
    gamma = torch.distributions.Gamma(concentration, torch.ones_like(concentration))
    if generator is None:
        return gamma.sample()
    seed = torch.randint(2**62, (1,), generator=generator, device=generator.device).item()
    devices = [concentration.device] if concentration.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        return gamma.sample()
