"""The joint label space: an ordered product of named finite factors, class first."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import torch
from einops import rearrange
from torch import Tensor

from ipt_compose._checks import check_integer_tensor, check_positive_int, check_range

__all__ = ["LabelSpace"]


class LabelSpace:
    """An ordered product of named finite factors; the first factor is always ``"class"``.

    A joint index is row-major (class-major, C order) over the factors, so for factors of sizes
    ``(N, K1, K2)`` the joint index of ``(y, s1, s2)`` is ``((y * K1) + s1) * K2 + s2`` — the
    layout of einops' ``rearrange(z, "b (c s1 s2) -> b c s1 s2", s1=K1, s2=K2)``.

    Args:
        factors: ``(name, size)`` pairs in order. The first name must be ``"class"``; names are
            unique; sizes are ints >= 1.

    Examples:
        >>> space = LabelSpace([("class", 10), ("channel_drop", 4), ("rotation", 4)])
        >>> space.size
        160
        >>> int(space.encode(torch.tensor([3, 1, 2])))
        54
        >>> space.decode(torch.tensor(54)).tolist()
        [3, 1, 2]
    """

    __slots__ = ("_names", "_sizes")

    def __init__(self, factors: Iterable[tuple[str, int]]) -> None:
        pairs = list(factors)
        if not pairs:
            raise ValueError("factors must hold at least the ('class', N) factor, got none")
        names: list[str] = []
        sizes: list[int] = []
        for position, pair in enumerate(pairs):
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise TypeError(f"factors[{position}] must be a (name, size) pair, got {pair!r}")
            name, size = pair
            if not isinstance(name, str) or not name:
                raise TypeError(f"factors[{position}] name must be a non-empty str, got {name!r}")
            if name in names:
                raise ValueError(f"factor names must be unique, got {name!r} twice")
            names.append(name)
            sizes.append(check_positive_int(f"size of factor {name!r}", size))
        if names[0] != "class":
            raise ValueError(f"the first factor must be named 'class', got {names[0]!r}")
        self._names = tuple(names)
        self._sizes = tuple(sizes)

    # ------------------------------------------------------------------ description
    @property
    def names(self) -> tuple[str, ...]:
        """Factor names in order, ``"class"`` first."""
        return self._names

    @property
    def sizes(self) -> tuple[int, ...]:
        """Factor sizes in order."""
        return self._sizes

    @property
    def size(self) -> int:
        """Number of joint labels: the product of the factor sizes."""
        return math.prod(self._sizes)

    @property
    def num_classes(self) -> int:
        """Size of the ``"class"`` factor."""
        return self._sizes[0]

    @property
    def strides(self) -> tuple[int, ...]:
        """Row-major stride of each factor in the joint index (the last factor has stride 1)."""
        strides = [1] * len(self._sizes)
        for i in range(len(self._sizes) - 2, -1, -1):
            strides[i] = strides[i + 1] * self._sizes[i + 1]
        return tuple(strides)

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(zip(self._names, self._sizes, strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSpace):
            return NotImplemented
        return self._names == other._names and self._sizes == other._sizes

    def __hash__(self) -> int:
        return hash((self._names, self._sizes))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={s}" for n, s in zip(self._names, self._sizes, strict=True))
        return f"LabelSpace({inner})"

    def __reduce__(self) -> tuple[type[LabelSpace], tuple[tuple[tuple[str, int], ...]]]:
        return (LabelSpace, (tuple(zip(self._names, self._sizes, strict=True)),))

    # ------------------------------------------------------------------ construction
    def extend(self, name: str, size: int) -> LabelSpace:
        """Return the space with one more factor ``(name, size)`` appended (innermost).

        Examples:
            >>> LabelSpace([("class", 10)]).extend("rotation", 4)
            LabelSpace(class=10, rotation=4)
        """
        return LabelSpace([*zip(self._names, self._sizes, strict=True), (name, size)])

    def index(self, name: str) -> int:
        """Position of the factor called ``name``; ``ValueError`` lists the names if absent."""
        try:
            return self._names.index(name)
        except ValueError:
            raise ValueError(f"no factor named {name!r}; the factors are {list(self._names)}") from None

    # ------------------------------------------------------------------ index maps
    def encode(self, indices: Tensor) -> Tensor:
        """Map per-factor indices to joint indices.

        Args:
            indices: integer tensor whose last dimension holds one index per factor, in order.

        Returns:
            The joint indices, a ``torch.long`` tensor.

        Shape:
            - indices: :math:`(*, F)` with ``F = len(space)``
            - output: :math:`(*)`

        Examples:
            >>> LabelSpace([("class", 3), ("rotation", 4)]).encode(torch.tensor([[2, 1], [0, 3]]))
            tensor([9, 3])
        """
        check_integer_tensor("indices", indices)
        if indices.ndim == 0 or indices.shape[-1] != len(self._names):
            raise ValueError(
                f"indices must have shape (..., {len(self._names)}) for factors "
                f"{list(self._names)}, got shape {tuple(indices.shape)}"
            )
        sizes = torch.tensor(self._sizes, device=indices.device)
        check_range("indices", indices, sizes, "per factor")
        strides = torch.tensor(self.strides, device=indices.device)
        return (indices.long() * strides).sum(dim=-1)

    def decode(self, joint: Tensor) -> Tensor:
        """Map joint indices back to per-factor indices (the inverse of :meth:`encode`).

        Args:
            joint: integer tensor of joint indices in ``[0, size)``.

        Returns:
            A ``torch.long`` tensor with one more, last, dimension of length ``len(space)``.

        Shape:
            - joint: :math:`(*)`
            - output: :math:`(*, F)`

        Examples:
            >>> LabelSpace([("class", 3), ("rotation", 4)]).decode(torch.tensor([9, 3]))
            tensor([[2, 1],
                    [0, 3]])
        """
        check_integer_tensor("joint", joint)
        check_range("joint", joint, self.size, "joint index")
        sizes = torch.tensor(self._sizes, device=joint.device)
        strides = torch.tensor(self.strides, device=joint.device)
        return torch.div(joint.long().unsqueeze(-1), strides, rounding_mode="floor") % sizes

    # ------------------------------------------------------------------ the layout as einops patterns
    @property
    def pattern(self) -> str:
        """The joint axis as an einops composition: ``"(c s1 s2)"`` for ``class × p1 × p2``.

        ``c`` is the class factor and ``s1, s2, …`` the pretext factors in order, so
        ``rearrange(z, f"b {space.pattern} -> b c s1 s2", **space.axes)`` splits joint values.
        """
        return "(" + " ".join(self._axis_names()) + ")"

    @property
    def axes(self) -> dict[str, int]:
        """The size of every axis of :attr:`pattern`, for einops: ``{"c": N, "s1": K1, …}``."""
        return dict(zip(self._axis_names(), self._sizes, strict=True))

    def unflatten(self, values: Tensor, dim: int = -1) -> Tensor:
        """Split the joint axis ``dim`` into one axis per factor (a view, class-major).

        Examples:
            >>> space = LabelSpace([("class", 2), ("rotation", 4)])
            >>> space.unflatten(torch.arange(8)).tolist()
            [[0, 1, 2, 3], [4, 5, 6, 7]]
        """
        self._check_joint_axis("values", values, dim)
        dim = dim % values.ndim
        lead = " ".join(f"a{i}" for i in range(dim))
        trail = " ".join(f"z{i}" for i in range(values.ndim - dim - 1))
        split = " ".join(self._axis_names())
        return rearrange(values, f"{lead} {self.pattern} {trail} -> {lead} {split} {trail}", **self.axes)

    def flatten(self, values: Tensor, dim: int = -1) -> Tensor:
        """Merge the ``len(space)`` factor axes starting at ``dim`` into one joint axis (inverse of
        :meth:`unflatten`)."""
        if not isinstance(values, Tensor):
            raise TypeError(f"values must be a torch.Tensor, got {type(values).__name__}")
        dim = dim % values.ndim if dim >= 0 else values.ndim + dim - len(self._sizes) + 1
        if dim < 0 or tuple(values.shape[dim : dim + len(self._sizes)]) != self._sizes:
            raise ValueError(
                f"values must hold the factor axes {self._sizes} at dim {dim}, got shape "
                f"{tuple(values.shape)}"
            )
        lead = " ".join(f"a{i}" for i in range(dim))
        trail = " ".join(f"z{i}" for i in range(values.ndim - dim - len(self._sizes)))
        split = " ".join(self._axis_names())
        return rearrange(values, f"{lead} {split} {trail} -> {lead} {self.pattern} {trail}")

    def _axis_names(self) -> list[str]:
        return ["c", *(f"s{i}" for i in range(1, len(self._sizes)))]

    def _check_joint_axis(self, name: str, values: object, dim: int) -> None:
        if not isinstance(values, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(values).__name__}")
        if values.ndim == 0 or values.shape[dim] != self.size:
            which = "last dimension" if dim == -1 else f"dimension {dim}"
            raise ValueError(
                f"{name} must have {which} {self.size} (the size of {self!r}), "
                f"got shape {tuple(values.shape)}"
            )

    # ------------------------------------------------------------------ marginals
    def marginal(self, values: Tensor, keep: Sequence[str], *, logits: bool = False) -> Tensor:
        """Reduce joint values over every factor not in ``keep``.

        Probabilities are summed (the marginal distribution); with ``logits=True`` the values are
        ``logsumexp``-ed instead, which gives the logits of the marginal distribution.

        Args:
            values: dense joint values whose last dimension has length ``size``.
            keep: names of the factors to keep; the result is row-major over them in space order.
            logits: reduce with ``logsumexp`` instead of ``sum``.

        Returns:
            The reduced values.

        Shape:
            - values: :math:`(*, \\text{size})`
            - output: :math:`(*, \\prod_{f \\in keep} K_f)`

        Examples:
            >>> space = LabelSpace([("class", 2), ("rotation", 4)])
            >>> space.marginal(torch.full((1, 8), 0.125), keep=["class"])
            tensor([[0.5000, 0.5000]])
        """
        self._check_joint_axis("values", values, -1)
        kept = self._kept_positions(keep)
        grid = self.unflatten(values)
        dropped = tuple(values.ndim - 1 + i for i in range(len(self._sizes)) if i not in kept)
        if dropped:
            grid = torch.logsumexp(grid, dim=dropped) if logits else grid.sum(dim=dropped)
        # the kept axes, row-major: the sub-space's layout (no -1: the leading dims may hold a 0)
        return grid.reshape(*values.shape[:-1], math.prod([self._sizes[i] for i in kept]))

    def select(self, values: Tensor, states: Tensor | Sequence[int]) -> Tensor:
        """Per row, the values of every class at that row's pretext states.

        ``out[r, c] = values[r, encode(c, *states[r])]``: the column of each class at the given
        states. With one tuple of states for every row it is a view of ``values``.

        Args:
            values: joint values, one row per state row.
            states: the pretext states of each row ``(R, F - 1)``, or one sequence of ``F - 1``
                ints for all rows.

        Returns:
            The class values ``(R, N)``.

        Examples:
            >>> space = LabelSpace([("class", 2), ("rotation", 4)])
            >>> space.select(torch.arange(8.0).expand(2, 8), torch.tensor([[1], [3]]))
            tensor([[1., 5.],
                    [3., 7.]])
        """
        self._check_joint_axis("values", values, -1)
        per_class: Tensor = values.unflatten(-1, (self._sizes[0], self.size // self._sizes[0]))
        offsets = self.offset(states)
        if not isinstance(offsets, Tensor):  # one offset for every row: a view
            return per_class[..., offsets]
        picked = per_class.gather(-1, offsets.view(-1, 1, 1).expand(-1, self._sizes[0], 1))
        return picked.squeeze(-1)

    def offset(self, states: Tensor | Sequence[int]) -> Tensor | int:
        """The joint index of class 0 at the given pretext states (``encode((0, *states))``).

        A joint index is ``class * (size / N) + offset(states)``. Ints in, an int out; a ``(*, F - 1)``
        tensor in, a ``(*)`` long tensor out.
        """
        strides = self.strides[1:]
        if not isinstance(states, Tensor):
            return sum(int(s) * stride for s, stride in zip(states, strides, strict=True))
        return (states.long() * torch.tensor(strides, device=states.device)).sum(dim=-1)

    def _kept_positions(self, keep: Sequence[str]) -> set[int]:
        if isinstance(keep, str):
            keep = [keep]
        unknown = [name for name in keep if name not in self._names]
        if unknown:
            raise ValueError(
                f"keep names factors {unknown} that this space lacks; it has {list(self._names)}"
            )
        kept = {self.index(name) for name in keep}
        if len(kept) != len(keep):
            raise ValueError(f"keep must not repeat a factor, got {list(keep)}")
        return kept

    def sub(self, keep: Sequence[str]) -> LabelSpace:
        """The space of the factors in ``keep`` (in this space's order); must keep ``"class"``."""
        kept = {self.index(name) for name in keep}
        return LabelSpace(
            [(n, s) for i, (n, s) in enumerate(zip(self._names, self._sizes, strict=True)) if i in kept]
        )


# ---------------------------------------------------------------------- joint indices of targets
# A target's joint indices need only the pretext factors' sizes (the class count may be unknown):
# the class-major layout makes ``j = class * K + offset``, whatever ``N`` is.


def lift_index(index: Tensor, states: Tensor, num_states: int) -> Tensor:
    """Joint indices after appending a factor of ``num_states`` states (innermost): ``j K + s``.

    ``index`` is ``(B,)`` or ``(B, M)``; ``states`` ``(B,)``, one state per row.
    """
    return torch.add(states if index.ndim == 1 else states.unsqueeze(1), index, alpha=num_states)


def project_index(index: Tensor, sizes: Sequence[int], kept: Sequence[bool]) -> Tensor:
    """Joint indices over ``class × p1 × …`` mapped onto ``class`` × the kept pretext factors.

    Args:
        index: joint indices, any shape.
        sizes: the pretext factors' sizes (after ``class``), in order.
        kept: for each pretext factor, whether it stays.
    """
    out = torch.div(index, math.prod(sizes), rounding_mode="floor")  # the class
    stride = math.prod(sizes)
    for size, keep in zip(sizes, kept, strict=True):
        stride //= size
        if keep:
            digit = torch.div(index, stride, rounding_mode="floor") % size
            out = out * size + digit
    return out
