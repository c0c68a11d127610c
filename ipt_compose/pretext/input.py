"""Input-site pretexts: transforms of the image batch (the SLA-style baselines)."""

from __future__ import annotations

import torch
from torch import Tensor

from ipt_compose._checks import check_positive_int
from ipt_compose.pretext.base import Pretext, _erase_cells, _grid_cells, _keep_memory_format

__all__ = ["Cutout", "Rotation"]


def _check_images(x: Tensor, who: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{who} expects images of shape (B, C, H, W), got shape {tuple(x.shape)}")


class Rotation(Pretext):
    """Rotate each image by ``state × 90°`` counter-clockwise (SLA's pretext; arXiv 1910.05872).

    State ``s`` is ``torch.rot90(x, s, dims=(-2, -1))``; state 0 is the identity. All rows are
    rotated by one ``gather`` with a per-state index table, whatever the mix of states.

    Args:
        name: the factor's name in the joint label space.

    Shape:
        - x: :math:`(B, C, H, H)` (square images; others raise ``ValueError`` whatever the states)
        - states: :math:`(B)`, in ``[0, 4)``
        - output: :math:`(B, C, H, H)`

    Examples:
        >>> x = torch.arange(4.0).view(1, 1, 2, 2)
        >>> Rotation().apply(x, torch.tensor([1]))
        tensor([[[[1., 3.],
                  [0., 2.]]]])
    """

    site = "input"

    def __init__(self, *, name: str = "rotation") -> None:
        super().__init__(name, 4, identity_state=0)

    def transform(self, x: Tensor, states: Tensor) -> Tensor:
        _check_images(x, "Rotation")
        height, width = x.shape[-2:]
        if height != width:
            raise ValueError(
                f"Rotation needs square images (rotating by 90° changes the shape otherwise), "
                f"got H={height}, W={width}"
            )
        index = self._table(("rot90", height, x.device), lambda: _rotation_tables(height, x.device))
        index = index.index_select(0, states).unsqueeze(1).expand(-1, x.shape[1], -1)
        out = x.reshape(*x.shape[:2], height * width).gather(2, index).view_as(x)  # no -1: B or C may be 0
        return _keep_memory_format(out, x)


def _rotation_tables(side: int, device: torch.device) -> Tensor:
    """``(4, side²)``: for each state, the source pixel of every output pixel (row-major)."""
    grid = torch.arange(side * side, device=device).view(side, side)
    return torch.stack([torch.rot90(grid, k, (0, 1)).reshape(-1) for k in range(4)])


class Cutout(Pretext):
    """Erase one cell of a ``grid × grid`` partition of each image; the cell is the state.

    Cells are row-major and near-equal (``torch.tensor_split`` sizes when ``grid`` does not divide
    the side). With ``identity=True`` state 0 erases nothing and state ``s >= 1`` erases cell
    ``s - 1``.

    Args:
        grid: cells per side; ``grid ** 2`` states (plus one with ``identity``).
        fill: the value written into the erased cell.
        identity: add the erase-nothing state 0.
        name: the factor's name in the joint label space.

    Shape:
        - x: :math:`(B, C, H, W)` with ``H, W >= grid``
        - states: :math:`(B)`
        - output: :math:`(B, C, H, W)`

    Examples:
        >>> Cutout(grid=2).apply(torch.ones(1, 1, 2, 2), torch.tensor([3]))
        tensor([[[[1., 1.],
                  [1., 0.]]]])
    """

    site = "input"

    def __init__(
        self, grid: int = 2, *, fill: float = 0.0, identity: bool = False, name: str = "cutout"
    ) -> None:
        self.grid = check_positive_int("grid", grid)
        if isinstance(fill, bool) or not isinstance(fill, int | float):
            raise TypeError(f"fill must be a number, got {type(fill).__name__}")
        self.identity = bool(identity)
        super().__init__(name, grid * grid + self.identity, identity_state=0 if identity else None)
        self.fill = float(fill)

    def cell_map(self, height: int, width: int, device: torch.device | None = None) -> Tensor:
        """The cell index of every pixel, ``(H, W)``, row-major over the grid."""
        return _grid_cells(height, width, self.grid, "Cutout", device)

    def transform(self, x: Tensor, states: Tensor) -> Tensor:
        _check_images(x, "Cutout")
        return _erase_cells(self, x, states, self.grid, self.fill)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, grid={self.grid}, fill={self.fill}, identity={self.identity}"

