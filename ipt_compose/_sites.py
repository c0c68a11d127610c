"""Where feature pretexts act inside a backbone (private): one call record, one object per site.

:class:`~ipt_compose.JointModel` cannot hand the states of a forward pass to a submodule deep
inside a backbone through its ``forward(x)``. Instead it makes one :class:`Call` per forward pass
and binds it, for that pass only, to every :class:`FeatureSite` (a forward hook on a submodule) and
to the :class:`JointHead` (the widened classifier, which is also the site of the pretexts at the
classifier's input). Outside a forward pass of the joint model nothing is bound, and the backbone
runs as a plain network with a wide head.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import repeat
from torch import Tensor, nn

from ipt_compose._rows import insert_factor, output_rows
from ipt_compose.pretext.base import Pretext
from ipt_compose.space import LabelSpace


class Call:
    """One forward pass of a joint model: what its sites need, and what they report back.

    Attributes:
        states: the pretext states of the output rows ``(B', n_pretexts)``, ``torch.long``, checked
            (or vouched for) and on the input's device; ``None`` when no feature pretext runs.
        rows_in: rows of the model's input.
        expand: replicate rows at each feature site (``mode="all"``).
        head_map: ``(weight, bias)`` of a linear map that replaces the classifier for this pass
            (an aggregate of its state blocks, or the plain head); the feature pretexts at the
            classifier's input do not run then.
        keep_head_input: keep the classifier's input, before any feature pretext, in ``head_input``.
        present: indices of the feature pretexts applied so far, in the order they ran.
        head_ran: whether the classifier ran.
        head_output: what the classifier returned (to tell whether the backbone changed it after).
        columns: the columns of ``states`` as ``Compose`` drew them, if it did (no view to take).
    """

    __slots__ = ("columns", "expand", "head_input", "head_map", "head_output", "head_ran", "keep_head_input",
                 "present", "rows_in", "states")

    def __init__(
        self,
        states: Tensor | None,
        rows_in: int,
        *,
        expand: bool = False,
        head_map: tuple[Tensor, Tensor | None] | None = None,
        keep_head_input: bool = False,
        columns: list[Tensor] | None = None,
    ) -> None:
        self.columns = columns
        self.states = states
        self.rows_in = rows_in
        self.expand = expand
        self.head_map = head_map
        self.keep_head_input = keep_head_input
        self.head_input: Tensor | None = None
        self.head_output: Tensor | None = None
        self.present: list[int] = []
        self.head_ran = False


class FeatureSite:
    """The feature pretexts that act on one site, in list order; a forward hook on its module.

    Args:
        name: the submodule's name (``""`` for the classifier's input).
        entries: ``(index among the feature pretexts, column of the states, pretext)`` for each
            pretext at this site.
        sizes: the number of states of every feature pretext, in list order.
    """

    def __init__(self, name: str, entries: Sequence[tuple[int, int, Pretext]], sizes: Sequence[int]) -> None:
        self.name = name
        self.entries = tuple(entries)
        self.sizes = tuple(sizes)
        self.call: Call | None = None

    def apply(self, features: Tensor) -> Tensor:
        """Run this site's pretexts on ``features`` with the bound call's states."""
        call = self.call
        if call is None or call.states is None:
            return features
        for index, column, pretext in self.entries:
            if call.expand:
                features = insert_factor(features, call.rows_in, self.sizes, call.present, index)
                call.present.append(index)
                rows = output_rows(features.shape[0], self.sizes, call.present, features.device)
                states = call.states[rows, column]
            else:
                call.present.append(index)
                states = call.states.select(1, column) if call.columns is None else call.columns[column]
            features = pretext.transform(features, states)
        return features

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor):
            raise TypeError(
                f"the site {self.name!r} must output a tensor for a feature pretext, "
                f"got {type(output).__name__}"
            )
        return self.apply(output)


class JointHead(nn.Linear):
    """The widened classifier (``N·K`` outputs), and the site of the pretexts at its input.

    An ``nn.Linear`` with the original layer's name, so checkpoints keep their keys. Called outside
    a joint forward pass it is an ordinary linear layer.
    """

    site: FeatureSite

    def forward(self, features: Tensor) -> Tensor:
        call = self.site.call
        if call is None:
            return F.linear(features, self.weight, self.bias)
        call.head_ran = True
        if call.keep_head_input:
            call.head_input = features
        if call.head_map is not None:
            out = F.linear(features, *call.head_map)
        else:
            if self.site.entries:
                if features.ndim != 2:
                    raise ValueError(
                        "a feature pretext at the classifier's input (at=None) needs pooled features "
                        f"(B, C), got shape {tuple(features.shape)}; pick a feature map with at='...'"
                    )
                features = self.site.apply(features)
            out = F.linear(features, self.weight, self.bias)
        call.head_output = out
        return out


def widen_linear(linear: nn.Linear, space: LabelSpace, site: FeatureSite) -> JointHead:
    """A :class:`JointHead` with one output per joint label of ``space``, class-major.

    Each state's block starts as a copy of ``linear``'s weights and bias, so the widened model
    starts where it was: ``p(c, t) = p(c) / K``.
    """
    head = JointHead(
        linear.in_features,
        space.size,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    head.site = site
    states = {axis: size for axis, size in space.axes.items() if axis != "c"}
    with torch.no_grad():
        head.weight.copy_(repeat(linear.weight, f"c d -> {space.pattern} d", **states))
        if linear.bias is not None and head.bias is not None:
            head.bias.copy_(repeat(linear.bias, f"c -> {space.pattern}", **states))
    return head


def feature_sites(pretexts: Sequence[Pretext]) -> tuple[FeatureSite, list[FeatureSite]]:
    """The site of the classifier's input and one site per named submodule, for ``pretexts`` in
    list order (their columns in the states)."""
    feature = [p for p in pretexts if p.site == "feature"]
    sizes = [p.num_states for p in feature]
    entries: dict[str, list[tuple[int, int, Pretext]]] = {}
    for column, p in enumerate(pretexts):
        if p.site == "feature":
            entries.setdefault(p.at or "", []).append((feature.index(p), column, p))
    head = FeatureSite("", entries.pop("", []), sizes)
    return head, [FeatureSite(name, found, sizes) for name, found in entries.items()]


def find_head(backbone: nn.Module, head: str | None, num_classes: int) -> str:
    """The classifier to widen: ``head``, else the last-defined ``nn.Linear`` with ``num_classes``
    outputs (else the last ``nn.Linear``, for the error that follows)."""
    if head is not None:
        find_submodule(backbone, head, "head")
        return str(head)
    linear = [(n, m) for n, m in backbone.named_modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError("backbone has no nn.Linear classifier to widen; name it with head='...'")
    matching = [n for n, m in linear if m.out_features == num_classes]
    return matching[-1] if matching else str(linear[-1][0])


def find_submodule(backbone: nn.Module, name: str, argument: str) -> nn.Module:
    """``backbone``'s submodule ``name``; ``ValueError`` naming ``argument`` and the nearest names."""
    names = [n for n, _ in backbone.named_modules() if n]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
        top = [n for n in names if "." not in n]
        hint = f"; nearest: {close}" if close else f"; top-level modules: {top}"
        raise ValueError(f"{argument}={name!r} is not a submodule of the backbone{hint}")
    return backbone.get_submodule(name)


def replace_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` in place of ``root``'s submodule ``name`` (``nn.Module.set_submodule`` is
    torch >= 2.5)."""
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def linears_that_ran(backbone: nn.Module, x: Tensor) -> list[str]:
    """The ``nn.Linear`` modules of ``backbone`` that a forward pass of ``x`` calls, in order (for
    the message when the widened classifier is not among them)."""
    ran: list[str] = []
    handles = [
        module.register_forward_hook(lambda *_, name=name: ran.append(name))
        for name, module in backbone.named_modules()
        if isinstance(module, nn.Linear)
    ]
    try:
        with torch.no_grad():
            backbone(x)
    except Exception:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return ran
