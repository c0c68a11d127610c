"""Class scores from joint logits (private): pure functions of ``(logits, space)`` (design item 7).

:meth:`JointModel.predict <ipt_compose.JointModel.predict>` decides which rows to run; these
functions reduce what came out. :func:`linear_aggregate` is the exception that makes inference
cheap: when every feature pretext acts on the classifier's input as a per-channel mask, averaging
the joint logits over their states is itself one linear map, so the backbone runs once with that
map in place of the wide classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange, reduce
from torch import Tensor

from ipt_compose.space import LabelSpace


def class_log_probs(logits: Tensor, space: LabelSpace) -> Tensor:
    """``log p(c)``: the log of the joint softmax's class marginal, ``(B, N)``."""
    return space.marginal(torch.log_softmax(logits, dim=-1), ["class"], logits=True)


def marginal_logits(logits: Tensor, space: LabelSpace) -> Tensor:
    """``logsumexp`` of the joint logits over the pretext factors, ``(B, N)``."""
    return space.marginal(logits, ["class"], logits=True)


def mean_over_copies(scores: Tensor, copies: int) -> Tensor:
    """``(B·E, N) → (B, N)``: the mean over each sample's ``E`` consecutive rows."""
    if copies == 1:
        return scores
    return reduce(scores, "(b e) c -> b c", "mean", e=copies)


def linear_aggregate(
    weight: Tensor,
    bias: Tensor | None,
    space: LabelSpace,
    choices: Sequence[tuple[Sequence[int], Tensor | None]],
) -> tuple[Tensor, Tensor | None]:
    """A linear classifier equal to the joint head reduced over chosen pretext states.

    For each pretext factor, in order, ``(states, scale)``:

    * ``scale`` ``None``: the factor is *kept*; the output has one block of ``N`` classes per
      chosen state (the blocks row-major over the kept factors, classes innermost);
    * ``scale`` ``(K, D)``, the factor's channel scale: the logits are *averaged* over the chosen
      states, each computed on features multiplied by its row of ``scale``:
      ``mean_t (W_t ⊙ scale_t) · f + b_t``.

    Args:
        weight: the joint head's weight ``(size, D)``, class-major over ``space``.
        bias: its bias ``(size,)`` or ``None``.
        space: the joint label space.
        choices: one ``(states, scale)`` per pretext factor.

    Returns:
        ``(weight, bias)`` of shapes ``(E N, D)`` and ``(E N,)``, ``E`` the product of the kept
        factors' chosen state counts.
    """
    grid = space.unflatten(weight, dim=0)  # (N, K1, ..., Km, D)
    bias_grid = None if bias is None else space.unflatten(bias, dim=0)  # (N, K1, ..., Km)
    axis = 1
    for (states, scale), size in zip(choices, space.sizes[1:], strict=True):
        if list(states) != list(range(size)):
            index = torch.tensor(list(states), device=weight.device)
            grid = grid.index_select(axis, index)
            bias_grid = None if bias_grid is None else bias_grid.index_select(axis, index)
            scale = None if scale is None else scale[index]
        if scale is None:
            axis += 1
            continue
        shape = [1] * grid.ndim
        shape[axis], shape[-1] = scale.shape
        grid = (grid * scale.view(shape)).mean(dim=axis)
        bias_grid = None if bias_grid is None else bias_grid.mean(dim=axis)
    kept = " ".join(f"e{i}" for i in range(grid.ndim - 2))
    out_weight = rearrange(grid, f"c {kept} d -> ({kept} c) d")
    out_bias = None if bias_grid is None else rearrange(bias_grid, f"c {kept} -> ({kept} c)")
    return out_weight, out_bias
