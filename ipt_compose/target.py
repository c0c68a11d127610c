"""Joint training targets: distributions over a :class:`~ipt_compose.LabelSpace`, kept sparse.

A :class:`JointTarget` holds one probability distribution per row over ``class × p1 × p2 …`` as a
mixture: per row ``M`` weighted joint indices, ``index`` and ``weight``, both ``(B, M)``. Hard labels
give ``M = 1``; every MixUp/CutMix doubles ``M``; lifting by a pretext keeps it. Soft labels
``(B, N)`` (torchvision's or timm's mixers) are the mixture whose ``M = N`` components are every
class, in order: one index vector shared by all rows (a stride-0 view, see :attr:`is_dense`), so they
cost no more than the probabilities themselves. The ``(B, N*K)`` tensor is never built unless
:meth:`~JointTarget.dense` is asked for.

Because the joint layout is class-major (design item 2), a joint index does not depend on the class
count, so hard labels need ``num_classes`` only when :meth:`JointTarget.dense` is asked for.

Every method that takes values from outside (labels, states, a pairing, ``λ``) checks them, with one
fused comparison each; :meth:`~JointTarget.lift` and :meth:`~JointTarget.mix` take
``validate=False`` for values the caller produced itself (:class:`~ipt_compose.Compose` and the
mixers pass it for the states and pairings they draw).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ipt_compose._checks import (
    check_integer_tensor,
    check_positive_int,
    check_probabilities,
    check_range,
    check_values,
    describe,
)
from ipt_compose.space import LabelSpace, lift_index, project_index

__all__ = ["JointTarget"]

Factors = tuple[tuple[str, int], ...]


class JointTarget:
    """A batch of probability distributions over a joint label space.

    Build one with :meth:`from_labels`; transform it with :meth:`lift` (apply a pretext),
    :meth:`mix` (MixUp/CutMix) and :meth:`marginal`; read it with :meth:`dense` or hand it to
    :func:`~ipt_compose.joint_cross_entropy`, which never builds the dense form.

    Args:
        weight: per-row weights. With ``index`` they are mixture weights ``(B, M)``; without, the
            probabilities of every joint label ``(B, size)`` (the dense form).
        index: joint indices ``(B, M)`` of the mixture, or ``None`` for the dense form.
        num_classes: size of the class factor, or ``None`` when unknown (hard labels only).
        factors: the pretext factors after ``"class"``, as ``(name, size)`` pairs in order.

    The constructor checks the values it is given: rows are non-negative and sum to 1, indices lie
    in the space (or are non-negative when the class count is unknown).

    Shape:
        - index: :math:`(B, M)`
        - weight: :math:`(B, M)`, or :math:`(B, \\text{size})` in the dense form

    Examples:
        >>> t = JointTarget.from_labels(torch.tensor([1, 0]), num_classes=2)
        >>> t = t.lift(torch.tensor([3, 0]), "rotation", 4)
        >>> t.dense().argmax(dim=1)
        tensor([7, 0])
    """

    __slots__ = ("_factors", "_index", "_num_classes", "_num_states", "_weight")

    # Hard labels, lifted or not (one joint label of weight 1 per row), keep their indices as (B,)
    # and no weights, which is what `F.cross_entropy` takes; every other target is (B, M) and (B, M).
    _index: Tensor
    _weight: Tensor | None
    _num_classes: int | None
    _factors: Factors
    _num_states: int

    def __init__(
        self,
        weight: Tensor,
        index: Tensor | None = None,
        *,
        num_classes: int | None = None,
        factors: Sequence[tuple[str, int]] = (),
    ) -> None:
        if not isinstance(weight, Tensor) or not weight.is_floating_point():
            raise TypeError(f"weight must be a floating-point tensor, got {describe(weight)}")
        if weight.ndim != 2:
            raise ValueError(f"weight must have shape (B, M), got shape {tuple(weight.shape)}")
        pairs = tuple((str(n), int(s)) for n, s in factors)
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        space_size = None if num_classes is None else num_classes * math.prod(s for _, s in pairs)
        if index is None:
            if space_size is None:
                raise ValueError("num_classes is required for the dense form (index=None)")
            if weight.shape[1] != space_size:
                raise ValueError(
                    f"weight must have {space_size} columns (the size of "
                    f"{LabelSpace([('class', num_classes), *pairs])!r}) in the dense form, "  # type: ignore[list-item]
                    f"got {weight.shape[1]}"
                )
            index = _all_labels(weight)
        else:
            check_integer_tensor("index", index)
            if index.shape != weight.shape:
                raise ValueError(
                    f"index and weight must have the same shape (B, M), got {tuple(index.shape)} "
                    f"and {tuple(weight.shape)}"
                )
            if space_size is None:
                check_values(index.ge(0).all(), "index must hold non-negative joint indices")
            else:
                check_range("index", index, space_size, "joint index")
            index = index.to(weight.device, torch.long).contiguous()
        check_probabilities("weight", weight.detach())
        self._set(index, weight, num_classes, pairs)

    def _set(self, index: Tensor, weight: Tensor | None, num_classes: int | None, factors: Factors) -> None:
        self._index = index
        self._weight = weight
        self._num_classes = num_classes
        self._factors = factors
        self._num_states = math.prod([size for _, size in factors])

    @classmethod
    def _make(
        cls, index: Tensor, weight: Tensor | None, num_classes: int | None, factors: Factors
    ) -> JointTarget:
        """A target from values this module produced or checked (no checks)."""
        target = cls.__new__(cls)
        target._set(index, weight, num_classes, factors)
        return target

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_labels(cls, labels: Tensor, num_classes: int | None = None) -> JointTarget:
        """A target over ``class`` alone from hard labels ``(B,)`` or probabilities ``(B, N)``.

        Args:
            labels: integer class indices, or a float tensor of per-row class probabilities (e.g.
                the output of torchvision's ``v2.CutMix`` or timm's ``Mixup``).
            num_classes: the class count. Optional for hard labels (then :meth:`dense` asks for
                it); for probabilities it must equal their width if given.

        Returns:
            The target: one component per row for hard labels, every class for probabilities.

        Shape:
            - labels: :math:`(B)` or :math:`(B, N)`

        Examples:
            >>> JointTarget.from_labels(torch.tensor([2, 0]), num_classes=3).dense()
            tensor([[0., 0., 1.],
                    [1., 0., 0.]])
        """
        if not isinstance(labels, Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        if labels.is_floating_point():
            if labels.ndim == 1:
                raise TypeError(
                    f"labels of shape (B,) must be integer class indices, got dtype {labels.dtype}; "
                    "probabilities must have shape (B, N)"
                )
            check_probabilities("labels", labels)
            if num_classes is not None and labels.shape[1] != num_classes:
                raise ValueError(
                    f"labels are probabilities over {labels.shape[1]} classes but num_classes is "
                    f"{num_classes}; they must agree"
                )
            return cls._make(_all_labels(labels), labels, labels.shape[1], ())
        check_integer_tensor("labels", labels)
        if labels.ndim != 1:
            raise ValueError(
                f"labels must be class indices of shape (B,) or probabilities of shape (B, N), "
                f"got an integer tensor of shape {tuple(labels.shape)}"
            )
        if num_classes is None:
            check_values(labels.ge(0).all(), "labels must be non-negative class indices")
        else:
            check_range("labels", labels, num_classes, "class index")
        return cls._make(labels.long(), None, num_classes, ())

    # ------------------------------------------------------------------ description
    @property
    def batch_size(self) -> int:
        """Number of rows ``B``."""
        return self._index.shape[0]

    @property
    def num_classes(self) -> int | None:
        """Size of the class factor, or ``None`` if the labels did not say."""
        return self._num_classes

    @property
    def factors(self) -> Factors:
        """The pretext factors after ``"class"``, as ``(name, size)`` pairs."""
        return self._factors

    @property
    def num_states(self) -> int:
        """Product of the pretext factor sizes (the joint index stride of the class factor)."""
        return self._num_states

    @property
    def is_dense(self) -> bool:
        """Whether every joint label is a component, in order (soft labels before any pretext)."""
        index = self._index
        return self._weight is not None and index.stride(0) == 0 and index.shape[1] == self._width()

    @property
    def hard_labels(self) -> Tensor | None:
        """The joint label of each row ``(B,)`` when every row is one joint label of weight 1.

        That is hard labels lifted by pretexts (no mixing, no soft labels); ``None`` otherwise.
        :func:`~ipt_compose.joint_cross_entropy` then is ``F.cross_entropy`` on these indices.
        """
        return self._index if self._weight is None else None

    @property
    def index(self) -> Tensor:
        """Joint indices ``(B, M)`` (``torch.long``)."""
        return self._index.unsqueeze(1) if self._weight is None else self._index

    @property
    def weight(self) -> Tensor:
        """Weights ``(B, M)`` aligned with :attr:`index`; rows sum to 1."""
        if self._weight is None:
            return torch.ones(self._index.shape[0], 1, dtype=torch.get_default_dtype(), device=self.device)
        return self._weight

    @property
    def device(self) -> torch.device:
        return self._index.device

    @property
    def dtype(self) -> torch.dtype:
        return torch.get_default_dtype() if self._weight is None else self._weight.dtype

    def space(self, num_classes: int | None = None) -> LabelSpace:
        """The :class:`LabelSpace` of this target.

        Args:
            num_classes: the class count, needed only if the labels did not give one; if both are
                known they must agree.
        """
        n = self._resolve_num_classes(num_classes)
        return LabelSpace([("class", n), *self._factors])

    def __len__(self) -> int:
        return self.batch_size

    def __repr__(self) -> str:
        form = "dense" if self.is_dense else f"mixture, M={self.index.shape[1]}"
        names = ["class", *(n for n, _ in self._factors)]
        return f"JointTarget(B={self.batch_size}, {form}, factors={names}, num_classes={self._num_classes})"

    # ------------------------------------------------------------------ algebra
    def lift(self, states: Tensor, name: str, num_states: int, *, validate: bool = True) -> JointTarget:
        """Append a pretext factor: row ``i`` becomes ``p_i ⊗ onehot(states[i])`` (design item 4).

        Args:
            states: the pretext state of each row.
            name: the new factor's name (unique in the space).
            num_states: the new factor's size ``K``.
            validate: check ``states`` (shape, dtype, range). ``False`` is for states the caller
                drew itself (``torch.long``, in range, on the target's device), as
                :class:`~ipt_compose.Compose` does; wrong states then give a wrong target.

        Returns:
            The lifted target; marginalising ``name`` out gives this target back.

        Shape:
            - states: :math:`(B)`

        Examples:
            >>> t = JointTarget.from_labels(torch.tensor([1]), num_classes=2)
            >>> t.lift(torch.tensor([2]), "rotation", 4).index
            tensor([[6]])
        """
        if validate:
            check_positive_int("num_states", num_states)
            if name == "class" or name in dict(self._factors):
                raise ValueError(f"name must be a new factor name, got {name!r} which is already used")
            states = self._check_rows("states", states, num_states)
        return JointTarget._make(
            lift_index(self._index, states, num_states),
            self._weight,
            self._num_classes,
            (*self._factors, (name, num_states)),
        )

    def mix(self, pairing: Tensor | int, lam: Tensor | float, *, validate: bool = True) -> JointTarget:
        """MixUp/CutMix label rule: row ``i`` becomes ``λ p_i + (1 - λ) p_{π(i)}`` (design item 5).

        ``λ`` weights the row's own label (torchvision's and timm's convention; for CutMix
        ``λ = 1 - box area / image area``).

        Args:
            pairing: the partner ``π(i)`` of each row (an index tensor, e.g. a permutation), or
                an int ``shift``: row ``i`` is paired with row ``i - shift`` (``torch.roll``, as
                torchvision's mixers pair rows with ``shift=1``).
            lam: the weight of each row's own label: a float, a scalar tensor or one per row.
            validate: check ``pairing`` and ``lam``. ``False`` is for values the caller drew
                itself (as the mixers do).

        Returns:
            The mixed target over the same space. ``M`` doubles, except for a dense target, which
            stays dense.

        Shape:
            - pairing: :math:`(B)`
            - lam: :math:`()` or :math:`(B)`

        Examples:
            >>> t = JointTarget.from_labels(torch.tensor([0, 1]), num_classes=2)
            >>> t.mix(torch.tensor([1, 0]), 0.75).dense()
            tensor([[0.7500, 0.2500],
                    [0.2500, 0.7500]])
        """
        if validate:
            if isinstance(pairing, bool) or not isinstance(pairing, int | Tensor):
                raise TypeError(f"pairing must be an index tensor or an int shift, got {describe(pairing)}")
            if isinstance(pairing, Tensor):
                pairing = self._check_rows("pairing", pairing, self.batch_size)
            lam = self._check_lam(lam)
        own = _column(lam, self.dtype, self.device)
        index = self._index
        if self._weight is None:  # hard labels: λ and 1 - λ
            weight = torch.cat([own, 1 - own], dim=1).expand(index.shape[0], 2)
            pairs = torch.stack([index, _partner(index, pairing)], dim=1)
            return JointTarget._make(pairs, weight, *self._space_args())
        if index.stride(0) == 0:  # every row has the same components: mix the weights alone
            mixed = _blend(own, self._weight, _partner(self._weight, pairing))
            return JointTarget._make(index, mixed, *self._space_args())
        weight = torch.cat([own * self._weight, (1 - own) * _partner(self._weight, pairing)], dim=1)
        pairs = torch.cat([index, _partner(index, pairing)], dim=1)
        return JointTarget._make(pairs, weight, *self._space_args())

    def marginal(self, keep: Sequence[str] = ("class",)) -> JointTarget:
        """Sum out every factor not in ``keep`` (``"class"`` must be kept).

        Examples:
            >>> t = JointTarget.from_labels(torch.tensor([1]), num_classes=2)
            >>> t.lift(torch.tensor([3]), "rotation", 4).marginal(["class"]).dense()
            tensor([[0., 1.]])
        """
        if isinstance(keep, str):
            keep = [keep]
        names = ["class", *(n for n, _ in self._factors)]
        unknown = [k for k in keep if k not in names]
        if unknown:
            raise ValueError(f"keep names factors {unknown} that this target lacks; it has {names}")
        if "class" not in keep:
            raise ValueError(f"keep must include 'class' (a target's first factor), got {list(keep)}")
        kept_factors = tuple((n, s) for n, s in self._factors if n in keep)
        if self.is_dense:
            dense = self.space().marginal(self.weight, keep)
            return JointTarget._make(_all_labels(dense), dense, self._num_classes, kept_factors)
        index = project_index(
            self._index, [s for _, s in self._factors], [n in keep for n, _ in self._factors]
        )
        return JointTarget._make(index, self._weight, self._num_classes, kept_factors)

    def dense(self, num_classes: int | None = None) -> Tensor:
        """The probabilities ``(B, size)`` that ``F.cross_entropy(logits, dense)`` takes as-is.

        Args:
            num_classes: the class count, needed only if the labels did not give one.

        Returns:
            A float tensor whose rows are non-negative and sum to 1.

        Shape:
            - output: :math:`(B, N \\cdot K_1 \\cdots K_m)`
        """
        space = self.space(num_classes)
        if self.is_dense:
            return self.weight
        if self._num_classes is None:
            classes = torch.div(self._index, self.num_states, rounding_mode="floor")
            check_range("labels", classes, space.num_classes, "class index")
        weight = self.weight
        out = weight.new_zeros(self.batch_size, space.size)
        return out.scatter_add_(1, self.index, weight)

    def repeat_interleave(self, repeats: int) -> JointTarget:
        """Repeat each row ``repeats`` times in place order (row ``r`` ← row ``r // repeats``)."""
        check_positive_int("repeats", repeats)
        index = self._index
        if self._weight is not None and index.stride(0) == 0 and index.shape[0]:
            index = _shared_rows(index[0], index.shape[0] * repeats)
        else:
            index = index.repeat_interleave(repeats, dim=0)
        weight = None if self._weight is None else self._weight.repeat_interleave(repeats, dim=0)
        return JointTarget._make(index, weight, *self._space_args())

    def to(self, *args: object, **kwargs: object) -> JointTarget:
        """Move the weights (and indices) like :meth:`torch.Tensor.to`; indices stay ``long``."""
        weight = self.weight.to(*args, **kwargs)  # type: ignore[call-overload]
        if self._weight is None and weight.dtype == torch.get_default_dtype():  # still hard labels
            return JointTarget._make(self._index.to(weight.device), None, *self._space_args())
        return JointTarget._make(self.index.to(weight.device), weight, *self._space_args())

    # ------------------------------------------------------------------ helpers
    def _space_args(self) -> tuple[int | None, Factors]:
        return self._num_classes, self._factors

    def _width(self) -> int | None:
        return None if self._num_classes is None else self._num_classes * self.num_states

    def _resolve_num_classes(self, num_classes: int | None) -> int:
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
            if self._num_classes is not None and num_classes != self._num_classes:
                raise ValueError(
                    f"num_classes={num_classes} disagrees with the target's {self._num_classes} classes"
                )
            return num_classes
        if self._num_classes is None:
            raise ValueError(
                "this target came from hard labels with no class count; pass num_classes "
                "(to Compose(..., num_classes=N), JointTarget.from_labels or dense(num_classes=N))"
            )
        return self._num_classes

    def _check_rows(self, name: str, states: Tensor, high: int) -> Tensor:
        check_integer_tensor(name, states)
        if states.shape != (self.batch_size,):
            raise ValueError(
                f"{name} must have shape ({self.batch_size},) (one per row), got {tuple(states.shape)}"
            )
        check_range(name, states, high)
        return states.to(self.device, torch.long)

    def _check_lam(self, lam: Tensor | float) -> Tensor | float:
        if isinstance(lam, bool) or not isinstance(lam, Tensor | float | int):
            raise TypeError(f"lam must be a float or a tensor, got {type(lam).__name__}")
        if not isinstance(lam, Tensor):
            if not 0 <= lam <= 1:
                raise ValueError(f"lam must lie in [0, 1], got {lam}")
            return float(lam)
        if lam.shape not in ((), (self.batch_size,)):
            raise ValueError(
                f"lam must be a scalar or have shape ({self.batch_size},), got {tuple(lam.shape)}"
            )
        check_values(lam.ge(0).all() & lam.le(1).all(), "lam must lie in [0, 1]")
        return lam


def _all_labels(weight: Tensor) -> Tensor:
    """The index of the dense form: every column, in order, one vector shared by all rows."""
    return _shared_rows(torch.arange(weight.shape[1], device=weight.device), weight.shape[0])


def _shared_rows(row: Tensor, batch: int) -> Tensor:
    """``row`` as the index of ``batch`` rows, one vector shared by all (row stride 0, even for
    ``batch == 1``, which ``expand`` would give stride ``M``)."""
    return row.as_strided((batch, row.shape[0]), (0, row.stride(0)))


def _column(lam: Tensor | float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``λ`` as a ``(B, 1)`` or ``(1, 1)`` column of the target's dtype and device."""
    if not isinstance(lam, Tensor):
        return torch.full((1, 1), lam, dtype=dtype, device=device)
    return lam.to(device=device, dtype=dtype).reshape(-1, 1)


def _partner(values: Tensor, pairing: Tensor | int) -> Tensor:
    """The rows of each row's partner: ``values[pairing]``, or a roll by ``pairing`` rows."""
    if isinstance(pairing, int):
        return values.roll(pairing, dims=0) if values.stride(0) else values
    return values[pairing]


def _blend(own: Tensor, mine: Tensor, theirs: Tensor) -> Tensor:
    return own * mine + (1 - own) * theirs
