"""Feature-site pretexts: transforms of a feature map inside the network (arXiv 2106.04921)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ipt_compose._checks import check_positive_int
from ipt_compose.pretext.base import Pretext, _erase_cells, _keep_memory_format, _split_ids

__all__ = ["ChannelDrop", "RegionDrop"]

GroupLayout = Literal["contiguous", "interleaved", "random"]
_LAYOUTS = ("contiguous", "interleaved", "random")


class ChannelDrop(Pretext):
    """The internal pretext task: zero one group of channels of a feature map; the group is the state.

    The channels (dim 1) are split into ``k`` near-equal groups and state ``s`` zeroes group ``s``
    (arXiv 2106.04921), by multiplying each channel by its factor under the state
    (:meth:`channel_scale`: 0 for the dropped group, 1 elsewhere). The network then predicts the
    joint label (class, dropped group). It acts inside the model (``site = "feature"``): by default
    on the classifier's input, i.e. the pooled features — zeroing channels there equals zeroing them
    before global average pooling and costs nothing — or, with ``at="layer3"``, on the output of
    that named submodule.

    Args:
        k: number of channel groups.
        at: name of the submodule whose output is transformed (as in ``model.named_modules()`` of
            the backbone), or ``None`` for the classifier's input.
        identity: add state 0 that keeps every channel (``k + 1`` states; state ``s >= 1`` zeroes
            group ``s - 1``).
        rescale: scale the kept channels by ``C / (C - |group|)``, as dropout does.
        groups: which channels form a group: ``"contiguous"`` (``torch.tensor_split``),
            ``"interleaved"`` (channel ``c`` is in group ``c % k``) or ``"random"`` (a fixed
            permutation of the contiguous split, drawn once from ``seed``).
        seed: the seed of the ``"random"`` layout: the permutation is a pure function of it, so
            a pickled or re-constructed pretext gives the same groups.
        name: the factor's name in the joint label space.

    Shape:
        - x: :math:`(B, C, *)` with ``C >= k``
        - states: :math:`(B)`
        - output: :math:`(B, C, *)`

    Examples:
        >>> drop = ChannelDrop(k=2)
        >>> drop.apply(torch.ones(2, 4), torch.tensor([0, 1]))
        tensor([[0., 0., 1., 1.],
                [1., 1., 0., 0.]])
    """

    site = "feature"

    def __init__(
        self,
        k: int = 4,
        *,
        at: str | None = None,
        identity: bool = False,
        rescale: bool = False,
        groups: GroupLayout = "contiguous",
        seed: int = 0,
        name: str = "channel_drop",
    ) -> None:
        self.k = check_positive_int("k", k)
        if at is not None and (not isinstance(at, str) or not at):
            raise TypeError(f"at must be a submodule name (str) or None, got {at!r}")
        if groups not in _LAYOUTS:
            raise ValueError(f"groups must be one of {_LAYOUTS}, got {groups!r}")
        self.identity = bool(identity)
        super().__init__(name, k + self.identity, identity_state=0 if identity else None)
        self.at = at
        self.rescale = bool(rescale)
        self.groups = groups
        self.seed = int(seed)

    def group_ids(self, num_channels: int, device: torch.device | str | None = None) -> Tensor:
        """The group of each channel, ``(C,)``, in ``[0, k)``."""
        if num_channels < self.k:
            raise ValueError(
                f"ChannelDrop(k={self.k}) needs at least {self.k} channels to form {self.k} groups, "
                f"got a feature map with {num_channels} channels"
            )
        if self.groups == "interleaved":
            return torch.arange(num_channels, device=device) % self.k
        ids = _split_ids(num_channels, self.k, device)
        if self.groups == "random":
            gen = torch.Generator().manual_seed(self.seed)
            ids = ids[torch.randperm(num_channels, generator=gen).to(ids.device)]
        return ids

    def channel_scale(
        self,
        num_channels: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """The multiplier of every channel under every state, ``(num_states, C)``.

        Zero for the dropped group, one (or ``C / (C - |group|)`` with ``rescale``) elsewhere:
        ``apply(x, s) == x * channel_scale(C)[s]`` broadcast over the trailing dimensions.
        """
        keep = ~self._dropped(num_channels, torch.device(device or "cpu"))
        scale = keep.to(dtype or torch.get_default_dtype())
        if self.rescale:
            # the factor in float64, cast to `scale`'s dtype: int / LongTensor would be float32
            # and promote a bfloat16/float16 feature map to float32
            # (k=1 drops every channel: no kept channel to scale, and no 0 · inf)
            kept = keep.sum(dim=1, keepdim=True).to(torch.float64).clamp_min(1)
            scale = scale * (num_channels / kept).to(scale.dtype)
        return scale

    def _dropped(self, num_channels: int, device: torch.device) -> Tensor:
        """Which channels each state zeroes, ``(num_states, C)`` booleans, built once per shape."""

        def build() -> Tensor:
            ids = self.group_ids(num_channels, device)
            dropped = torch.arange(self.num_states, device=device) - int(self.identity)
            return ids.unsqueeze(0) == dropped.unsqueeze(1)

        return self._table(("dropped", num_channels, device), build)

    def transform(self, x: Tensor, states: Tensor) -> Tensor:
        # one multiply by each row's channel factors (a row of the cached table): cheaper, forward
        # and backward, than a masked fill, and the same zeros (a dropped NaN or inf stays visible)
        channels = x.shape[1]
        table = self._table(
            ("scale", channels, x.device, x.dtype),
            lambda: self.channel_scale(channels, device=x.device, dtype=x.dtype),
        )
        factors = table.index_select(0, states)
        if x.ndim > 2:
            factors = factors.view(*factors.shape, *([1] * (x.ndim - 2)))
        return _keep_memory_format(x * factors, x)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, k={self.k}, at={self.at!r}, identity={self.identity}, "
            f"rescale={self.rescale}, groups={self.groups!r}"
        )


class RegionDrop(Pretext):
    """Zero one spatial cell of a feature map; the cell is the state (arXiv 2106.04922).

    The sibling of :class:`ChannelDrop`: the feature map's height and width are split into a
    ``grid × grid`` partition of near-equal cells (``torch.tensor_split`` sizes, row-major), and
    state ``s`` zeroes cell ``s`` in every channel. It needs a spatial feature map, so give it a
    site with ``at=`` (e.g. ``"layer3"`` of a ResNet); pooled classifier inputs have no cells.

    Args:
        grid: cells per side; ``grid ** 2`` states (plus one with ``identity``).
        at: name of the submodule whose ``(B, C, H, W)`` output is transformed.
        identity: add state 0 that keeps every cell (state ``s >= 1`` zeroes cell ``s - 1``).
        name: the factor's name in the joint label space.

    Shape:
        - x: :math:`(B, C, H, W)` with ``H, W >= grid``
        - states: :math:`(B)`
        - output: :math:`(B, C, H, W)`

    Examples:
        >>> RegionDrop(grid=2, at="layer3").apply(torch.ones(1, 1, 2, 2), torch.tensor([1]))
        tensor([[[[1., 0.],
                  [1., 1.]]]])
    """

    site = "feature"

    def __init__(
        self, grid: int = 2, *, at: str | None = None, identity: bool = False, name: str = "region_drop"
    ) -> None:
        self.grid = check_positive_int("grid", grid)
        if at is not None and (not isinstance(at, str) or not at):
            raise TypeError(f"at must be a submodule name (str) or None, got {at!r}")
        self.identity = bool(identity)
        super().__init__(name, grid * grid + self.identity, identity_state=0 if identity else None)
        self.at = at

    def transform(self, x: Tensor, states: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(
                f"RegionDrop needs a spatial feature map (B, C, H, W), got shape {tuple(x.shape)}; "
                "place it on a convolutional stage with at='...'"
            )
        return _erase_cells(self, x, states, self.grid, 0.0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, grid={self.grid}, at={self.at!r}, identity={self.identity}"
