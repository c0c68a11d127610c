"""Pictures of pretext states and joint targets (needs matplotlib: the ``examples`` extra).

Two figures explain most of the library:

* :func:`state_grid` — one image under every state of a pretext (or every joint state of a
  :class:`~ipt_compose.Compose`), titled with its joint index ``j = y·K + s``. Feature-site
  pretexts leave the image alone; their panels show what the state zeroes in a feature map (a
  strip of channels, or the image region of a dropped cell).
* :func:`target_heatmap` — a batch of joint targets over the class × state grid.

matplotlib is imported inside the functions, so ``import ipt_compose`` never needs it. Figures are
built with ``matplotlib.figure.Figure`` directly (no ``pyplot`` state): save them with :func:`save`
or ``fig.savefig``, or let Jupyter display them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from einops import rearrange
from torch import Tensor

from ipt_compose.compose import Compose
from ipt_compose.pretext.base import Pretext
from ipt_compose.space import LabelSpace
from ipt_compose.target import JointTarget

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["save", "state_grid", "target_heatmap"]

_MISSING = (
    "ipt_compose.viz needs matplotlib; install the examples extra: "
    "pip install 'ipt_compose[examples]' (or pip install matplotlib)"
)

# Colours of the channel strip: kept channels, dropped channels (RGB in [0, 1]).
_KEPT = torch.tensor([0.80, 0.86, 0.93])
_DROPPED = torch.tensor([0.84, 0.15, 0.16])


def _new_figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(_MISSING) from error
    return Figure(figsize=(width, height), layout="constrained")


def state_grid(
    pretext: Pretext | Compose | Sequence[Pretext],
    image: Tensor,
    *,
    num_classes: int | None = None,
    label: int | None = None,
    channels: int = 16,
    ncols: int | None = None,
    panel_size: float = 1.6,
) -> Figure:
    """One image under every state of a pretext or of a ``Compose``'s pretexts.

    Panels follow the joint layout: panel ``s`` shows the image under the pretext states whose
    offset in a class block is ``s`` (row-major over the pretexts in list order), so its joint index
    is ``j = y·K + s``. Input-site pretexts transform the image. A feature-site pretext leaves it
    alone and is drawn by what it does to a feature map: a channel pretext
    (:class:`~ipt_compose.ChannelDrop`) gets a strip of ``channels`` cells under the image, red
    where the state zeroes a channel; a spatial one (:class:`~ipt_compose.RegionDrop`) tints red
    the part of the image its zeroed cells cover.

    Args:
        pretext: a pretext, a :class:`~ipt_compose.Compose` or a list of pretexts. Mixers in a
            ``Compose`` are skipped (they have no states).
        image: one image ``(C, H, W)`` or ``(1, C, H, W)`` with ``C`` in ``{1, 3}`` and values in
            ``[0, 1]``.
        num_classes: the class count ``N``; with ``label``, titles give the joint index out of
            ``N·K``.
        label: the image's class ``y``; titles then show ``j = y·K + s`` as a number. Without it
            they show the formula.
        channels: how many channels the strip of a feature-site pretext draws (a feature map of
            this width is masked by each state).
        ncols: panels per row; defaults to the last pretext's state count (so each row of panels
            is one state of the earlier pretexts), or 8 at most for a single pretext.
        panel_size: the width of one panel in inches.

    Returns:
        A ``matplotlib.figure.Figure`` with ``K`` panels.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: the image has the wrong shape, or ``label`` lies outside ``[0, num_classes)``.

    Examples:
        >>> from ipt_compose import Compose, ChannelDrop, Rotation
        >>> fig = state_grid(Compose([ChannelDrop(k=2), Rotation()]), torch.rand(3, 8, 8), label=1)
        >>> len(fig.axes), fig.axes[5].get_title()
        (8, 'channel_drop=1 rotation=1\\nj = 13')
    """
    pretexts = _pretexts_of(pretext)
    img = _check_image(image)
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    space = LabelSpace([("class", 1), *((p.name, p.num_states) for p in pretexts)])
    k = space.size
    if label is not None:
        if num_classes is not None and not 0 <= label < num_classes:
            raise ValueError(f"label must lie in [0, {num_classes}), got {label}")
        if label < 0:
            raise ValueError(f"label must be a non-negative class index, got {label}")
    states = space.decode(torch.arange(k))[:, 1:]  # (K, n_pretexts), row-major
    panels = _render_states(pretexts, img, states, channels)

    if ncols is None:
        ncols = pretexts[-1].num_states if len(pretexts) > 1 else min(k, 8)
    ncols = max(1, min(ncols, k))
    nrows = math.ceil(k / ncols)
    aspect = panels.shape[1] / panels.shape[2]
    fig = _new_figure(panel_size * ncols, (panel_size * aspect + 0.45) * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for s in range(nrows * ncols):
        ax = axes[s // ncols][s % ncols]
        ax.set_axis_off()
        if s >= k:
            continue
        shown = panels[s].squeeze(-1) if panels.shape[-1] == 1 else panels[s]
        ax.imshow(
            shown.numpy(),
            cmap="gray" if panels.shape[-1] == 1 else None,
            vmin=0.0,
            vmax=1.0,
            interpolation="nearest",
        )
        name = " ".join(f"{p.name}={int(v)}" for p, v in zip(pretexts, states[s], strict=True))
        if label is None:
            where = f"j = {k}y + {s}" if k > 1 else "j = y"
        else:
            labelled = LabelSpace([("class", max(label + 1, num_classes or 0)), *list(space)[1:]])
            where = f"j = {int(labelled.encode(torch.tensor([label, *states[s].tolist()])))}"
            if num_classes is not None:
                where += f" of {num_classes * k}"
        ax.set_title(f"{name}\n{where}", fontsize=8)
    return fig


def target_heatmap(
    target: JointTarget | Tensor,
    num_classes: int | None = None,
    *,
    layout: Literal["rows", "panels"] = "rows",
    factors: Sequence[tuple[str, int]] | None = None,
    annotate: bool | None = None,
    row_labels: Sequence[str] | None = None,
    cmap: str = "Blues",
) -> Figure:
    """Draw a batch of joint targets over the class × state grid.

    With ``layout="rows"`` the figure is one heat map: one row per sample, one column per joint
    index, thin lines between class blocks (each block holds the ``K`` states of one class). With
    ``layout="panels"`` each sample gets its own panel: rows are classes, columns the ``K`` pretext
    states — the ``(N, K)`` view ``rearrange(q, "(c s) -> c s", s=K)`` of its distribution.

    Args:
        target: a :class:`~ipt_compose.JointTarget`, or dense probabilities ``(B, N·K)``.
        num_classes: the class count ``N``; needed if the target does not know it (hard labels),
            and for a dense tensor.
        layout: ``"rows"`` (one heat map of the batch) or ``"panels"`` (one class × state panel per
            sample).
        factors: the pretext factors of a dense tensor, ``(name, size)`` pairs, to name the state
            columns; defaults to the target's own factors, or one factor ``"state"``.
        annotate: write each probability in its cell; defaults to doing so for grids of 64 cells or
            fewer per sample.
        row_labels: a name for each sample (titles in ``"panels"``, y tick labels in ``"rows"``).
        cmap: a matplotlib colormap name.

    Returns:
        A ``matplotlib.figure.Figure``.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: the dense width is not a multiple of ``num_classes``, or ``layout`` is unknown.

    Examples:
        >>> t = JointTarget.from_labels(torch.tensor([0, 1]), num_classes=2)
        >>> t = t.lift(torch.tensor([0, 1]), "half_turn", 2).mix(torch.tensor([1, 0]), 0.75)
        >>> fig = target_heatmap(t, layout="panels")
        >>> [ax.get_title() for ax in fig.axes[:2]]
        ['sample 0', 'sample 1']
    """
    if layout not in ("rows", "panels"):
        raise ValueError(f"layout must be 'rows' or 'panels', got {layout!r}")
    dense, n, names = _dense_target(target, num_classes, factors)
    batch, size = dense.shape
    k = size // n
    if row_labels is not None and len(row_labels) != batch:
        raise ValueError(f"row_labels must name the {batch} samples, got {len(row_labels)}")
    labels = list(row_labels) if row_labels is not None else [f"sample {i}" for i in range(batch)]
    if annotate is None:
        annotate = size <= 64
    state_names = _state_names(names)

    if layout == "rows":
        fig = _new_figure(min(1.2 + 0.32 * size, 16.0), 0.9 + 0.38 * batch)
        ax = fig.add_subplot()
        ax.imshow(dense.numpy(), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        for c in range(1, n):
            ax.axvline(c * k - 0.5, color="black", linewidth=1.2)
        ax.set_yticks(range(batch), labels)
        ax.set_xticks([c * k + (k - 1) / 2 for c in range(n)], [f"class {c}" for c in range(n)])
        ax.set_xlabel(f"joint index j = {k}·class + s" if k > 1 else "joint index j = class")
        if annotate:
            _annotate(ax, dense)
        return fig

    ncols = min(batch, 4)
    nrows = math.ceil(batch / ncols)
    fig = _new_figure(ncols * (1.2 + 0.55 * k), nrows * (0.9 + 0.42 * n))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i in range(nrows * ncols):
        ax = axes[i // ncols][i % ncols]
        if i >= batch:
            ax.set_axis_off()
            continue
        grid = rearrange(dense[i], "(c s) -> c s", c=n)  # the class-major layout: a class per row
        ax.imshow(grid.numpy(), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(labels[i], fontsize=9)
        ax.set_yticks(range(n), [f"class {c}" for c in range(n)], fontsize=8)
        ax.set_xticks(range(k), state_names, fontsize=7, rotation=90 if k > 4 else 0)
        if len(names) > 1:
            ax.set_xlabel(" × ".join(name for name, _ in names), fontsize=8)
        if annotate:
            _annotate(ax, grid)
    return fig


def save(fig: Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (the format follows the suffix), creating missing folders.

    PNG metadata that changes between machines (the matplotlib version) is left out, so a figure
    made again from the same code and seeds gives the same file.

    Args:
        fig: a figure from :func:`state_grid`, :func:`target_heatmap` or matplotlib.
        path: where to write, e.g. ``"docs/figures/rotation.png"``.
        dpi: resolution in dots per inch.

    Returns:
        The path written, as a ``pathlib.Path``.

    Examples:
        >>> import tempfile
        >>> from ipt_compose import Rotation
        >>> out = save(state_grid(Rotation(), torch.rand(3, 8, 8)), Path(tempfile.mkdtemp()) / "r.png")
        >>> out.suffix
        '.png'
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata: dict[str, Any] | None = {"Software": None} if out.suffix.lower() == ".png" else None
    fig.savefig(out, dpi=dpi, metadata=metadata)
    return out


# ---------------------------------------------------------------------- helpers
def _pretexts_of(pretext: Pretext | Compose | Sequence[Pretext]) -> list[Pretext]:
    if isinstance(pretext, Compose):
        found = list(pretext.pretexts)
    elif isinstance(pretext, Pretext):
        found = [pretext]
    elif isinstance(pretext, Sequence) and all(isinstance(p, Pretext) for p in pretext):
        found = list(pretext)
    else:
        raise TypeError(
            f"pretext must be a Pretext, a Compose or a list of pretexts, got {type(pretext).__name__}"
        )
    if not found:
        raise ValueError("pretext must hold at least one pretext")
    return found


def _check_image(image: Tensor) -> Tensor:
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    img = image.detach().cpu()
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(
            f"image must have shape (C, H, W) or (1, C, H, W) with C = 1 or 3, got {tuple(image.shape)}"
        )
    if not img.is_floating_point():
        img = img.float() / 255.0
    return img.float()


def _render_states(pretexts: list[Pretext], image: Tensor, states: Tensor, channels: int) -> Tensor:
    """The panels ``(K, H', W, 3 or 1)``: the image under each state row, plus feature masks.

    A feature-site pretext is shown by its effect on a feature map of ones, ``(K, channels, H, W)``
    (or ``(K, channels)`` if it only takes pooled features): cells it zeroes in every channel are
    tinted red on the image (spatial pretexts such as ``RegionDrop``), channels it zeroes
    everywhere are drawn red in a strip under the image (``ChannelDrop``).
    """
    k = states.shape[0]
    height, width = image.shape[-2:]
    images = image.unsqueeze(0).expand(k, *image.shape).clone()
    for column, p in enumerate(pretexts):
        if p.site == "input":
            images = p.apply(images, states[:, column])
    pictures = images.clamp(0, 1).permute(0, 2, 3, 1)  # (K, H, W, C)
    strips: list[Tensor] = []
    for column, p in enumerate(pretexts):
        if p.site != "feature":
            continue
        kept = _feature_mask(p, states[:, column], channels, height, width)  # (K, channels, h, w)
        dropped_cells = ~kept.any(dim=1)  # (K, h, w): zero in every channel
        if dropped_cells.any():
            if pictures.shape[-1] == 1:
                pictures = pictures.expand(-1, -1, -1, 3)
            tint = dropped_cells.unsqueeze(-1)
            pictures = torch.where(tint, 0.4 * pictures + 0.6 * _DROPPED, pictures)
        dropped_channels = ~kept.flatten(2).any(dim=2)  # (K, channels): zero everywhere
        if dropped_channels.any():
            strips.append(_channel_strip(~dropped_channels, width))
    if not strips:
        return pictures
    if pictures.shape[-1] == 1:
        pictures = pictures.expand(-1, -1, -1, 3)
    gap = torch.ones(k, max(1, height // 16), width, 3)
    parts = [pictures]
    for strip in strips:
        parts += [gap, strip]
    return torch.cat(parts, dim=1)


def _feature_mask(pretext: Pretext, states: Tensor, channels: int, height: int, width: int) -> Tensor:
    """Where ``pretext`` keeps a feature map of ones: ``(K, channels, height, width)`` booleans."""
    k = states.shape[0]
    try:
        out = pretext.apply(torch.ones(k, channels, height, width), states)
    except (ValueError, RuntimeError):  # a pretext of pooled features only: (K, channels)
        flat = pretext.apply(torch.ones(k, channels), states)
        out = flat.view(k, channels, 1, 1).expand(k, channels, height, width)
    return out != 0


def _channel_strip(kept: Tensor, width: int) -> Tensor:
    """A ``(K, h, width, 3)`` strip per state from ``kept`` ``(K, channels)``: red = dropped."""
    k, channels = kept.shape
    cell = max(1, width // channels)
    cells = kept.repeat_interleave(cell, dim=1)  # (K, channels * cell)
    colour = torch.where(cells.unsqueeze(-1), _KEPT, _DROPPED)  # (K, channels * cell, 3)
    if colour.shape[1] < width:  # pad to the image's width
        pad = torch.ones(k, width - colour.shape[1], 3)
        colour = torch.cat([colour, pad], dim=1)
    height = max(2, width // 8)
    return colour[:, :width].unsqueeze(1).expand(k, height, width, 3)


def _dense_target(
    target: JointTarget | Tensor,
    num_classes: int | None,
    factors: Sequence[tuple[str, int]] | None,
) -> tuple[Tensor, int, list[tuple[str, int]]]:
    if isinstance(target, JointTarget):
        dense = target.dense(num_classes)
        n = target.space(num_classes).num_classes
        names = list(factors) if factors is not None else list(target.factors)
    elif isinstance(target, Tensor):
        if num_classes is None:
            raise ValueError("num_classes is required to draw a dense tensor of joint targets")
        dense = target
        n = num_classes
        names = list(factors) if factors is not None else []
    else:
        raise TypeError(f"target must be a JointTarget or a tensor, got {type(target).__name__}")
    if dense.ndim != 2:
        raise ValueError(f"the dense target must have shape (B, N·K), got {tuple(dense.shape)}")
    if dense.shape[1] % n:
        raise ValueError(f"the joint width {dense.shape[1]} is not a multiple of num_classes={n}")
    k = dense.shape[1] // n
    if not names:
        names = [("state", k)] if k > 1 else []
    if math.prod(size for _, size in names) != k:
        raise ValueError(f"factors {names} do not multiply to the {k} states per class")
    return dense.detach().float().cpu(), n, names


def _state_names(factors: list[tuple[str, int]]) -> list[str]:
    if not factors:
        return ["-"]
    space = LabelSpace([("class", 1), *factors])
    decoded = space.decode(torch.arange(space.size))[:, 1:]
    if len(factors) == 1:
        return [f"{factors[0][0]}={int(s)}" for s in decoded[:, 0]]
    return [",".join(str(int(v)) for v in row) for row in decoded]


def _annotate(ax: Any, values: Tensor) -> None:
    for (row, col), value in zip(
        torch.cartesian_prod(torch.arange(values.shape[0]), torch.arange(values.shape[1])).tolist(),
        values.flatten().tolist(),
        strict=True,
    ):
        if value == 0:
            continue
        ax.text(
            col,
            row,
            f"{value:.2f}".rstrip("0").rstrip("."),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if value > 0.6 else "black",
        )
