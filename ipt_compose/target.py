"""Joint training targets: distributions over a :class:`~ipt_compose.LabelSpace`, kept sparse.

A :class:`JointTarget` holds one probability distribution per row over ``class × p1 × p2 …``. It
has two forms that behave identically:

* **mixture** — per row a few weighted joint indices ``(index, weight)``, both ``(B, M)``. Hard
  labels give ``M = 1``; every MixUp/CutMix doubles ``M``; lifting by a pretext keeps ``M``. The
  ``(B, N*K)`` tensor is never built.
* **dense** — probabilities ``(B, size)``, what soft labels ``(B, N)`` from torchvision's or timm's
  mixers are before any pretext is applied. Lifting a dense target turns it into a mixture with
  ``M = N`` (the nonzero columns of ``p ⊗ onehot(s)``).

Because the joint layout is class-major (design item 2), a joint index does not depend on the class
count, so hard labels need ``num_classes`` only when :meth:`JointTarget.dense` is asked for.
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
)
from ipt_compose.space import LabelSpace

__all__ = ["JointTarget"]

Factors = tuple[tuple[str, int], ...]


class JointTarget:
    """A batch of probability distributions over a joint label space.

    Build one with :meth:`from_labels`; transform it with :meth:`lift` (apply a pretext),
    :meth:`mix` (MixUp/CutMix) and :meth:`marginal`; read it with :meth:`dense` or hand it to
    :func:`~ipt_compose.joint_cross_entropy`, which never builds the dense form.

    Args:
        weight: per-row weights. With ``index`` they are mixture weights ``(B, M)``; without, the
            dense probabilities ``(B, size)``.
        index: joint indices ``(B, M)`` (``torch.long``) of the mixture form, or ``None`` for the
            dense form.
        num_classes: size of the class factor, or ``None`` when unknown (hard labels only).
        factors: the pretext factors after ``"class"``, as ``(name, size)`` pairs in order.

    Shape:
        - index: :math:`(B, M)`
        - weight: :math:`(B, M)`, or :math:`(B, \\text{size})` in the dense form

    Examples:
        >>> t = JointTarget.from_labels(torch.tensor([1, 0]), num_classes=2)
        >>> t = t.lift(torch.tensor([3, 0]), "rotation", 4)
        >>> t.dense().argmax(dim=1)
        tensor([7, 0])
    """

    __slots__ = ("_factors", "_index", "_num_classes", "_weight")

    def __init__(
        self,
        weight: Tensor,
        index: Tensor | None = None,
        *,
        num_classes: int | None = None,
        factors: Sequence[tuple[str, int]] = (),
    ) -> None:
        if not isinstance(weight, Tensor) or not weight.is_floating_point():
            raise TypeError(f"weight must be a floating-point tensor, got {_describe(weight)}")
        if weight.ndim != 2:
            raise ValueError(f"weight must have shape (B, M), got shape {tuple(weight.shape)}")
        self._factors: Factors = tuple((str(n), int(s)) for n, s in factors)
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        self._num_classes = num_classes
        if index is None:
            if num_classes is None:
                raise ValueError("num_classes is required for the dense form (index=None)")
            if weight.shape[1] != self.space().size:
                raise ValueError(
                    f"weight must have {self.space().size} columns (the size of {self.space()!r}) "
                    f"in the dense form, got {weight.shape[1]}"
                )
        else:
            check_integer_tensor("index", index)
            if index.shape != weight.shape:
                raise ValueError(
                    f"index and weight must have the same shape (B, M), got {tuple(index.shape)} "
                    f"and {tuple(weight.shape)}"
                )
            index = index.long()
        self._index = index
        self._weight = weight

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
            The target: the mixture form for hard labels, the dense form for probabilities.

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
            check_probabilities("labels", labels)
            if num_classes is not None and labels.shape[1] != num_classes:
                raise ValueError(
                    f"labels are probabilities over {labels.shape[1]} classes but num_classes is "
                    f"{num_classes}; they must agree"
                )
            return cls(labels, None, num_classes=labels.shape[1])
        check_integer_tensor("labels", labels)
        if labels.ndim != 1:
            raise ValueError(
                f"labels must be class indices of shape (B,) or probabilities of shape (B, N), "
                f"got an integer tensor of shape {tuple(labels.shape)}"
            )
        if num_classes is None:
            check_values(labels >= 0, "labels must be non-negative class indices")
        else:
            check_range("labels", labels, num_classes, "class index")
        index = labels.long().unsqueeze(1)
        weight = torch.ones(index.shape, dtype=torch.get_default_dtype(), device=labels.device)
        return cls(weight, index, num_classes=num_classes)

    # ------------------------------------------------------------------ description
    @property
    def batch_size(self) -> int:
        """Number of rows ``B``."""
        return self._weight.shape[0]

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
        return math.prod([size for _, size in self._factors])

    @property
    def is_dense(self) -> bool:
        """Whether the target is held in the dense form."""
        return self._index is None

    @property
    def index(self) -> Tensor:
        """Joint indices ``(B, M)`` of the mixture form (``arange(size)`` rows for a dense one)."""
        if self._index is None:
            cols = torch.arange(self._weight.shape[1], device=self._weight.device)
            return cols.expand(self._weight.shape)
        return self._index

    @property
    def weight(self) -> Tensor:
        """Weights ``(B, M)`` aligned with :attr:`index`."""
        return self._weight

    @property
    def device(self) -> torch.device:
        return self._weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self._weight.dtype

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
        form = "dense" if self.is_dense else f"mixture, M={self._weight.shape[1]}"
        names = ["class", *(n for n, _ in self._factors)]
        return f"JointTarget(B={self.batch_size}, {form}, factors={names}, num_classes={self._num_classes})"

    # ------------------------------------------------------------------ algebra
    def lift(self, states: Tensor, name: str, num_states: int) -> JointTarget:
        """Append a pretext factor: row ``i`` becomes ``p_i ⊗ onehot(states[i])`` (design item 4).

        Args:
            states: the pretext state of each row.
            name: the new factor's name (unique in the space).
            num_states: the new factor's size ``K``.

        Returns:
            The lifted target; marginalising ``name`` out gives this target back.

        Shape:
            - states: :math:`(B)`

        Examples:
            >>> t = JointTarget.from_labels(torch.tensor([1]), num_classes=2)
            >>> t.lift(torch.tensor([2]), "rotation", 4).index
            tensor([[6]])
        """
        check_positive_int("num_states", num_states)
        if name == "class" or name in dict(self._factors):
            raise ValueError(f"name must be a new factor name, got {name!r} which is already used")
        return self._lift(self._check_states("states", states, num_states), name, num_states)

    def _lift(self, states: Tensor, name: str, num_states: int) -> JointTarget:
        """:meth:`lift` for states the library drew itself (already long, in range, on device)."""
        index = self.index * num_states + states.unsqueeze(1).to(self._weight.device)
        return JointTarget(
            self._weight,
            index,
            num_classes=self._num_classes,
            factors=(*self._factors, (name, num_states)),
        )

    def mix(self, pairing: Tensor, lam: Tensor | float) -> JointTarget:
        """MixUp/CutMix label rule: row ``i`` becomes ``λ p_i + (1 - λ) p_{π(i)}`` (design item 5).

        ``λ`` weights the row's own label (torchvision's and timm's convention; for CutMix
        ``λ = 1 - box area / image area``).

        Args:
            pairing: the partner ``π(i)`` of each row (any index tensor, e.g. a permutation or
                ``arange(B).roll(1)``).
            lam: the weight of each row's own label: a float, a scalar tensor or one per row.

        Returns:
            The mixed target over the same space. A mixture target's ``M`` doubles; a dense one
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
        return self._mix(self._check_states("pairing", pairing, self.batch_size), self._check_lam(lam))

    def _mix(self, pairing: Tensor, lam: Tensor) -> JointTarget:
        """:meth:`mix` for a pairing and λ that a mixer drew itself (valid by construction)."""
        lam = lam.to(self._weight.dtype)
        own = lam.unsqueeze(1) if lam.ndim == 1 else lam
        weight = self._weight
        if self._index is None:
            mixed = own * weight + (1 - own) * weight[pairing]
            return self._with(mixed, None)
        return self._with(
            torch.cat([own * weight, (1 - own) * weight[pairing]], dim=1),
            torch.cat([self._index, self._index[pairing]], dim=1),
        )

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
        if self._index is None:
            dense = self.space().marginal(self._weight, keep)
            return JointTarget(dense, None, num_classes=self._num_classes, factors=kept_factors)
        # Joint index = class * prod(sizes) + row-major offset of the pretext states.
        new_index = torch.div(self._index, self.num_states, rounding_mode="floor")
        stride = self.num_states
        for name, size in self._factors:
            stride //= size
            if name in keep:
                digit = torch.div(self._index, stride, rounding_mode="floor") % size
                new_index = new_index * size + digit
        return self._with(self._weight, new_index, factors=kept_factors)

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
        if self._index is None:
            return self._weight
        check_range("labels", torch.div(self._index, self.num_states, rounding_mode="floor"),
                    space.num_classes, "class index")
        out = self._weight.new_zeros(self.batch_size, space.size)
        return out.scatter_add_(1, self._index, self._weight)

    def repeat_interleave(self, repeats: int) -> JointTarget:
        """Repeat each row ``repeats`` times in place order (row ``r`` ← row ``r // repeats``)."""
        check_positive_int("repeats", repeats)
        index = None if self._index is None else self._index.repeat_interleave(repeats, dim=0)
        return self._with(self._weight.repeat_interleave(repeats, dim=0), index)

    def to(self, *args: object, **kwargs: object) -> JointTarget:
        """Move the weights (and indices) like :meth:`torch.Tensor.to`; indices stay ``long``."""
        weight = self._weight.to(*args, **kwargs)  # type: ignore[call-overload]
        index = None if self._index is None else self._index.to(weight.device)
        return self._with(weight, index)

    # ------------------------------------------------------------------ helpers
    def _with(
        self, weight: Tensor, index: Tensor | None, *, factors: Factors | None = None
    ) -> JointTarget:
        return JointTarget(
            weight,
            index,
            num_classes=self._num_classes,
            factors=self._factors if factors is None else factors,
        )

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

    def _check_states(self, name: str, states: Tensor, high: int) -> Tensor:
        check_integer_tensor(name, states)
        if states.shape != (self.batch_size,):
            raise ValueError(
                f"{name} must have shape ({self.batch_size},) (one per row), got {tuple(states.shape)}"
            )
        check_range(name, states, high)
        return states.long()

    def _check_lam(self, lam: Tensor | float) -> Tensor:
        if isinstance(lam, bool) or not isinstance(lam, Tensor | float | int):
            raise TypeError(f"lam must be a float or a tensor, got {type(lam).__name__}")
        lam_t = torch.as_tensor(lam, dtype=self._weight.dtype, device=self._weight.device)
        if lam_t.shape not in ((), (self.batch_size,)):
            raise ValueError(
                f"lam must be a scalar or have shape ({self.batch_size},), got {tuple(lam_t.shape)}"
            )
        check_values((lam_t >= 0) & (lam_t <= 1), "lam must lie in [0, 1]")
        return lam_t


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of dtype {value.dtype}"
    return type(value).__name__
