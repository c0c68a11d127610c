"""Small models and batches shared by the reliability tests (bad input, fuzz, determinism, compile,
precision, host syncs)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ipt_compose import ChannelDrop, Compose, JointModel, JointTarget, Rotation

N = 10  # classes


def cnn(channels: int = 8, classes: int = N) -> nn.Sequential:
    """A tiny CNN whose classifier sees pooled features ``(B, channels)``."""
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, classes),
    )


def images(b: int = 4, h: int = 8, w: int = 8, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(b * 100 + h + w)).to(dtype)


def labels(b: int = 4) -> Tensor:
    return torch.arange(b) % N


def model(pretext: list[Any] | None = None, **kwargs: Any) -> JointModel:
    pretexts = pretext if pretext is not None else [ChannelDrop(k=4), Rotation()]
    return JointModel(cnn(), Compose(pretexts, num_classes=N), num_classes=N, **kwargs)


def target(b: int = 4) -> JointTarget:
    """A target over ``class × channel_drop(4) × rotation(4)`` (160 joint labels)."""
    return Compose([ChannelDrop(k=4), Rotation()], num_classes=N)(images(b), labels(b)).target


def states(*rows: list[int]) -> Tensor:
    return torch.tensor(rows)


def soft(b: int = 4, n: int = N) -> Tensor:
    return torch.full((b, n), 1.0 / n)


class Unpooled(nn.Module):
    """A backbone whose classifier sees (B, C, L) features, not pooled (B, C) ones."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(64, N)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).flatten(2))
