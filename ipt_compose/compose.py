"""Compose pretexts (and mixers) into one joint-label transform, and the batch it returns."""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from ipt_compose._checks import check_positive_int, check_range
from ipt_compose._rows import model_inputs, state_table
from ipt_compose.mix import Mixer, _as_mixer
from ipt_compose.pretext.base import Pretext
from ipt_compose.space import LabelSpace
from ipt_compose.target import JointTarget

__all__ = ["Compose", "PretextBatch"]

Mode = Literal["sample", "all"]


class PretextBatch(NamedTuple):
    """What :class:`Compose` returns: model inputs, pretext states and the joint target.

    A named tuple: ``inputs, states, target = pretext(images, labels)`` works too.

    Attributes:
        inputs: the images after the input-site pretexts (and mixers), ``(B_in, C, H, W)``.
        states: one row of pretext states per output row, columns in ``Compose`` order,
            ``(B', n_pretexts)`` ``torch.long``. ``B' = B`` in sample mode.
        target: the :class:`~ipt_compose.target.JointTarget` of the output rows, ``B'`` rows.
    """

    inputs: Tensor
    states: Tensor
    target: JointTarget


class Compose:
    """Chain pretexts and mixers; label every output row in the product space ``class × p1 × p2 …``.

    Items act in list order. Input-site pretexts (:class:`~ipt_compose.Rotation`,
    :class:`~ipt_compose.Cutout`) transform the images here; feature-site pretexts
    (:class:`~ipt_compose.ChannelDrop`) only draw their states here and act inside
    :class:`~ipt_compose.JointModel`, after every input transform. Mixers
    (:class:`~ipt_compose.MixUp`, :class:`~ipt_compose.CutMix`, or torchvision's ``v2.MixUp`` /
    ``v2.CutMix``) mix what came before them: class labels if they come first, joint labels if they
    follow an input pretext. A nested ``Compose`` is flattened.

    Args:
        pretexts: pretexts and mixers, in order (at least one pretext).
        num_classes: the class count; needed only to make hard labels dense, checked against soft
            labels' width.
        mode: ``"sample"`` draws one state per row (the cost of plain training); ``"all"``
            enumerates every state (SLA's replication): input pretexts replicate the batch here,
            feature pretexts replicate rows inside the model from their site on.

    Shape:
        - images: :math:`(B, C, H, W)`
        - labels: :math:`(B)` integers or :math:`(B, N)` probabilities
        - output: ``inputs`` :math:`(B \\cdot K_{in}, C, H, W)`, ``states`` and ``target``
          :math:`(B \\cdot K_{in} \\cdot K_{feat})` rows; ``K = 1`` in sample mode.

    Row order in ``mode="all"``: ``inputs`` is row-major over (sample, input states in list
    order); output row ``r`` comes from input row ``r // K_feat`` with feature state ``r % K_feat``
    (feature pretexts row-major in list order).

    Examples:
        >>> pretext = Compose([ChannelDrop(k=4), Rotation()], num_classes=10)
        >>> pretext.space()
        LabelSpace(class=10, channel_drop=4, rotation=4)
        >>> batch = pretext(torch.rand(8, 3, 32, 32), torch.randint(10, (8,)))
        >>> batch.inputs.shape, batch.states.shape, batch.target.dense().shape
        (torch.Size([8, 3, 32, 32]), torch.Size([8, 2]), torch.Size([8, 160]))
    """

    def __init__(
        self,
        pretexts: Sequence[Pretext | Mixer | nn.Module | Compose],
        *,
        num_classes: int | None = None,
        mode: Mode = "sample",
    ) -> None:
        if mode not in ("sample", "all"):
            raise ValueError(f"mode must be 'sample' or 'all', got {mode!r}")
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        if isinstance(pretexts, nn.Module | Pretext) or not isinstance(pretexts, Iterable):
            raise TypeError(
                f"pretexts must be a list of pretexts, got {type(pretexts).__name__}; "
                "wrap a single pretext in a list"
            )
        items = list(_flatten(pretexts))
        if not any(isinstance(item, Pretext) for item in items):
            raise ValueError("pretexts must hold at least one pretext (ChannelDrop, Rotation, …)")
        seen: dict[str, Pretext] = {}
        feature_seen: Pretext | None = None
        for item in items:
            if isinstance(item, Pretext):
                if item.name in seen:
                    raise ValueError(
                        f"two pretexts share the name {item.name!r}; give them distinct names, "
                        f"e.g. {type(item).__name__}(..., name='{item.name}_2')"
                    )
                seen[item.name] = item
                if item.site == "feature":
                    feature_seen = item
            else:
                if mode == "all":
                    raise ValueError(
                        "mixers are refused in mode='all': they would pair copies of one image; "
                        "use mode='sample'"
                    )
                if feature_seen is not None:
                    raise ValueError(
                        f"a mixer ({type(item).__name__}) cannot follow the feature-site pretext "
                        f"{feature_seen.name!r}: feature pretexts act inside the model, after every "
                        "input transform; put the mixer before it"
                    )
        self.items: tuple[Pretext | Mixer, ...] = tuple(items)
        self.num_classes = num_classes
        self.mode: Mode = mode
        self._tables: dict[tuple[int, torch.device], tuple[Tensor, int]] = {}  # mode="all"'s states

    # ------------------------------------------------------------------ description
    @property
    def pretexts(self) -> tuple[Pretext, ...]:
        """The pretexts in list order (the columns of ``batch.states``), mixers left out."""
        return tuple(item for item in self.items if isinstance(item, Pretext))

    @property
    def num_states(self) -> int:
        """Product of the pretexts' state counts ``K``; the joint width is ``num_classes * K``."""
        return math.prod([p.num_states for p in self.pretexts])

    def space(self, num_classes: int | None = None) -> LabelSpace:
        """The joint label space ``class × p1 × p2 …`` in list order.

        Args:
            num_classes: the class count; defaults to the one given to the constructor.
        """
        n = num_classes if num_classes is not None else self.num_classes
        if n is None:
            raise ValueError("num_classes is unknown: pass it here or to Compose(..., num_classes=N)")
        if self.num_classes is not None and n != self.num_classes:
            raise ValueError(f"num_classes={n} disagrees with Compose(num_classes={self.num_classes})")
        return LabelSpace([("class", n), *((p.name, p.num_states) for p in self.pretexts)])

    # ------------------------------------------------------------------ call
    def __call__(
        self,
        images: Tensor,
        labels: Tensor | JointTarget,
        *,
        generator: torch.Generator | None = None,
    ) -> PretextBatch:
        """Apply the pretexts (and mixers) to a batch and build its joint target.

        Args:
            images: the image batch.
            labels: hard labels ``(B,)``, probabilities ``(B, N)`` (e.g. from ``v2.CutMix``) or a
                :class:`~ipt_compose.target.JointTarget` over ``class`` alone (e.g. from
                :func:`~ipt_compose.from_kornia`).
            generator: a ``torch.Generator`` for the states and our mixers' draws; the global RNG
                if ``None``. torchvision mixers always use the global RNG.

        Returns:
            A :class:`PretextBatch` ``(inputs, states, target)``.
        """
        if not isinstance(images, Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4:
            raise ValueError(f"images must have shape (B, C, H, W), got shape {tuple(images.shape)}")
        if isinstance(labels, JointTarget):
            target = _class_target(labels, images.shape[0], self.num_classes).to(images.device)
        else:
            if not isinstance(labels, Tensor):
                raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
            if labels.ndim == 0 or labels.shape[0] != images.shape[0]:
                raise ValueError(
                    f"images and labels must have the same batch size, got {images.shape[0]} "
                    f"images and labels of shape {tuple(labels.shape)}"
                )
            if labels.device != images.device:
                labels = labels.to(images.device)
            target = JointTarget.from_labels(labels, self.num_classes)
        if self.mode == "all":
            return self._enumerate(images, target)
        return self._sample(images, target, generator)

    def _sample(
        self, images: Tensor, target: JointTarget, generator: torch.Generator | None
    ) -> PretextBatch:
        columns: list[Tensor] = []
        batch, device = images.shape[0], images.device
        for item in self.items:
            if isinstance(item, Pretext):
                states = item.sample_states(batch, device=device, generator=generator)
                if item.site == "input":
                    images = item.transform(images, states)
                target = target.lift(states, item.name, item.num_states, validate=False)
                columns.append(states)
            else:
                images, target = item.mix(images, target, generator)
        states = columns[0].unsqueeze(1) if len(columns) == 1 else torch.stack(columns, dim=1)
        return PretextBatch(images, vouch(states, columns), target)

    def _enumerate(self, images: Tensor, target: JointTarget) -> PretextBatch:
        pretexts = self.pretexts
        # the states of a batch size are always the same rows: build them once, while unmodified
        key = (images.shape[0], images.device)
        cached = None if torch.compiler.is_compiling() else self._tables.get(key)
        if cached is not None and cached[0]._version == cached[1]:
            states = cached[0]
        else:
            values = {p.name: torch.arange(p.num_states, device=images.device) for p in pretexts}
            states = state_table(pretexts, images.shape[0], values)
            if not torch.compiler.is_compiling():
                self._tables.clear()
                self._tables[key] = (states, states._version)
        inputs = model_inputs(pretexts, images, states, {p.name: p.num_states for p in pretexts})
        repeats = states.shape[0] // max(images.shape[0], 1)
        target = target.repeat_interleave(repeats) if repeats > 1 else target
        for column, p in enumerate(pretexts):
            target = target.lift(states[:, column], p.name, p.num_states, validate=False)
        return PretextBatch(inputs, vouch(states, list(states.unbind(1))), target)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_tables"] = {}
        return state

    def __repr__(self) -> str:
        items = ", ".join(repr(item) for item in self.items)
        return f"Compose([{items}], num_classes={self.num_classes}, mode={self.mode!r})"


def _flatten(items: Iterable[object]) -> Iterable[Pretext | Mixer]:
    for position, item in enumerate(items):
        if isinstance(item, Compose):
            yield from item.items
        elif isinstance(item, Pretext):
            yield item
        else:
            mixer = _as_mixer(item)
            if mixer is None:
                raise TypeError(
                    f"pretexts[{position}] must be a Pretext, a Compose, an ipt_compose Mixer (MixUp, "
                    f"CutMix) or torchvision's v2.MixUp/v2.CutMix, got {type(item).__name__}"
                )
            yield mixer


def _class_target(target: JointTarget, batch: int, num_classes: int | None) -> JointTarget:
    """Labels given as a target (e.g. :func:`~ipt_compose.from_kornia`'s): over ``class`` alone."""
    if target.factors:
        raise ValueError(
            "labels given as a JointTarget must be over 'class' alone (e.g. from from_kornia), "
            f"got one with pretext factors {[name for name, _ in target.factors]}"
        )
    if target.batch_size != batch:
        raise ValueError(
            f"images and labels must have the same batch size, got {batch} images and a target "
            f"of {target.batch_size} rows"
        )
    if num_classes is None or target.num_classes == num_classes:
        return target
    if target.num_classes is not None:
        raise ValueError(
            f"labels are over {target.num_classes} classes but num_classes is {num_classes}; "
            "they must agree"
        )
    check_range("labels", target.index, num_classes, "class index")
    return JointTarget(target.weight, target.index, num_classes=num_classes)


# ---------------------------------------------------------------------- states Compose vouches for
# The states a Compose draws are valid by construction, so JointModel does not check them again.
# A tensor is vouched for while it is alive and unmodified: a copy (``.to``, pickling through a
# DataLoader worker) or an in-place edit is checked like any other states. The registry keeps the
# states' columns as drawn, so the model reads them without taking views.
_VOUCHED: dict[int, tuple[weakref.ref[Tensor], int, list[Tensor]]] = {}


def vouch(states: Tensor, columns: list[Tensor]) -> Tensor:
    """Mark ``states`` (drawn by Compose, valid by construction, ``columns`` its columns) as needing no
    check.

    Not while compiling: compiled code checks every states tensor (the check is fused there).
    """
    if torch.compiler.is_compiling():
        return states
    key = id(states)

    def forget(_: object) -> None:
        _VOUCHED.pop(key, None)

    _VOUCHED[key] = (weakref.ref(states, forget), states._version, columns)
    return states


def vouched_columns(states: Tensor) -> list[Tensor] | None:
    """The columns of ``states`` if :func:`vouch` marked it and it is unmodified since, else ``None``."""
    entry = _VOUCHED.get(id(states))
    if entry is None or entry[0]() is not states or entry[1] != states._version:
        return None
    return entry[2]
