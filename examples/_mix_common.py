"""What the three mixing examples share: arguments, data, a small CNN and the test accuracy.

The examples themselves (``cutmix_torchvision.py``, ``timm_mixup.py``, ``kornia_cutmix.py``) hold
the part worth reading: the mixer, ``Compose``, ``JointModel`` and ``joint_cross_entropy``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _data import ImageSet, digits, image_folder, normalize
from torch import Tensor, nn

from ipt_compose import JointModel

__all__ = ["accuracy", "load_data", "parser", "small_cnn", "standardise"]


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every mixing example takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="an ImageFolder tree (root/<class>/<image>, or root/train and root/test); "
        "default: scikit-learn's digits, offline",
    )
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, default=None, help="train on a subset of this many images")
    p.add_argument("--image-size", type=int, default=None, help="default: 16 (digits), 32 (--data)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    return p


def load_data(args: argparse.Namespace) -> tuple[ImageSet, ImageSet]:
    """``(train, test)`` in memory (``uint8``): ``--data`` if given, else digits at 16×16."""
    limit = args.limit
    test_limit = None if limit is None else max(limit // 4, 10)
    if args.data is None:
        train, test = digits(size=args.image_size or 16, seed=args.seed)
        return train.subset(limit, args.seed), test.subset(test_limit, args.seed)
    root, size = Path(args.data), args.image_size or 32
    if (root / "train").is_dir() and (root / "test").is_dir():
        train = image_folder(root / "train", limit=limit, seed=args.seed, image_size=size)
        test = image_folder(root / "test", limit=test_limit, seed=args.seed, image_size=size)
        return train, test
    whole = image_folder(root, limit=None if limit is None else limit + test_limit, image_size=size)
    order = torch.randperm(len(whole), generator=torch.Generator().manual_seed(args.seed))
    cut = len(whole) // 5
    test_idx, train_idx = order[:cut], order[cut:]
    return (
        ImageSet(whole.images[train_idx], whole.labels[train_idx], whole.classes),
        ImageSet(whole.images[test_idx], whole.labels[test_idx], whole.classes),
    )


def standardise(train: ImageSet) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of the training images (in ``[0, 1]`` units)."""
    x = train.images.float().div(255)
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)


def small_cnn(num_classes: int) -> nn.Module:
    """Two conv blocks, global average pooling and a linear classifier (32-channel features)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


@torch.no_grad()
def accuracy(model: JointModel, test: ImageSet, mean: Tensor, std: Tensor, device: torch.device) -> float:
    """Top-1 accuracy of ``model.predict`` (class scores averaged over the ChannelDrop states)."""
    model.eval()
    correct = 0
    for start in range(0, len(test), 256):
        images = normalize(test.images[start : start + 256].to(device), mean, std)
        scores = model.predict(images)
        correct += int((scores.argmax(1).cpu() == test.labels[start : start + 256]).sum())
    model.train()
    return correct / max(len(test), 1)
