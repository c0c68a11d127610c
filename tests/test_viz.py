"""Smoke tests of ipt_compose.viz: figures build, save, and have the expected size."""

from __future__ import annotations

import builtins
import importlib
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

from ipt_compose import (  # noqa: E402
    ChannelDrop,
    Compose,
    Cutout,
    JointTarget,
    MixUp,
    RegionDrop,
    Rotation,
    viz,
)


def _image() -> torch.Tensor:
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


class TestStateGrid:
    def test_single_pretext_saves_one_row(self, tmp_path: Path) -> None:
        fig = viz.state_grid(Rotation(), _image(), panel_size=1.0)
        assert len(fig.axes) == 4
        assert fig.axes[1].get_title() == "rotation=1\nj = 4y + 1"
        out = viz.save(fig, tmp_path / "sub" / "rotation.png", dpi=100)
        width, height = _png_size(out)
        # four 1-inch panels side by side at 100 dpi, one row
        assert width == 400
        assert 100 <= height < 200

    def test_compose_panels_follow_the_joint_layout(self, tmp_path: Path) -> None:
        pretext = Compose([ChannelDrop(k=4), Cutout(grid=2, identity=True)], num_classes=10)
        fig = viz.state_grid(pretext, _image(), num_classes=10, label=3, panel_size=1.0)
        assert len(fig.axes) == 20  # 4 × 5 states, 5 per row (the last pretext's states)
        assert fig.axes[7].get_title() == "channel_drop=1 cutout=2\nj = 67 of 200"
        width, height = _png_size(viz.save(fig, tmp_path / "compose.png", dpi=50))
        assert width == 250
        assert height > 4 * 50  # four rows of panels (taller ones: image plus channel strip)

    def test_feature_pretext_draws_the_dropped_group(self) -> None:
        fig = viz.state_grid(ChannelDrop(k=2), _image(), channels=4)
        panel = fig.axes[1].get_images()[0].get_array()
        strip = panel[-1]  # last pixel row: the channel strip
        red = strip[:, 0] > strip[:, 2]
        assert not red[: 16 // 2].any() and red[16 // 2 :].all()  # state 1 drops the second half

    def test_spatial_feature_pretext_tints_the_dropped_cell(self) -> None:
        image = torch.full((3, 16, 16), 0.5)
        fig = viz.state_grid(RegionDrop(grid=2, at="layer3"), image)
        assert len(fig.axes) == 4
        panel = torch.as_tensor(fig.axes[3].get_images()[0].get_array())  # state 3: bottom right
        assert panel.shape == (16, 16, 3)  # no channel strip: no channel is zeroed everywhere
        red = panel[..., 0] > panel[..., 2] + 0.1
        assert red[8:, 8:].all() and not red[:8].any() and not red[:, :8].any()

    def test_mixers_are_skipped_and_uint8_images_accepted(self) -> None:
        image = (_image() * 255).to(torch.uint8).unsqueeze(0)
        fig = viz.state_grid(Compose([MixUp(), Rotation()]), image)
        assert len(fig.axes) == 4

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="image must have shape"):
            viz.state_grid(Rotation(), torch.rand(2, 3, 8, 8))
        with pytest.raises(ValueError, match="label must lie in"):
            viz.state_grid(Rotation(), _image(), num_classes=2, label=2)
        with pytest.raises(TypeError, match="pretext must be"):
            viz.state_grid("rotation", _image())  # type: ignore[arg-type]


class TestTargetHeatmap:
    def _target(self) -> JointTarget:
        target = JointTarget.from_labels(torch.tensor([0, 1, 2]), num_classes=3)
        target = target.lift(torch.tensor([0, 1, 3]), "rotation", 4)
        return target.mix(torch.tensor([2, 0, 1]), 0.75)

    def test_rows(self, tmp_path: Path) -> None:
        fig = viz.target_heatmap(self._target())
        ax = fig.axes[0]
        assert ax.get_images()[0].get_array().shape == (3, 12)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["class 0", "class 1", "class 2"]
        width, height = _png_size(viz.save(fig, tmp_path / "rows.png", dpi=60))
        assert width > height > 0

    def test_panels_of_a_dense_tensor(self, tmp_path: Path) -> None:
        dense = self._target().dense()
        fig = viz.target_heatmap(dense, num_classes=3, layout="panels", row_labels=["a", "b", "c"])
        assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
        assert fig.axes[0].get_images()[0].get_array().shape == (3, 4)
        width, height = _png_size(viz.save(fig, tmp_path / "panels.png", dpi=60))
        assert width > 0 and height > 0

    def test_factor_names_label_the_state_columns(self) -> None:
        target = JointTarget.from_labels(torch.tensor([1]), num_classes=2)
        target = target.lift(torch.tensor([1]), "channel_drop", 2).lift(torch.tensor([3]), "rotation", 4)
        fig = viz.target_heatmap(target, layout="panels")
        labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert labels[:2] == ["0,0", "0,1"] and len(labels) == 8
        assert fig.axes[0].get_xlabel() == "channel_drop × rotation"

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="num_classes is required"):
            viz.target_heatmap(torch.rand(2, 6))
        with pytest.raises(ValueError, match="not a multiple"):
            viz.target_heatmap(torch.rand(2, 7), num_classes=2)
        with pytest.raises(ValueError, match="layout"):
            viz.target_heatmap(self._target(), layout="grid")  # type: ignore[arg-type]


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    for name in [m for m in sys.modules if m.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.reload(viz)  # importing viz itself needs no matplotlib
    with pytest.raises(ImportError, match=r"ipt_compose\[examples\]"):
        module.state_grid(Rotation(), _image())
