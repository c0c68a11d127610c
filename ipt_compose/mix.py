"""MixUp and CutMix over joint labels, and adapters for torchvision's and kornia's mixers.

Convention: ``λ`` is the weight of a row's **own** label (torchvision's and timm's; for CutMix
``λ = 1 - box area / image area``). Row ``i`` is paired with ``π(i) = i - 1`` (``roll(1)``, as
torchvision does), so any batch size works, 1 included (a row paired with itself is unchanged).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch
from torch import Tensor

from ipt_compose._checks import check_integer_tensor, check_positive_int, check_values
from ipt_compose._random import draw_beta, draw_beta_on_host, draw_integer_on_host, draw_integers
from ipt_compose.target import JointTarget

__all__ = ["CutMix", "MixUp", "Mixer", "from_kornia"]

_CPU = torch.device("cpu")


class Mixer:
    """Base of the mixers: draw parameters (:meth:`sample_params`), then apply them.

    A mixer mixes a batch of images and its :class:`~ipt_compose.target.JointTarget` with one draw
    of parameters. Write your own by implementing :meth:`sample_params` and :meth:`transform`
    (and :meth:`check_params` if :meth:`apply` should validate parameters handed in by a user);
    :class:`~ipt_compose.Compose` then runs it in list order like :class:`MixUp` and
    :class:`CutMix`. The split follows torchvision v2's ``make_params``/``transform``.
    """

    def mix(
        self, images: Tensor, target: JointTarget, generator: torch.Generator | None = None
    ) -> tuple[Tensor, JointTarget]:
        """Mix a batch of images and its joint target with one draw of parameters.

        Args:
            images: the image batch, floating point.
            target: the joint target of its rows (any space: class only, or class × pretexts).
            generator: a ``torch.Generator`` for the draws; the global RNG if ``None``.

        Returns:
            The mixed images and the mixed target, over the same space as ``target``.
        """
        _check_batch(images, target)
        return self.transform(images, target, self.sample_params(images, generator=generator))

    def sample_params(
        self, images: Tensor, *, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Draw the parameters of one mix of ``images`` (their size, shape and device)."""
        raise NotImplementedError

    def apply(
        self, images: Tensor, target: JointTarget, params: dict[str, Tensor]
    ) -> tuple[Tensor, JointTarget]:
        """Mix with given parameters, after checking them (:meth:`check_params`).

        Args:
            images: the image batch, floating point.
            target: its joint target.
            params: parameters as :meth:`sample_params` returns them.

        Returns:
            The mixed images and target.
        """
        _check_batch(images, target)
        self.check_params(images, params)
        return self.transform(images, target, params)

    def check_params(self, images: Tensor, params: dict[str, Tensor]) -> None:
        """Raise ``ValueError``/``TypeError`` naming the parameter if ``params`` are invalid."""

    def transform(
        self, images: Tensor, target: JointTarget, params: dict[str, Tensor]
    ) -> tuple[Tensor, JointTarget]:
        """Mix with parameters trusted as they are (drawn by :meth:`sample_params` or checked)."""
        raise NotImplementedError

    def __call__(
        self,
        images: Tensor,
        labels: Tensor | JointTarget,
        *,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, JointTarget]:
        """Mix ``images`` and ``labels`` outside :class:`~ipt_compose.Compose`.

        Args:
            images: the image batch, floating point.
            labels: hard labels ``(B,)``, probabilities ``(B, N)`` or a
                :class:`~ipt_compose.target.JointTarget`.
            num_classes: the class count, for hard labels.
            generator: a ``torch.Generator`` for the draws; the global RNG if ``None``.

        Returns:
            The mixed images and the mixed :class:`~ipt_compose.target.JointTarget`.
        """
        target = (
            labels
            if isinstance(labels, JointTarget)
            else JointTarget.from_labels(labels, num_classes)
        )
        return self.mix(images, target, generator)


class _BetaMixer(Mixer):
    def __init__(self, alpha: float = 1.0, *, per_sample: bool = False) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, int | float):
            raise TypeError(f"alpha must be a number, got {type(alpha).__name__}")
        if not 0 < alpha < float("inf"):
            raise ValueError(f"alpha must be positive and finite, got {alpha}")
        if not isinstance(per_sample, bool):
            raise TypeError(f"per_sample must be a bool, got {type(per_sample).__name__}")
        self.alpha = float(alpha)
        self.per_sample = per_sample

    def _draw_device(self, images: Tensor, generator: torch.Generator | None) -> torch.device:
        """Where the draws happen: the generator's device; without one, the CPU for one draw per
        batch (read on the host without a device sync, as torchvision does) and the images'
        device for per-row draws."""
        if generator is not None:
            return generator.device
        return images.device if self.per_sample else _CPU

    def _draw_lam(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        shape = (images.shape[0],) if self.per_sample else ()
        device = self._draw_device(images, generator)
        if device.type == "cpu" and not self.per_sample and not torch.compiler.is_compiling():
            return torch.tensor(draw_beta_on_host(self.alpha, generator), dtype=torch.float32)
        return draw_beta(
            self.alpha, shape, device=device, dtype=torch.float32, generator=generator
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, per_sample={self.per_sample})"


class MixUp(_BetaMixer):
    """MixUp (Zhang et al., 2018) of images and joint labels: ``x = λ x_i + (1-λ) x_{π(i)}``.

    Inside :class:`~ipt_compose.Compose` it acts in list order: before a pretext it mixes class
    labels (each mixed image then gets one pretext state), after an input pretext it mixes the joint
    labels (the pretext labels are mixed too). It cannot follow a feature-site pretext. Standalone,
    ``MixUp()(images, labels)`` returns the mixed images and a
    :class:`~ipt_compose.target.JointTarget`. A mixture target stays sparse: each mix doubles its
    components (hard labels mixed twice: at most four per row).

    Args:
        alpha: ``λ ~ Beta(alpha, alpha)``; must be positive.
        per_sample: draw ``λ`` per row instead of once per batch.

    Convention:
        ``λ`` weights the row's own label (torchvision's and timm's convention); row ``i`` is
        paired with row ``i - 1`` (``roll(1)``, as torchvision), so any batch size works and a
        batch of one is left unchanged. One ``λ`` per batch is drawn on the CPU (from
        ``generator`` if it is a CPU generator), so a GPU batch is mixed without a host sync.

    Shape:
        - images: :math:`(B, C, H, W)`, floating point
        - labels: :math:`(B)`, :math:`(B, N)` or a target of :math:`B` rows
        - output: images :math:`(B, C, H, W)` and a target of :math:`B` rows

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
        >>> mixed, target = MixUp()(images, labels, num_classes=4, generator=g)
        >>> target.dense().sum(dim=1)
        tensor([1., 1., 1., 1.])
        >>> target.index
        tensor([[0, 3],
                [1, 0],
                [2, 1],
                [3, 2]])
    """

    def sample_params(
        self, images: Tensor, *, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Draw the mixing weight.

        Args:
            images: the batch to be mixed (for its size and device).
            generator: a ``torch.Generator``; the global RNG if ``None``.

        Returns:
            ``{"lam": λ}``, the weight of each row's own image and label (``float32``).

        Shape:
            - lam: :math:`()`, or :math:`(B)` with ``per_sample=True``
        """
        return {"lam": self._draw_lam(images, generator)}

    def check_params(self, images: Tensor, params: dict[str, Tensor]) -> None:
        lam = params["lam"]
        if not isinstance(lam, Tensor) or lam.shape not in ((), (images.shape[0],)):
            got = tuple(lam.shape) if isinstance(lam, Tensor) else type(lam).__name__
            raise ValueError(
                f"params['lam'] must be a tensor of shape () or ({images.shape[0]},), got {got}"
            )
        check_values(lam.ge(0).all() & lam.le(1).all(), "params['lam'] (λ) must lie in [0, 1]")

    def transform(
        self, images: Tensor, target: JointTarget, params: dict[str, Tensor]
    ) -> tuple[Tensor, JointTarget]:
        """Mix with given parameters: ``λ x_i + (1-λ) x_{i-1}`` and ``λ p_i + (1-λ) p_{i-1}``.

        Args:
            images: the image batch, floating point.
            target: its joint target.
            params: ``{"lam": λ}`` as :meth:`sample_params` returns it.

        Returns:
            The mixed images and target.

        Shape:
            - lam: :math:`()` or :math:`(B)`
        """
        lam: Tensor | float = params["lam"]
        if (
            isinstance(lam, Tensor) and lam.ndim == 0 and lam.device.type == "cpu"
            and not torch.compiler.is_compiling()
        ):
            lam = float(lam)  # on the host already: no sync
        weight: Tensor | float = lam
        if isinstance(lam, Tensor):
            weight = lam.to(device=images.device, dtype=images.dtype)
            weight = weight.view(-1, 1, 1, 1) if weight.ndim else weight
        mixed = torch.lerp(images.roll(1, 0), images, weight)  # λ x_i + (1 - λ) x_{i-1}
        return mixed, target.mix(1, lam, validate=False)


class CutMix(_BetaMixer):
    """CutMix (Yun et al., 2019) of images and joint labels: paste a box of the paired image.

    The box follows torchvision's ``v2.CutMix``: centre uniform over the image, half-side
    ``int(0.5 sqrt(1-λ) × side)``, clipped at the border, and ``λ`` recomputed from the clipped
    area. Placement inside :class:`~ipt_compose.Compose` works as for :class:`MixUp`.

    Args:
        alpha: ``λ ~ Beta(alpha, alpha)``; must be positive.
        per_sample: draw ``λ`` and the box per row instead of once per batch.

    Convention:
        ``λ = 1 - box area / image area`` weights the row's own label (torchvision's, timm's and
        the paper's convention); row ``i`` gets the box from row ``i - 1`` (``roll(1)``). One box
        per batch is drawn on the CPU (from ``generator`` if it is a CPU generator) and pasted by
        slicing, without a host sync on a GPU.

    Shape:
        - images: :math:`(B, C, H, W)`, floating point
        - labels: :math:`(B)`, :math:`(B, N)` or a target of :math:`B` rows
        - output: images :math:`(B, C, H, W)` and a target of :math:`B` rows

    Examples:
        >>> images = torch.zeros(2, 1, 4, 4)
        >>> images[1] = 1.0
        >>> labels = JointTarget.from_labels(torch.tensor([0, 1]), num_classes=2)
        >>> box = torch.tensor([0, 0, 2, 2])  # x1, y1, x2, y2: a quarter of the image
        >>> mixed, target = CutMix().apply(images, labels, {"box": box})
        >>> mixed[0, 0]
        tensor([[1., 1., 0., 0.],
                [1., 1., 0., 0.],
                [0., 0., 0., 0.],
                [0., 0., 0., 0.]])
        >>> target.dense()
        tensor([[0.7500, 0.2500],
                [0.2500, 0.7500]])
    """

    def sample_params(
        self, images: Tensor, *, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Draw the box to paste.

        Args:
            images: the batch to be mixed (for its size, height, width and device).
            generator: a ``torch.Generator``; the global RNG if ``None``.

        Returns:
            ``{"box": (x1, y1, x2, y2)}``: pixel bounds, end exclusive, ``torch.long``.

        Shape:
            - box: :math:`(4)`, or :math:`(B, 4)` with ``per_sample=True``
        """
        height, width = images.shape[-2:]
        device = self._draw_device(images, generator)
        if device.type == "cpu" and not self.per_sample and not torch.compiler.is_compiling():
            # one box on the host: Python numbers, no tensor arithmetic (the same draws as below)
            side = 0.5 * math.sqrt(1.0 - draw_beta_on_host(self.alpha, generator))
            x, y = draw_integer_on_host(width, generator), draw_integer_on_host(height, generator)
            w, h = math.floor(side * width), math.floor(side * height)
            bounds = [max(x - w, 0), max(y - h, 0), min(x + w, width), min(y + h, height)]
            return {"box": torch.tensor(bounds)}
        lam = self._draw_lam(images, generator)
        count = images.shape[0] if self.per_sample else 1
        centre_x = draw_integers(width, count, device=device, generator=generator)
        centre_y = draw_integers(height, count, device=device, generator=generator)
        half = 0.5 * torch.sqrt(1.0 - lam.double())
        half_w = (half * width).floor().long()
        half_h = (half * height).floor().long()
        box = torch.stack(
            [
                (centre_x - half_w).clamp(min=0),
                (centre_y - half_h).clamp(min=0),
                (centre_x + half_w).clamp(max=width),
                (centre_y + half_h).clamp(max=height),
            ],
            dim=-1,
        )
        return {"box": box if self.per_sample else box[0]}

    def check_params(self, images: Tensor, params: dict[str, Tensor]) -> None:
        box = params["box"]
        check_integer_tensor("params['box']", box)
        if box.shape not in ((4,), (images.shape[0], 4)):
            raise ValueError(
                f"params['box'] must have shape (4,) or ({images.shape[0]}, 4) as "
                f"(x1, y1, x2, y2), got {tuple(box.shape)}"
            )
        height, width = images.shape[-2:]
        x1, y1, x2, y2 = box.unbind(dim=-1)
        ok = (x1 >= 0) & (x1 <= x2) & (x2 <= width) & (y1 >= 0) & (y1 <= y2) & (y2 <= height)
        check_values(
            ok.all(),
            f"params['box'] must hold 0 <= x1 <= x2 <= {width} and 0 <= y1 <= y2 <= {height}",
        )

    def transform(
        self, images: Tensor, target: JointTarget, params: dict[str, Tensor]
    ) -> tuple[Tensor, JointTarget]:
        """Paste ``params["box"]`` from the paired rows; ``λ`` follows from the box's area.

        Args:
            images: the image batch, floating point.
            target: its joint target.
            params: ``{"box": (x1, y1, x2, y2)}``, integer pixel bounds, end exclusive: one box
                for the batch or one per row.

        Returns:
            The mixed images, and the target mixed with ``λ = 1 - area / (H W)`` (per row for
            per-row boxes).

        Shape:
            - box: :math:`(4)` or :math:`(B, 4)`
        """
        box = params["box"]
        height, width = images.shape[-2:]
        mixed = images.clone()
        if box.ndim == 1 and box.device.type == "cpu" and not torch.compiler.is_compiling():
            # one box on the host: copy only its pixels (torchvision's way), no mask, no sync
            left, top, right, bottom = (int(v) for v in box.tolist())
            if right > left and bottom > top:
                mixed[..., top:bottom, left:right] = images[..., top:bottom, left:right].roll(1, 0)
            lam: Tensor | float = 1.0 - (right - left) * (bottom - top) / (height * width)
            return mixed, target.mix(1, lam, validate=False)
        # per-row boxes, or a box on an accelerator: a mask, without a host sync
        x1, y1, x2, y2 = (c.view(-1, 1, 1) for c in box.to(images.device).long().unbind(dim=-1))
        rows = torch.arange(height, device=images.device).view(1, height, 1)
        cols = torch.arange(width, device=images.device).view(1, 1, width)
        inside = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
        mixed = torch.where(inside.unsqueeze(1), images.roll(1, 0), images)
        area = ((x2 - x1) * (y2 - y1)).view(-1).double()
        lam = (1.0 - area / (height * width)).to(device=target.device, dtype=target.dtype)
        return mixed, target.mix(1, lam if box.ndim == 2 else lam[0], validate=False)


class _TorchvisionMixer(Mixer):
    """Runs a torchvision ``v2.MixUp``/``v2.CutMix`` inside :class:`~ipt_compose.Compose`.

    torchvision mixes images and labels with one λ and one pairing. Handing it the row numbers
    ``arange(B)`` as labels over ``B`` classes returns exactly the ``(B, B)`` mixing matrix it used:
    its diagonal is each row's own weight ``λ`` and the other non-zero column is the partner. The
    joint target is then mixed with that λ and pairing, which equals what torchvision gives for the
    dense joint labels, without building them. torchvision takes no generator: it draws from the
    global RNG whatever ``generator`` says.
    """

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def mix(
        self, images: Tensor, target: JointTarget, generator: torch.Generator | None = None
    ) -> tuple[Tensor, JointTarget]:
        _check_batch(images, target)
        batch = images.shape[0]
        if batch == 0:  # nothing to mix (torchvision cannot infer a class count from no labels)
            return images, target
        rows = torch.arange(batch, device=images.device)
        mixer = copy.copy(self.wrapped)
        mixer.num_classes = batch
        mixed, matrix = mixer(images, rows)
        own = matrix.diagonal()
        others = matrix.masked_fill(torch.eye(batch, dtype=torch.bool, device=matrix.device), -1)
        partner = others.argmax(dim=1)
        # a row paired with itself (B = 1) gets λ + (1 - λ) = 1 on the diagonal: unchanged
        return mixed, target.mix(partner, own.clamp(0, 1), validate=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.wrapped!r})"


def from_kornia(
    labels: Tensor,
    num_classes: int | None = None,
    *,
    lambda_weights: Literal["paired", "own"] = "paired",
) -> JointTarget:
    """Turn kornia's mix labels into a :class:`~ipt_compose.target.JointTarget` (mixture form).

    kornia's ``RandomMixUpV2(data_keys=["input", "class"])`` returns ``(B, 3)`` rows
    ``(y_i, y_π(i), λ)``; ``RandomCutMixV2`` returns ``(num_mix, B, 3)``, one such triple per
    round. The result keeps them sparse: ``1 + num_mix`` weighted class indices per row, ready for
    :class:`~ipt_compose.Compose` (pass it as the labels) or
    :func:`~ipt_compose.joint_cross_entropy`.

    Rounds compose in order, as kornia applies them to the image: round ``r`` pastes its box from
    the *original* batch over the current image, so ``t ← w_r t + (1 - w_r) δ(y_{π_r(i)})`` with
    ``w_r`` the weight of what the row showed before the round. For ``num_mix=1`` this is kornia's
    documented MixUp loss ``(1 - λ) CE(y_i) + λ CE(y_π(i))`` exactly; for more rounds it is the
    recipe kornia documented for its first ``RandomCutMix`` (a running product, not an average
    over rounds: later boxes cover earlier ones). kornia's triples do not say where the boxes
    overlap, so for ``num_mix > 1`` the weights are the expected areas, not the exact ones.

    Convention:
        ``lambda_weights`` says which label kornia's ``λ`` weights:

        - ``"paired"`` (default): ``λ`` is the weight of ``y_π(i)``. This is ``RandomMixUpV2``
          (image ``(1 - λ) x_i + λ x_π(i)``) and ``RandomCutMixV2`` with its compatibility default
          ``use_correct_lambda=False`` (``λ`` = cut area / image area).
        - ``"own"``: ``λ`` is the weight of ``y_i``: ``RandomCutMixV2(use_correct_lambda=True)``
          (``λ = 1 - `` cut area / image area, the paper's and ipt_compose's convention).

        Rows kornia left unmixed (``p < 1``) hold ``(y_i, y_i, 0)`` and come out as ``δ(y_i)``
        under either convention.

    Args:
        labels: kornia's label triples, floating point (class indices stored as floats).
        num_classes: the class count ``N``; optional (hard-label targets ask for it only in
            :meth:`~ipt_compose.target.JointTarget.dense`), checked against the indices if given.
        lambda_weights: ``"paired"`` or ``"own"``, see *Convention*.

    Returns:
        A mixture target over ``class`` with ``1 + num_mix`` components per row (the row's own
        class first); rows sum to 1.

    Shape:
        - labels: :math:`(B, 3)` or :math:`(R, B, 3)`
        - output: ``index`` and ``weight`` :math:`(B, 1 + R)`

    Examples:
        >>> triples = torch.tensor([[0.0, 1.0, 0.25], [1.0, 0.0, 0.25]])  # RandomMixUpV2 output
        >>> from_kornia(triples, num_classes=2).dense()
        tensor([[0.7500, 0.2500],
                [0.2500, 0.7500]])
        >>> rounds = torch.tensor([[[0.0, 1.0, 0.5]], [[0.0, 2.0, 0.5]]])  # RandomCutMixV2, 2 rounds
        >>> from_kornia(rounds, num_classes=3).dense()
        tensor([[0.2500, 0.2500, 0.5000]])
    """
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if lambda_weights not in ("paired", "own"):
        raise ValueError(f"lambda_weights must be 'paired' or 'own', got {lambda_weights!r}")
    if not labels.is_floating_point():
        raise TypeError(
            f"labels must be kornia's floating-point (y_i, y_π(i), λ) triples, got dtype {labels.dtype}"
        )
    if labels.ndim == 2:
        labels = labels.unsqueeze(0)
    if labels.ndim != 3 or labels.shape[-1] != 3 or labels.shape[0] == 0:
        raise ValueError(
            "labels must be kornia's (B, 3) or (num_mix, B, 3) triples, got shape "
            f"{tuple(labels.shape)}"
        )
    if num_classes is not None:
        check_positive_int("num_classes", num_classes)
    own, paired, lam = labels.unbind(dim=-1)  # each (R, B)
    check_values((lam >= 0) & (lam <= 1), "labels[..., 2] (λ) must lie in [0, 1]")
    classes = labels[..., :2]
    check_values(classes == classes.round(), "labels[..., :2] must hold integer class indices")
    check_values(classes >= 0, "labels[..., :2] must be non-negative class indices")
    if num_classes is not None:
        check_values(classes < num_classes, f"labels[..., :2] must be class indices < {num_classes}")
    check_values(own == own[:1], "labels[..., 0] (the row's own class) must agree across rounds")
    # keep[r]: weight of what row i showed before round r that survives round r.
    keep = 1 - lam if lambda_weights == "paired" else lam
    survive = keep.flip(0).cumprod(0).flip(0)  # survive[r] = prod_{s >= r} keep[s]
    after = torch.cat([survive[1:], torch.ones_like(survive[:1])])  # prod_{s > r} keep[s]
    weight = torch.cat([survive[:1], (1 - keep) * after])  # (1 + R, B)
    index = torch.cat([own[:1], paired]).round().long()
    return JointTarget(weight.t().contiguous(), index.t().contiguous(), num_classes=num_classes)


def _as_mixer(item: Any) -> Mixer | None:
    """Our mixer for ``item`` if it is one (or a torchvision v2 MixUp/CutMix), else ``None``."""
    if isinstance(item, Mixer):
        return item
    from torchvision.transforms import v2

    if isinstance(item, v2.MixUp | v2.CutMix):
        return _TorchvisionMixer(item)
    return None


def _check_batch(images: Tensor, target: JointTarget) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(
            f"images must be floating point to be mixed, got dtype {images.dtype}; convert them "
            "first (e.g. v2.ToDtype(torch.float32, scale=True))"
        )
    if images.shape[-2] == 0 or images.shape[-1] == 0:
        raise ValueError(
            f"images must have at least one pixel to be mixed, got shape {tuple(images.shape)}"
        )
    if not isinstance(target, JointTarget):
        raise TypeError(f"target must be a JointTarget, got {type(target).__name__}")
    if target.batch_size != images.shape[0]:
        raise ValueError(
            f"images and target must have the same batch size, got {images.shape[0]} and "
            f"{target.batch_size}"
        )
