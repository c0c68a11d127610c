"""The row order of ``mode="all"`` (private): one owner for Compose and JointModel alike.

Rows are row-major over (sample, input-site states in list order, feature-site states in list
order). The model's inputs hold one row per (sample, input states), with the input pretexts
applied; feature pretexts replicate the rows inside the model, each at its own site, so output row
``r`` comes from input row ``r // E_feat`` with feature states ``r % E_feat`` (row-major over the
feature pretexts in list order), whatever order the sites run in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ipt_compose.pretext.base import Pretext, _keep_memory_format


def enumerate_rows(
    pretexts: Sequence[Pretext], images: Tensor, values: dict[str, Tensor]
) -> tuple[Tensor, Tensor]:
    """Replicate a batch over chosen states of every pretext.

    Args:
        pretexts: the pretexts, in list order.
        images: the batch ``(B, C, H, W)``.
        values: for each pretext name, the 1-D tensor of states to enumerate.

    Returns:
        ``(inputs, states)``: ``(B E_in, C, H, W)`` with the input pretexts applied, and the states of
        the output rows ``(B E_in E_feat, len(pretexts))``.
    """
    states = state_table(pretexts, images.shape[0], values)
    counts = {name: len(chosen) for name, chosen in values.items()}
    return model_inputs(pretexts, images, states, counts), states


def state_table(pretexts: Sequence[Pretext], batch: int, values: dict[str, Tensor]) -> Tensor:
    """The states of every output row ``(B E_in E_feat, len(pretexts))``, columns in list order."""
    ordered = [p for p in pretexts if p.site == "input"] + [p for p in pretexts if p.site == "feature"]
    grid = (batch, *(len(values[p.name]) for p in ordered))
    state_of = {}
    for axis, p in enumerate(ordered, start=1):
        shape = [-1 if d == axis else 1 for d in range(len(grid))]
        state_of[p.name] = values[p.name].view(shape).expand(grid)
    return torch.stack([state_of[p.name] for p in pretexts], dim=-1).view(-1, len(pretexts))


def model_inputs(
    pretexts: Sequence[Pretext], images: Tensor, states: Tensor, counts: dict[str, int]
) -> Tensor:
    """The model's input rows: each image once per input-state combination, the input pretexts
    applied with the states of ``state_table``'s rows (``counts``: states per pretext)."""
    e_in = math.prod([counts[p.name] for p in pretexts if p.site == "input"])
    e_feat = math.prod([counts[p.name] for p in pretexts if p.site == "feature"])
    inputs = _keep_memory_format(images.repeat_interleave(e_in, dim=0), images) if e_in > 1 else images
    for column, p in enumerate(pretexts):
        if p.site == "input":
            inputs = p.transform(inputs, states[::e_feat, column])
    return inputs


def insert_factor(
    features: Tensor, rows_in: int, sizes: Sequence[int], present: Sequence[int], index: int
) -> Tensor:
    """Replicate rows for feature factor ``index``, keeping them row-major in list order.

    Args:
        features: the current rows, row-major over (input row, factors in ``present``).
        rows_in: the model's input rows.
        sizes: every feature factor's size, in list order.
        present: the factors already replicated.
        index: the factor to add.
    """
    before = math.prod([sizes[i] for i in present if i < index])
    after = math.prod([sizes[i] for i in present if i > index])
    rest = features.shape[1:]
    grouped = features.reshape(rows_in * before, 1, after, *rest)
    return grouped.expand(-1, sizes[index], -1, *rest).reshape(-1, *rest)


def output_rows(
    count: int, sizes: Sequence[int], present: Sequence[int], device: torch.device
) -> Tensor | slice:
    """The output row each of ``count`` current rows feeds (absent factors at state 0)."""
    if len(present) == len(sizes):
        return slice(None)
    rows = torch.arange(count, device=device)
    full_strides = [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]
    final = torch.zeros_like(rows)
    remaining = rows
    for i in sorted(present, reverse=True):
        final = final + (remaining % sizes[i]) * full_strides[i]
        remaining = torch.div(remaining, sizes[i], rounding_mode="floor")
    return remaining * math.prod(sizes) + final
