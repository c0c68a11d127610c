"""JointModel: widen a classifier to the joint label space and run feature-site pretexts inside it."""

from __future__ import annotations

import copy
import difflib
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ipt_compose._checks import check_integer_tensor, check_positive_int, check_range
from ipt_compose.compose import Compose, enumerate_rows
from ipt_compose.pretext.base import Pretext
from ipt_compose.pretext.feature import ChannelDrop
from ipt_compose.space import LabelSpace

__all__ = ["JointModel", "JointOutput"]

Aggregate = Literal["features", "all", "none", "marginal", "distilled"]
_HEAD_SITE = ""  # the classifier's input


@dataclass
class _Forward:
    """What the feature hooks of one forward pass need to know."""

    states: Tensor  # (B', n_pretexts), long, on the input's device
    batch_in: int  # rows of the model's input
    expand: bool  # replicate rows at each feature site (mode "all")
    capture_head: bool = False  # stop at the classifier and hand back its input
    keep_head_input: bool = False  # keep the classifier's input before feature pretexts (distill)
    head_input: Tensor | None = None
    present: list[int] = field(default_factory=list)  # feature pretexts applied so far


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


class _HeadInput(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, features: Tensor) -> None:
        # no super().__init__(): torch.compile cannot trace it (a graph break in predict)
        self.features = features


class JointModel(nn.Module):
    """A classifier trained on the joint label ``(class, pretext states)``.

    The classifier (the last ``nn.Linear`` of ``backbone``, or the module named by ``head``) is
    replaced by one with ``num_classes * K`` outputs; each state's block starts as a copy of the old
    weights and bias, so a pretrained model starts where it was (``p(c, t) = p(c) / K``).
    Feature-site pretexts are registered as hooks on their sites (the classifier's input by default)
    and read the states of the rows that pass.

    Args:
        backbone: the classifier to extend (a torchvision ResNet, an ``nn.Sequential``, a timm
            model, …). It is modified in place and kept as ``self.backbone``.
        pretext: a :class:`~ipt_compose.Compose` (or a list of pretexts to compose).
        num_classes: the class count ``N``; must match the classifier's outputs.
        head: the name of the classifier submodule (an ``nn.Linear``), if not the last one.
        distill: add ``plain_head``, a copy of the original ``num_classes`` classifier on the
            classifier's input before any feature pretext, for self-distillation (SLA+SD, Lee et al.
            2020): train it with :func:`~ipt_compose.self_distillation_loss` on
            ``forward(..., return_plain=True)`` and infer with ``predict(aggregate="distilled")``, one
            ordinary forward pass with no pretext. Needs every feature pretext to be a
            :class:`~ipt_compose.ChannelDrop` at the classifier's input (``at=None``), where the
            aggregated teacher costs one matmul.

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
        self.head_name = _find_head(backbone, head)
        self.distill = bool(distill)
        if self.distill:
            bad = [p.name for p in pretext.pretexts if p.site == "feature" and not (
                isinstance(p, ChannelDrop) and p.at is None)]
            if bad:
                raise ValueError(
                    f"distill=True needs every feature pretext to be a ChannelDrop at the classifier's "
                    f"input (at=None), got {bad}"
                )
            original = backbone.get_submodule(self.head_name)
            if not isinstance(original, nn.Linear):
                raise TypeError(
                    f"head {self.head_name!r} must be an nn.Linear, got {type(original).__name__}"
                )
            self.plain_head = copy.deepcopy(original)
        self._widen_head()
        self._context: _Forward | None = None
        self._site_pretexts: dict[str, list[tuple[int, int, Pretext]]] = {}
        feature = self.feature_pretexts
        for column, p in enumerate(pretext.pretexts):
            if p.site == "feature":
                site = getattr(p, "at", None) or _HEAD_SITE
                self._site_pretexts.setdefault(site, []).append((feature.index(p), column, p))
        if self.distill or _HEAD_SITE in self._site_pretexts:
            self.head.register_forward_pre_hook(self._head_hook)
        for site in self._site_pretexts:
            if site != _HEAD_SITE:
                _get_submodule(backbone, site, "at").register_forward_hook(self._make_site_hook(site))

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
        return self.pretext.space(self.num_classes)

    @property
    def feature_pretexts(self) -> list[Pretext]:
        return [p for p in self.pretext.pretexts if p.site == "feature"]

    @property
    def input_pretexts(self) -> list[Pretext]:
        return [p for p in self.pretext.pretexts if p.site == "input"]

    # ------------------------------------------------------------------ training forward
    def forward(
        self, x: Tensor, states: Tensor, *, return_plain: bool = False
    ) -> Tensor | JointOutput:
        """Joint logits for a batch and its pretext states (``batch.inputs, batch.states``).

        Args:
            x: the model input (``batch.inputs``).
            states: the pretext states of every output row (``batch.states``).
            return_plain: also return the self-distillation student and teacher (needs
                ``distill=True``).

        Returns:
            Joint logits whose rows line up with ``states`` and ``batch.target``; with
            ``return_plain``, a :class:`JointOutput` ``(joint, plain, teacher)``.
        """
        if not return_plain:
            return self._run(x, states, capture_head=False)
        if not self.distill:
            raise ValueError("return_plain=True needs JointModel(..., distill=True)")
        context = self._prepare(x, states, capture_head=False)
        context.keep_head_input = True
        joint = self._execute(x, context)
        features = context.head_input
        assert features is not None
        plain = self.plain_head(features)
        with torch.no_grad():
            input_rows = context.states[:: context.states.shape[0] // features.shape[0]]
            teacher = self._feature_average(self._all_state_logits(features), input_rows)
        repeats = joint.shape[0] // features.shape[0]
        if repeats > 1:
            plain = plain.repeat_interleave(repeats, dim=0)
            teacher = teacher.repeat_interleave(repeats, dim=0)
        return JointOutput(joint, plain, teacher)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, x: Tensor, *, aggregate: Aggregate = "features") -> Tensor:
        """Class scores from joint logits (design item 7).

        Args:
            x: a batch of plain (untransformed) inputs.
            aggregate: how the pretext factors are reduced:

                * ``"features"`` (default): average the joint logits ``z_t[(c, t)]`` over every
                  state ``t`` of the feature-site pretexts (SLA+AG), input pretexts at their
                  identity state. At the classifier's input this is one matmul as wide as the
                  training head's: the backbone runs once.
                * ``"all"``: average over every pretext's states; input pretexts replicate the
                  batch ``K_in`` times.
                * ``"none"``: state 0 everywhere, the column of each class (one plain pass).
                * ``"marginal"``: ``logsumexp`` over the pretext factors at state 0 everywhere.
                * ``"distilled"``: the self-distilled plain head (``distill=True``) on the
                  untransformed input: one ordinary forward pass.

        Returns:
            Class scores (logits) ``(B, N)``.

        Shape:
            - x: :math:`(B, C, H, W)`
            - output: :math:`(B, N)`
        """
        if aggregate not in ("features", "all", "none", "marginal", "distilled"):
            raise ValueError(
                "aggregate must be 'features', 'all', 'none', 'marginal' or 'distilled', "
                f"got {aggregate!r}"
            )
        if aggregate == "distilled" and not self.distill:
            raise ValueError("aggregate='distilled' needs JointModel(..., distill=True)")
        if not isinstance(x, Tensor) or x.ndim < 1:
            raise TypeError(f"x must be a batch tensor, got {type(x).__name__}")
        if aggregate == "features":
            for p in self.input_pretexts:
                if p.identity_state is None:
                    raise ValueError(
                        f"predict(aggregate='features') runs input pretexts at their identity "
                        f"state, but {p.name!r} ({type(p).__name__}) has none; use "
                        "aggregate='all' or construct it with identity=True"
                    )
        enumerate_inputs = aggregate == "all"
        enumerate_features = aggregate in ("features", "all")
        inputs, states, groups = self._evaluation_rows(x, enumerate_inputs, enumerate_features)
        space = self.space
        strides = torch.tensor(space.strides[1:], device=x.device)
        offsets = (states * strides).sum(dim=1, keepdim=True)  # (R, 1) joint index of class 0
        classes = torch.arange(self.num_classes, device=x.device) * space.strides[0]
        if aggregate == "marginal":
            logits = self._run(inputs, states, capture_head=False)
            return space.marginal(logits, ["class"], logits=True)
        if aggregate == "distilled":
            plain: Tensor = self.plain_head(self._head_input(x, states))
            return plain
        if enumerate_features and self._fast_head():
            input_states = states[:: groups[1]]
            logits = self._all_state_logits(self._head_input(inputs, input_states))
            scores = self._feature_average(logits, input_states)  # (R_in, N)
            return scores.view(x.shape[0], groups[0], self.num_classes).mean(dim=1)
        logits = self._run(inputs, states, capture_head=False)
        picked = logits.gather(1, classes.unsqueeze(0) + offsets)  # (R, N)
        return picked.view(x.shape[0], groups[0] * groups[1], self.num_classes).mean(dim=1)

    # ------------------------------------------------------------------ internals
    def _widen_head(self) -> None:
        old = self.backbone.get_submodule(self.head_name)
        if not isinstance(old, nn.Linear):
            raise TypeError(
                f"head {self.head_name!r} must be an nn.Linear to be widened, got {type(old).__name__}"
            )
        if old.out_features != self.num_classes:
            raise ValueError(
                f"the classifier {self.head_name!r} has {old.out_features} outputs but "
                f"num_classes={self.num_classes}; they must agree"
            )
        k = self.pretext.num_states
        new = nn.Linear(
            old.in_features,
            old.out_features * k,
            bias=old.bias is not None,
            device=old.weight.device,
            dtype=old.weight.dtype,
        )
        with torch.no_grad():
            new.weight.copy_(old.weight.repeat_interleave(k, dim=0))
            if old.bias is not None:
                new.bias.copy_(old.bias.repeat_interleave(k, dim=0))
        self.backbone.set_submodule(self.head_name, new)

    def _run(self, x: Tensor, states: Tensor, *, capture_head: bool) -> Tensor:
        return self._execute(x, self._prepare(x, states, capture_head=capture_head))

    def _prepare(self, x: Tensor, states: Tensor, *, capture_head: bool) -> _Forward:
        """Validate a forward's arguments and make the context its hooks read."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        check_integer_tensor("states", states)
        n = len(self.pretext.pretexts)
        k_feat = math.prod([p.num_states for p in self.feature_pretexts])
        if x.ndim == 0:
            raise ValueError("x must have a batch dimension")
        batch_in = x.shape[0]
        if states.ndim != 2 or states.shape[1] != n:
            raise ValueError(
                f"states must have shape (B', {n}) (one column per pretext: "
                f"{[p.name for p in self.pretext.pretexts]}), got {tuple(states.shape)}"
            )
        if states.shape[0] == batch_in:
            expand = False
        elif states.shape[0] == batch_in * k_feat:
            expand = True
        else:
            raise ValueError(
                f"states must have {batch_in} rows (one per input row, mode='sample') or "
                f"{batch_in * k_feat} rows (input rows × {k_feat} feature states, mode='all'), "
                f"got {states.shape[0]}"
            )
        states = states.to(x.device)
        sizes = torch.tensor([p.num_states for p in self.pretext.pretexts], device=x.device)
        check_range("states", states, sizes, "per pretext column")
        return _Forward(states.long(), batch_in, expand and k_feat > 1, capture_head)

    def _execute(self, x: Tensor, context: _Forward) -> Tensor:
        self._context = context
        try:
            out: Tensor = self.backbone(x)
        finally:
            self._context = None
        missing = [p.name for i, p in enumerate(self.feature_pretexts) if i not in context.present]
        if missing:
            raise RuntimeError(
                f"the feature pretexts {missing} never ran: their site was not reached in the "
                "backbone's forward"
            )
        return out

    def _apply_site(self, site: str, features: Tensor) -> Tensor:
        context = self._context
        if context is None:  # the backbone called on its own: leave it plain
            return features
        feature = self.feature_pretexts
        sizes = [p.num_states for p in feature]
        for index, column, pretext in self._site_pretexts[site]:
            if context.expand:
                features = _insert_factor(features, context, index, sizes)
            context.present.append(index)
            rows = _final_rows(features.shape[0], context, sizes)
            features = pretext.apply(features, context.states[rows, column])
        return features

    def _make_site_hook(self, site: str) -> Any:
        # a partial of a bound method, not a closure: it pickles, and deepcopy rebinds it to the copy
        return functools.partial(self._site_hook, site)

    def _site_hook(self, site: str, module: nn.Module, args: Any, output: Tensor) -> Tensor:
        if not isinstance(output, Tensor):
            raise TypeError(
                f"the site {site!r} must output a tensor for a feature pretext, "
                f"got {type(output).__name__}"
            )
        return self._apply_site(site, output)

    def _head_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        context = self._context
        if context is None:
            return None
        features = args[0]
        if context.keep_head_input:
            context.head_input = features
        if _HEAD_SITE not in self._site_pretexts:
            return None
        if features.ndim != 2:
            raise ValueError(
                "a feature pretext at the classifier's input (at=None) needs pooled features "
                f"(B, C), got shape {tuple(features.shape)}; pick a feature map with at='...'"
            )
        if context.capture_head:
            raise _HeadInput(features)
        return (self._apply_site(_HEAD_SITE, features), *args[1:])

    def _fast_head(self) -> bool:
        return set(self._site_pretexts) == {_HEAD_SITE} and all(
            isinstance(p, ChannelDrop) for p in self.feature_pretexts
        )

    def _head_input(self, inputs: Tensor, states: Tensor) -> Tensor:
        """The classifier's input for ``inputs``, before any feature pretext (the head never runs)."""
        try:
            self._run(inputs, states, capture_head=True)
        except _HeadInput as stop:
            return stop.features
        raise RuntimeError("the classifier was never reached")  # pragma: no cover

    def _all_state_logits(self, features: Tensor) -> Tensor:
        """Joint logits with every column computed under its own feature state, in one matmul.

        Column ``j = (c, s, t)`` is ``(f ⊙ scale_t) · W_j + b_j``, the logit the row would get under
        feature state ``t``: masking the weights instead of the features costs one head's matmul.
        """
        head = self.head
        space = self.space
        decoded = space.decode(torch.arange(space.size, device=features.device))  # (size, F)
        scale = torch.ones(space.size, features.shape[1], device=features.device, dtype=features.dtype)
        for column, p in enumerate(self.pretext.pretexts):
            if isinstance(p, ChannelDrop):
                table = p.channel_scale(features.shape[1], device=features.device, dtype=features.dtype)
                scale = scale * table[decoded[:, column + 1]]
        return nn.functional.linear(features, head.weight * scale, head.bias)

    def _feature_average(self, logits: Tensor, states: Tensor) -> Tensor:
        """Class scores ``(R, N)``: joint logits averaged over all feature states (SLA+AG).

        ``states`` gives each row's input-site states; its feature columns are ignored.
        """
        space = self.space
        device = logits.device
        pretexts = self.pretext.pretexts
        strides = torch.tensor(space.strides[1:], device=device)
        is_input = torch.tensor([p.site == "input" for p in pretexts], device=device)
        base = (states * strides * is_input).sum(dim=1)  # (R,)
        feature_offsets = torch.zeros(1, dtype=torch.long, device=device)
        for column, p in enumerate(pretexts):
            if p.site == "feature":
                digits = torch.arange(p.num_states, device=device) * space.strides[column + 1]
                feature_offsets = (feature_offsets.unsqueeze(1) + digits).reshape(-1)
        classes = torch.arange(self.num_classes, device=device) * space.strides[0]
        cols = base.view(-1, 1, 1) + classes.view(1, -1, 1) + feature_offsets.view(1, 1, -1)
        return logits.gather(1, cols.flatten(1)).view(cols.shape).mean(dim=2)

    def _evaluation_rows(
        self, x: Tensor, enumerate_inputs: bool, enumerate_features: bool
    ) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """Model inputs and states for inference: each pretext enumerated or at state 0.

        Rows are row-major over (sample, input states, feature states), as in ``mode="all"``.
        """
        values = {}
        for p in self.pretext.pretexts:
            enumerate_it = enumerate_inputs if p.site == "input" else enumerate_features
            chosen = torch.arange(p.num_states) if enumerate_it else torch.tensor([p.identity_state or 0])
            values[p.name] = chosen.to(x.device)
        inputs, states = enumerate_rows(self.pretext.pretexts, x, values)
        e_in = math.prod([len(values[p.name]) for p in self.input_pretexts])
        e_feat = math.prod([len(values[p.name]) for p in self.feature_pretexts])
        return inputs, states, (e_in, e_feat)


def _insert_factor(features: Tensor, context: _Forward, index: int, sizes: list[int]) -> Tensor:
    """Replicate rows for feature factor ``index``, keeping rows row-major in list order."""
    before = math.prod([sizes[i] for i in context.present if i < index])
    after = math.prod([sizes[i] for i in context.present if i > index])
    rest = features.shape[1:]
    grouped = features.reshape(context.batch_in * before, 1, after, *rest)
    expanded = grouped.expand(-1, sizes[index], -1, *rest)
    return expanded.reshape(-1, *rest)


def _final_rows(count: int, context: _Forward, sizes: list[int]) -> Tensor | slice:
    """Index of the output row that each of ``count`` current rows feeds (absent factors at 0)."""
    if not context.expand:
        return slice(None)
    device = context.states.device
    rows = torch.arange(count, device=device)
    present = sorted(context.present)
    final = torch.zeros_like(rows)
    remaining = rows
    # strides of the full feature grid (innermost last)
    full_strides = [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]
    for i in reversed(present):
        digit = remaining % sizes[i]
        remaining = torch.div(remaining, sizes[i], rounding_mode="floor")
        final = final + digit * full_strides[i]
    return remaining * math.prod(sizes) + final


def _find_head(backbone: nn.Module, head: str | None) -> str:
    if head is not None:
        _get_submodule(backbone, head, "head")
        return str(head)
    linear: list[str] = [n for n, m in backbone.named_modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(
            "backbone has no nn.Linear classifier to widen; name it with head='...'"
        )
    return linear[-1]


def _get_submodule(backbone: nn.Module, name: str, argument: str) -> nn.Module:
    names = [n for n, _ in backbone.named_modules() if n]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
        top = [n for n in names if "." not in n]
        hint = f"; nearest: {close}" if close else f"; top-level modules: {top}"
        raise ValueError(f"{argument}={name!r} is not a submodule of the backbone{hint}")
    return backbone.get_submodule(name)
