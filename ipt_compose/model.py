"""JointModel: widen a classifier to the joint label space and run feature-site pretexts inside it."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ipt_compose import _inference
from ipt_compose._checks import check_integer_tensor, check_positive_int, check_range, describe
from ipt_compose._rows import enumerate_rows
from ipt_compose._sites import (
    Call,
    feature_sites,
    find_head,
    find_submodule,
    linears_that_ran,
    replace_submodule,
    widen_linear,
)
from ipt_compose.compose import Compose, vouched_columns
from ipt_compose.pretext.base import Pretext
from ipt_compose.space import LabelSpace

__all__ = ["JointModel", "JointOutput"]

Aggregate = Literal["features", "all", "none", "marginal", "distilled"]
_AGGREGATES = ("features", "all", "none", "marginal", "distilled")


class JointOutput(NamedTuple):
    """What ``JointModel(..., distill=True)`` returns with ``forward(..., return_plain=True)``.

    Attributes:
        joint: joint logits ``(B', N K)``, as ``forward`` returns them.
        plain: the plain head's class logits ``(B', N)`` on the classifier's input before any
            feature pretext (the self-distillation student).
        teacher: joint logits averaged over every feature-site state at the row's input states,
            ``(B', N)``, detached (the self-distillation teacher, SLA+AG).
    """

    joint: Tensor
    plain: Tensor
    teacher: Tensor


class JointModel(nn.Module):
    """A classifier trained on the joint label ``(class, pretext states)``.

    The classifier (the ``nn.Linear`` with ``num_classes`` outputs defined last in ``backbone``, or
    the module named by ``head``) is replaced by one with ``num_classes * K`` outputs; each state's
    block starts as a copy of the old weights and bias, so a pretrained model starts where it was
    (``p(c, t) = p(c) / K``). Feature-site pretexts run on their sites (the classifier's input by
    default) on the states of the rows that pass.

    In training, call it with the pretext states (``model(batch.inputs, batch.states)``). In eval
    mode, ``model(x)`` without states returns :meth:`predict`'s class scores, so evaluation code,
    ``AveragedModel``/EMA copies and DDP wrappers work unchanged; :meth:`class_logits` turns joint
    logits into class scores for training metrics, and :meth:`to_plain` exports an ordinary
    classifier.

    Args:
        backbone: the classifier to extend (a torchvision ResNet, an ``nn.Sequential``, a timm
            model, …). It is modified in place and kept as ``self.backbone``.
        pretext: a :class:`~ipt_compose.Compose` (or a list of pretexts to compose).
        num_classes: the class count ``N``; must match the classifier's outputs.
        head: the name of the classifier submodule (an ``nn.Linear``), if not the one found.
        distill: add ``plain_head``, a copy of the original ``num_classes`` classifier on the
            classifier's input before any feature pretext, for self-distillation (SLA+SD, Lee et al.
            2020): train it with :func:`~ipt_compose.self_distillation_loss` on
            ``forward(..., return_plain=True)`` and infer with ``predict(aggregate="distilled")``, one
            ordinary forward pass with no pretext. Needs every feature pretext at the classifier's
            input (``at=None``) and a per-channel mask (:meth:`Pretext.channel_scale
            <ipt_compose.Pretext.channel_scale>`), such as :class:`~ipt_compose.ChannelDrop`, where
            the aggregated teacher costs one matmul.

    Shape:
        - x: :math:`(B_{in}, C, H, W)`
        - states: :math:`(B', n_{pretexts})` with ``B' = B_in`` (sample mode) or
          ``B' = B_in K_feat`` (mode ``"all"``)
        - output: :math:`(B', N K)`

    Examples:
        >>> backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                          nn.Linear(8, 10))
        >>> pretext = Compose([ChannelDrop(k=4), Rotation()])
        >>> model = JointModel(backbone, pretext, num_classes=10)
        >>> batch = pretext(torch.rand(2, 3, 16, 16), torch.tensor([3, 7]))
        >>> model(batch.inputs, batch.states).shape
        torch.Size([2, 160])
        >>> model.predict(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        backbone: nn.Module,
        pretext: Compose | Sequence[Pretext],
        num_classes: int,
        *,
        head: str | None = None,
        distill: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        if not isinstance(pretext, Compose):
            pretext = Compose(pretext, num_classes=num_classes)
        check_positive_int("num_classes", num_classes)
        if pretext.num_classes is not None and pretext.num_classes != num_classes:
            raise ValueError(
                f"num_classes={num_classes} disagrees with the pretext's "
                f"Compose(num_classes={pretext.num_classes})"
            )
        self.backbone = backbone
        self.pretext = pretext
        self.num_classes = num_classes
        self.head_name = find_head(backbone, head, num_classes)
        self.distill = bool(distill)
        self._space = pretext.space(num_classes)
        pretexts = pretext.pretexts
        old = backbone.get_submodule(self.head_name)
        if not isinstance(old, nn.Linear):
            raise TypeError(
                f"head {self.head_name!r} must be an nn.Linear to be widened, got {type(old).__name__}"
            )
        if old.out_features != num_classes:
            raise ValueError(
                f"the classifier {self.head_name!r} has {old.out_features} outputs but "
                f"num_classes={num_classes}; they must agree"
            )

        # the sites, and what the feature pretexts at the classifier's input can do
        feature = [p for p in pretexts if p.site == "feature"]
        self._head_site, self._inner_sites = feature_sites(pretexts)
        scales = [p.channel_scale(old.in_features) for p in feature] if not self._inner_sites else []
        self._linear_head = not self._inner_sites and all(scale is not None for scale in scales)
        if self.distill:
            if not self._linear_head:
                bad = [p.name for p, scale in zip(feature, scales, strict=False) if scale is None] or [
                    p.name for p in feature if p.at is not None
                ]
                raise ValueError(
                    "distill=True needs every feature pretext to be a ChannelDrop (or another "
                    "per-channel mask) at the classifier's input (at=None); these are not: "
                    f"{bad}"
                )
            self.plain_head = copy.deepcopy(old)
        replace_submodule(backbone, self.head_name, widen_linear(old, self._space, self._head_site))
        for site in self._inner_sites:
            find_submodule(backbone, site.name, "at").register_forward_hook(site)

        # what forward and predict need on every call, computed once
        self._num_feature = len(feature)
        self._k_feat = math.prod([p.num_states for p in feature])
        self._bounds: dict[torch.device, Tensor] = {}
        self._linear_cache: dict[Any, tuple[Tensor, Tensor | None]] = {}
        self._scales: dict[tuple[torch.device, torch.dtype], dict[str, Tensor]] = {}
        self._changes_head_output = False  # learnt at the first predict: then no one-map aggregate

    # ------------------------------------------------------------------ description
    @property
    def head(self) -> nn.Linear:
        """The widened classifier, ``num_classes * K`` outputs."""
        head = self.backbone.get_submodule(self.head_name)
        assert isinstance(head, nn.Linear)
        return head

    @property
    def space(self) -> LabelSpace:
        """The joint :class:`~ipt_compose.LabelSpace` of the outputs."""
        return self._space

    @property
    def feature_pretexts(self) -> list[Pretext]:
        """The feature-site pretexts, in list order."""
        return [p for p in self.pretext.pretexts if p.site == "feature"]

    @property
    def input_pretexts(self) -> list[Pretext]:
        """The input-site pretexts, in list order."""
        return [p for p in self.pretext.pretexts if p.site == "input"]

    # ------------------------------------------------------------------ training forward
    def forward(
        self, x: Tensor, states: Tensor | None = None, *, return_plain: bool = False
    ) -> Tensor | JointOutput:
        """Joint logits for a batch and its pretext states (``batch.inputs, batch.states``).

        Args:
            x: the model input (``batch.inputs``).
            states: the pretext states of every output row (``batch.states``). Without them, in
                eval mode, the result is ``predict(x)``: class scores ``(B, N)``.
            return_plain: also return the self-distillation student and teacher (needs
                ``distill=True``).

        Returns:
            Joint logits whose rows line up with ``states`` and ``batch.target``; with
            ``return_plain``, a :class:`JointOutput` ``(joint, plain, teacher)``; without
            ``states``, class scores.
        """
        if states is None:
            if self.training:
                raise ValueError(
                    "JointModel needs the pretext states in training mode: call "
                    "model(batch.inputs, batch.states); model(x) without states returns class scores "
                    "in eval mode only (call model.eval() first, or use model.predict(x))"
                )
            if return_plain:
                raise ValueError("return_plain=True needs the pretext states: model(x, states, ...)")
            return self.predict(x)
        if return_plain and not self.distill:
            raise ValueError("return_plain=True needs JointModel(..., distill=True)")
        call = self._training_call(x, states, keep_head_input=return_plain)
        joint = self._run(x, call)
        if not return_plain:
            return joint
        if joint is not call.head_output:
            raise ValueError(
                f"distill=True needs the classifier {self.head_name!r} to be the last thing the "
                "backbone computes, but the backbone changed its output afterwards; the plain head "
                "and the teacher read the classifier's input, so they would skip that change. Move "
                "what follows the classifier in front of it, or train without distill"
            )
        features = call.head_input
        assert features is not None and call.states is not None
        plain = self.plain_head(features)
        repeats = joint.shape[0] // features.shape[0] if features.shape[0] else 1
        with torch.no_grad():
            teacher = self._teacher(features, call.states[::repeats])
        if repeats > 1:
            plain = plain.repeat_interleave(repeats, dim=0)
            teacher = teacher.repeat_interleave(repeats, dim=0)
        return JointOutput(joint, plain, teacher)

    def class_logits(self, joint_logits: Tensor) -> Tensor:
        """Class scores from joint logits: ``log p(c)``, the log of the class marginal.

        For accuracy and other metrics during training (an argmax over the ``N·K`` joint logits is
        not a class). Rows are log-probabilities: they ``logsumexp`` to 0.

        Args:
            joint_logits: what ``model(batch.inputs, batch.states)`` returned.

        Returns:
            ``(B', N)`` class log-probabilities.

        Examples:
            >>> model = JointModel(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), [ChannelDrop(k=2)], 3)
            >>> model.class_logits(torch.zeros(5, 6)).exp()
            tensor([[0.3333, 0.3333, 0.3333],
                    [0.3333, 0.3333, 0.3333],
                    [0.3333, 0.3333, 0.3333],
                    [0.3333, 0.3333, 0.3333],
                    [0.3333, 0.3333, 0.3333]])
        """
        if not isinstance(joint_logits, Tensor) or not joint_logits.is_floating_point():
            raise TypeError(f"joint_logits must be a floating-point tensor, got {describe(joint_logits)}")
        if joint_logits.ndim != 2 or joint_logits.shape[1] != self._space.size:
            raise ValueError(
                f"joint_logits must have shape (B, {self._space.size}) (the size of "
                f"{self._space!r}), got {tuple(joint_logits.shape)}"
            )
        return _inference.class_log_probs(joint_logits, self._space)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, x: Tensor, *, aggregate: Aggregate = "features") -> Tensor:
        """Class scores from joint logits (design item 7).

        Call it in eval mode (``model.eval()``): in training mode BatchNorm layers would update
        their statistics on the prediction batch.

        Args:
            x: a batch of plain (untransformed) inputs.
            aggregate: how the pretext factors are reduced:

                * ``"features"`` (default): average the joint logits ``z_t[(c, t)]`` over every
                  state ``t`` of the feature-site pretexts (SLA+AG), input pretexts at their
                  identity state. When every feature pretext is a per-channel mask at the
                  classifier's input (``ChannelDrop``) this average is one linear map, and the
                  backbone runs once with it in place of the wide classifier: plain inference.
                * ``"all"``: average over every pretext's states; input pretexts replicate the
                  batch ``K_in`` times.
                * ``"none"``: one state per pretext (its identity state, else state 0), the column
                  of each class (one plain pass).
                * ``"marginal"``: ``logsumexp`` over the pretext factors, states as in ``"none"``.
                * ``"distilled"``: the self-distilled plain head (``distill=True``) on the
                  untransformed input: one ordinary forward pass.

        Returns:
            Class scores (logits) ``(B, N)``.

        Shape:
            - x: :math:`(B, C, H, W)`
            - output: :math:`(B, N)`
        """
        if aggregate not in _AGGREGATES:
            raise ValueError(
                "aggregate must be 'features', 'all', 'none', 'marginal' or 'distilled', "
                f"got {aggregate!r}"
            )
        if aggregate == "distilled" and not self.distill:
            raise ValueError("aggregate='distilled' needs JointModel(..., distill=True)")
        if not isinstance(x, Tensor) or x.ndim < 1:
            raise TypeError(f"x must be a batch tensor, got {type(x).__name__}")
        if self.input_pretexts and x.ndim != 4:
            raise ValueError(
                f"{type(self.input_pretexts[0]).__name__} expects images of shape (B, C, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        if aggregate == "features":
            for p in self.input_pretexts:
                if p.identity_state is None:
                    raise ValueError(
                        f"predict(aggregate='features') runs input pretexts at their identity "
                        f"state, but {p.name!r} ({type(p).__name__}) has none; use "
                        "aggregate='all' or construct it with identity=True"
                    )
        if aggregate == "distilled":
            plain_head = (self.plain_head.weight, self.plain_head.bias)
            return self._run(x, Call(None, x.shape[0], head_map=plain_head))

        pretexts = self.pretext.pretexts
        values = {p.name: _chosen_states(p, aggregate) for p in pretexts}
        e_in = math.prod([len(values[p.name]) for p in pretexts if p.site == "input"])
        if self._linear_head and aggregate != "marginal" and not self._changes_head_output:
            # the feature states' average (or state 0) is one linear map: run the backbone once
            inputs = self._evaluation_inputs(x, values)
            head_map = self._aggregate_map(values, cache_as=aggregate)
            call = Call(None, inputs.shape[0], head_map=head_map)
            scores = self._run(inputs, call)
            if scores is call.head_output:
                if e_in == 1:
                    return scores
                per_block = scores.view(x.shape[0], e_in, e_in, self.num_classes)
                return per_block.diagonal(dim1=1, dim2=2).mean(dim=-1)  # each row's own input states
            # the backbone changes the logits after the classifier: average what it outputs, below
            self._changes_head_output = True
        chosen = {name: torch.tensor(v, device=x.device) for name, v in values.items()}
        inputs, states = enumerate_rows(pretexts, x, chosen)
        e_feat = states.shape[0] // max(1, inputs.shape[0])
        logits = self._run(inputs, Call(states, inputs.shape[0], expand=e_feat > 1))
        if aggregate == "marginal":
            return _inference.marginal_logits(logits, self._space)
        scores = self._space.select(logits, states)
        return _inference.mean_over_copies(scores, e_in * e_feat)

    def to_plain(self, aggregate: Literal["features", "none", "distilled"] = "features") -> nn.Module:
        """An ordinary classifier equal to :meth:`predict` with ``aggregate``: the backbone's own class.

        A copy of the backbone whose classifier has ``num_classes`` outputs again, with the
        weights of the aggregate: its ``state_dict()`` loads with ``strict=True`` into a fresh
        backbone of that class, and it needs no ``ipt_compose`` to run. The joint model is left as
        it is.

        Args:
            aggregate: ``"features"`` (the default of :meth:`predict`: the average over the
                feature pretexts' states), ``"none"`` (one state per pretext) or ``"distilled"`` (the
                plain head of ``distill=True``).

        Returns:
            The plain classifier, in the joint model's training mode, device and dtype.

        Raises:
            ValueError: where one classifier cannot represent the aggregate: a feature pretext
                inside the network (``at=...``) or one that is not a per-channel mask, or an input
                pretext the aggregate would have to apply (no identity state). ``predict`` is
                what to use then.

        Examples:
            >>> backbone = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
            >>> model = JointModel(backbone, [ChannelDrop(k=2)], num_classes=3).eval()
            >>> plain = model.to_plain()
            >>> x = torch.rand(4, 12)
            >>> torch.allclose(plain(x), model.predict(x), atol=1e-6)
            True
        """
        if aggregate not in ("features", "none", "distilled"):
            raise ValueError(f"aggregate must be 'features', 'none' or 'distilled', got {aggregate!r}")
        if aggregate == "distilled":
            if not self.distill:
                raise ValueError("to_plain(aggregate='distilled') needs JointModel(..., distill=True)")
            weight: Tensor = self.plain_head.weight
            bias: Tensor | None = self.plain_head.bias
        else:
            if not self._linear_head:
                inner = [p.name for p in self.feature_pretexts if p.at is not None]
                why = (
                    f"the feature pretexts {inner} act inside the network" if inner else
                    "a feature pretext is not a per-channel mask (its channel_scale() is None)"
                )
                raise ValueError(
                    f"no single classifier equals predict(aggregate={aggregate!r}): {why}, so the "
                    "aggregate runs the network once per state; use model.predict(x) (or "
                    "model(x) in eval mode) instead"
                )
            for p in self.input_pretexts:
                if p.identity_state is None and aggregate == "features":
                    raise ValueError(
                        f"no single classifier equals predict(aggregate='features'): it runs the input "
                        f"pretext {p.name!r} ({type(p).__name__}) at its identity state, and it has "
                        "none; construct it with identity=True"
                    )
            values = {p.name: _chosen_states(p, aggregate) for p in self.pretext.pretexts}
            for p in self.input_pretexts:
                if values[p.name] != (p.identity_state,):
                    raise ValueError(
                        f"no single classifier equals predict(aggregate={aggregate!r}): it runs the "
                        f"input pretext {p.name!r} ({type(p).__name__}) at state "
                        f"{list(values[p.name])}, which changes the input; use model.predict(x) "
                        "instead, or construct the pretext with identity=True"
                    )
            with torch.no_grad():
                weight, bias = self._aggregate_map(values)
        plain = copy.deepcopy(self.backbone)
        old = self.head
        linear = nn.Linear(old.in_features, self.num_classes, bias=bias is not None,
                           device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight)
            if bias is not None:
                linear.bias.copy_(bias)
        replace_submodule(plain, self.head_name, linear)
        for site in self._inner_sites:  # the copies of the hooks go with their modules
            plain.get_submodule(site.name)._forward_hooks.clear()
        return plain.train(self.training)

    # ------------------------------------------------------------------ internals
    def _training_call(self, x: Tensor, states: Tensor, *, keep_head_input: bool) -> Call:
        """Check a forward's arguments (values only for states Compose did not draw)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 0:
            raise ValueError("x must have a batch dimension")
        rows_in = x.shape[0]
        n = len(self._space) - 1
        columns = None if torch.compiler.is_compiling() else vouched_columns(states)
        if columns is not None and states.device != x.device:
            columns = None
        if columns is None:
            check_integer_tensor("states", states)
        if states.ndim != 2 or states.shape[1] != n:
            raise ValueError(
                f"states must have shape (B', {n}) (one column per pretext: "
                f"{list(self._space.names[1:])}), got {tuple(states.shape)}"
            )
        if states.shape[0] == rows_in:
            expand = False
        elif states.shape[0] == rows_in * self._k_feat:
            expand = self._k_feat > 1
        else:
            raise ValueError(
                f"states must have {rows_in} rows (one per input row, mode='sample') or "
                f"{rows_in * self._k_feat} rows (input rows × {self._k_feat} feature states, "
                f"mode='all'), got {states.shape[0]}"
            )
        if columns is None:
            states = states.to(x.device, torch.long)
            check_range("states", states, self._bounds_on(x.device), "per pretext column")
        return Call(states, rows_in, expand=expand, keep_head_input=keep_head_input, columns=columns)

    def _run(self, x: Tensor, call: Call) -> Tensor:
        """The backbone's forward with ``call`` bound to every site."""
        head_site = self._head_site
        head_site.call = call
        for site in self._inner_sites:
            site.call = call
        try:
            out: Tensor = self.backbone(x)
        finally:
            head_site.call = None
            for site in self._inner_sites:
                site.call = None
        if not call.head_ran:
            linears = linears_that_ran(self.backbone, x)
            hint = f"; pass head={linears[-1]!r}" if linears else "; name the classifier with head='...'"
            raise ValueError(
                f"the classifier {self.head_name!r} that JointModel widened never ran in the "
                f"backbone's forward (the nn.Linear layers that ran: {linears}){hint}"
            )
        if call.states is not None and len(call.present) != self._num_feature:
            applied = set(call.present)
            missing = [p.name for i, p in enumerate(self.feature_pretexts) if i not in applied]
            raise RuntimeError(
                f"the feature pretexts {missing} never ran: their site was not reached in the "
                "backbone's forward"
            )
        return out

    def _teacher(self, features: Tensor, states: Tensor) -> Tensor:
        """Self-distillation's teacher: the joint logits averaged over the feature states, at each
        row's input states, from the classifier's input (one linear map per input state)."""
        values = {p.name: tuple(range(p.num_states)) for p in self.pretext.pretexts}
        weight, bias = self._aggregate_map(values)
        logits = nn.functional.linear(features, weight, bias)
        inputs = [column for column, p in enumerate(self.pretext.pretexts) if p.site == "input"]
        if not inputs:
            return logits
        blocks = logits.view(features.shape[0], -1, self.num_classes)
        sub = self._space.sub(["class", *(self._space.names[c + 1] for c in inputs)])
        offset = sub.offset(states[:, inputs])
        assert isinstance(offset, Tensor)
        return blocks.gather(1, offset.view(-1, 1, 1).expand(-1, 1, self.num_classes)).squeeze(1)

    def _aggregate_map(
        self, values: dict[str, tuple[int, ...]], *, cache_as: str | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The head's blocks reduced over the feature states in ``values`` (one block per chosen
        input state); with ``cache_as``, kept until the head's weights change."""
        head = self.head
        weight, bias = head.weight, head.bias
        key: Any = None
        if cache_as is not None and not torch.compiler.is_compiling():
            key = (cache_as, id(weight), weight._version, weight.data_ptr(), weight.dtype, weight.device,
                   None if bias is None else (id(bias), bias._version, bias.data_ptr()))
            found = self._linear_cache.get(key)
            if found is not None:
                return found
        scales = self._channel_scales(weight.device, weight.dtype)
        choices = [(values[p.name], scales.get(p.name)) for p in self.pretext.pretexts]
        result = _inference.linear_aggregate(
            weight.detach(), None if bias is None else bias.detach(), self._space, choices
        )
        if key is not None:
            self._linear_cache.clear()  # one entry: the weights' current version
            self._linear_cache[key] = result
        return result

    def _channel_scales(self, device: torch.device, dtype: torch.dtype) -> dict[str, Tensor]:
        """The channel scale of every feature pretext at the classifier's width, built once."""
        key = (device, dtype)
        scales = self._scales.get(key)
        if scales is None:
            width = self.head.in_features
            scales = {}
            for p in self.feature_pretexts:
                scale = p.channel_scale(width, device=device, dtype=dtype)
                if scale is not None:
                    scales[p.name] = scale
            if not torch.compiler.is_compiling():
                self._scales[key] = scales
        return scales

    def _evaluation_inputs(self, x: Tensor, values: dict[str, tuple[int, ...]]) -> Tensor:
        """The model inputs for inference: input pretexts at the chosen states (none to apply if
        every one is at its identity state)."""
        inputs = self.input_pretexts
        if all(values[p.name] == (p.identity_state,) for p in inputs):
            return x
        only_inputs = {p.name: torch.tensor(values[p.name], device=x.device) for p in inputs}
        rows, _ = enumerate_rows(inputs, x, only_inputs)
        return rows

    def _bounds_on(self, device: torch.device) -> Tensor:
        bounds = self._bounds.get(device)
        if bounds is None:
            bounds = self._bounds[device] = torch.tensor(self._space.sizes[1:], device=device)
        return bounds


def _chosen_states(p: Pretext, aggregate: str) -> tuple[int, ...]:
    """The states ``predict(aggregate=...)`` runs a pretext at."""
    if aggregate == "all" or (aggregate == "features" and p.site == "feature"):
        return tuple(range(p.num_states))
    if aggregate == "features":  # an input pretext: its identity state
        assert p.identity_state is not None
        return (p.identity_state,)
    return (p.identity_state if p.identity_state is not None else 0,)
