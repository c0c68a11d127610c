"""The pretext base class: a finite set of states, drawn apart from being applied."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ipt_compose._checks import check_integer_tensor, check_positive_int, check_range
from ipt_compose._random import draw_integers

__all__ = ["Pretext", "Site"]

Site = Literal["input", "feature"]


class Pretext:
    """A transform with ``num_states`` states whose state becomes part of the label.

    Subclasses set :attr:`site` and implement :meth:`transform`; the base class validates the
    states (:meth:`apply`), draws them (:meth:`sample_states`, like torchvision v2's
    ``make_params``) and keeps the two apart, so states are testable, replayable and shareable
    between images and labels. Calling a pretext, ``pretext(x, states)``, is :meth:`apply`.
    Pretexts are plain objects (not ``nn.Module``'s): they hold no parameters, pickle and
    deep-copy, and create what they need on the input's device.

    What a feature-site pretext declares, so that :class:`~ipt_compose.JointModel` needs to know
    no concrete class:

    * :attr:`at`: the submodule whose output it transforms (``None``: the classifier's input);
    * :meth:`channel_scale`: if it multiplies every channel by a factor that depends on the state
      alone (as :class:`~ipt_compose.ChannelDrop` does), the table of those factors. At the
      classifier's input that makes the average over its states one linear map: the one-matmul
      aggregate of ``predict``, self-distillation's teacher and ``to_plain`` use it.

    Args:
        name: the factor's name in the joint label space (unique within a ``Compose``).
        num_states: the number of states ``K``.
        identity_state: the state that leaves its input unchanged, or ``None`` if there is none.
    """

    site: ClassVar[Site]
    at: str | None = None

    def __init__(self, name: str, num_states: int, identity_state: int | None) -> None:
        if not isinstance(name, str) or not name or name == "class":
            raise ValueError(f"name must be a non-empty str other than 'class', got {name!r}")
        self.name = name
        self.num_states = check_positive_int("num_states", num_states)
        self.identity_state = identity_state

    def sample_states(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw one state per row, uniformly.

        Args:
            batch_size: the number of rows ``B``.
            device: where the states live (the images' device).
            generator: a ``torch.Generator`` for reproducible draws; the global RNG if ``None``.

        Returns:
            A ``torch.long`` tensor of states in ``[0, num_states)``.

        Shape:
            - output: :math:`(B)`
        """
        check_positive_int("batch_size", batch_size, minimum=0)
        return draw_integers(self.num_states, batch_size, device=device, generator=generator)

    def all_states(self, device: torch.device | str | None = None) -> Tensor:
        """Every state once, in order: ``arange(num_states)``."""
        return torch.arange(self.num_states, device=device)

    def apply(self, x: Tensor, states: Tensor) -> Tensor:
        """Transform row ``i`` of ``x`` by state ``states[i]``, after checking the states.

        Args:
            x: a batch of images (input site) or feature maps (feature site).
            states: one state per row.

        Returns:
            The transformed batch, same shape, dtype and device as ``x``.

        Shape:
            - x: :math:`(B, C, *)`
            - states: :math:`(B)`
            - output: :math:`(B, C, *)`
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        check_integer_tensor("states", states)
        if x.ndim < 2:
            raise ValueError(f"x must have shape (B, C, ...), got shape {tuple(x.shape)}")
        if states.shape != (x.shape[0],):
            raise ValueError(
                f"states must have shape ({x.shape[0]},) (one per row of x), got {tuple(states.shape)}"
            )
        check_range("states", states, self.num_states, f"{self.name} state")
        # long: a uint8 index tensor would index as a boolean mask
        return self.transform(x, states.to(device=x.device, dtype=torch.long))

    def __call__(self, x: Tensor, states: Tensor) -> Tensor:
        """Same as :meth:`apply`."""
        return self.apply(x, states)

    def transform(self, x: Tensor, states: Tensor) -> Tensor:
        """Transform row ``i`` of ``x`` by state ``states[i]``, the states trusted as they are.

        What subclasses implement (torchvision v2's ``transform`` to ``make_params``): ``states``
        is ``torch.long``, in ``[0, num_states)`` and on ``x``'s device, as :meth:`apply`,
        :class:`~ipt_compose.Compose` and :class:`~ipt_compose.JointModel` hand it over.
        """
        if type(self)._apply_states is not Pretext._apply_states:
            return self._apply_states(x, states)  # a pretext written for ipt_compose 0.1
        raise NotImplementedError(f"{type(self).__name__} must implement transform(x, states)")

    def _apply_states(self, x: Tensor, states: Tensor) -> Tensor:
        """0.1's name of :meth:`transform`; subclasses that override it keep working."""
        raise NotImplementedError

    def channel_scale(
        self,
        num_channels: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor | None:
        """The factor of every channel under every state ``(num_states, C)``, or ``None``.

        A pretext that multiplies each channel of its input by a factor depending only on the
        state returns that table, so that ``transform(x, s) == x * table[s]`` (broadcast over the
        trailing dimensions). The default, ``None``, says the pretext is not such a mask.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_states={self.num_states}, site={self.site!r}"

    # tables a pretext builds once per shape and device (index maps, masks) live in `_tables`;
    # they are rebuilt after unpickling or copying rather than carried along
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_tables", None)
        return state

    def _table(self, key: tuple[Any, ...], build: Any) -> Tensor:
        """``build()``'s tensor, made once per ``key`` (shape, device, …) and kept."""
        tables: dict[tuple[Any, ...], Tensor] = self.__dict__.setdefault("_tables", {})
        table = tables.get(key)
        if table is None:
            table = tables[key] = build()
        return table


def _keep_memory_format(out: Tensor, like: Tensor) -> Tensor:
    """``out`` in ``like``'s memory format: channels-last in, channels-last out (4-D only)."""
    if like.ndim == 4 and not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out


def _split_ids(length: int, parts: int, device: torch.device | str | None = None) -> Tensor:
    """Part index of each of ``length`` positions split like ``torch.tensor_split(..., parts)``.

    The first ``length % parts`` parts have one position more than the others.
    """
    size, extra = divmod(length, parts)
    positions = torch.arange(length, device=device)
    boundary = extra * (size + 1)
    if size == 0:
        return positions
    return torch.where(
        positions < boundary,
        torch.div(positions, size + 1, rounding_mode="floor"),
        extra + torch.div(positions - boundary, size, rounding_mode="floor"),
    )


def _grid_cells(
    height: int, width: int, grid: int, who: str, device: torch.device | str | None = None
) -> Tensor:
    """The cell of every position of a ``grid × grid`` partition, ``(H, W)``, row-major.

    Cells are near-equal: rows and columns are split like ``torch.tensor_split``. ``who`` names
    the caller in the error raised when the map is smaller than the grid.
    """
    if height < grid or width < grid:
        raise ValueError(
            f"{who}(grid={grid}) needs maps of at least {grid}×{grid} positions, got H={height}, W={width}"
        )
    rows = _split_ids(height, grid, device)
    cols = _split_ids(width, grid, device)
    return rows.unsqueeze(1) * grid + cols


def _erase_cells(pretext: Pretext, x: Tensor, states: Tensor, grid: int, fill: float) -> Tensor:
    """Fill, in every channel, the grid cell each row's state names (state ``s - 1`` with an
    identity state 0, which erases nothing); the shared body of ``Cutout`` and ``RegionDrop``."""
    who = type(pretext).__name__
    if not (x.is_floating_point() or x.is_complex()) and x.dtype != torch.bool:
        info = torch.iinfo(x.dtype)
        if not info.min <= fill <= info.max:  # (a fraction is truncated, as torch casts it)
            raise ValueError(
                f"{who}(fill={fill}) cannot be written into {x.dtype} images: fill must lie in "
                f"[{info.min}, {info.max}] for them"
            )
    height, width = x.shape[-2:]
    identity = int(pretext.identity_state is not None)
    # one row per state: which positions it erases (the identity state's row erases none)
    masks = pretext._table(
        ("cells", height, width, x.device),
        lambda: _grid_cells(height, width, grid, who, x.device)
        == (torch.arange(pretext.num_states, device=x.device) - identity).view(-1, 1, 1),
    )
    return _keep_memory_format(x.masked_fill(masks.index_select(0, states).unsqueeze(1), fill), x)
