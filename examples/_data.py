"""Data and model helpers shared by the examples: in-memory image sets, on-device augmentation, ResNet-20.

Images are decoded once with ``torchvision.io`` into a ``uint8`` tensor ``(N, 3, H, W)`` held in memory
(optionally cached to a ``.pt`` file, and optionally moved to the training device once), and augmented
per batch on the training device by kornia's per-sample batch augmentations (random crop with padding,
horizontal flip), so a run is bound neither by JPEG decoding nor by a ``DataLoader``'s worker processes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ImageSet",
    "augment",
    "augmentation",
    "batches",
    "digits",
    "image_folder",
    "normalize",
    "resnet20",
    "torchvision_cifar10",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")  # what torchvision.io.decode_image reads
_JPEG = (".jpg", ".jpeg")


@dataclass
class ImageSet:
    """A labelled image set held in memory.

    Attributes:
        images: ``(N, 3, H, W)`` ``uint8``.
        labels: ``(N,)`` ``int64``.
        classes: class names, index order.
    """

    images: Tensor
    labels: Tensor
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, limit: int | None, seed: int = 0) -> ImageSet:
        """A class-balanced subset of at most ``limit`` images (about ``limit / classes`` per class)."""
        if limit is None or limit >= len(self):
            return self
        keep = _balanced(self.labels, limit, seed)
        return ImageSet(self.images[keep], self.labels[keep], self.classes)

    def split(self, count: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """Hold out a class-balanced random ``count`` images: ``(the rest, the held-out ones)``.

        Used to choose hyper-parameters on training data, never on the test set.

        Args:
            count: images to hold out, ``0 < count < len(self)``.
            seed: seed of the draw (the same seed holds out the same images).
        """
        if not 0 < count < len(self):
            raise ValueError(f"count must be in (0, {len(self)}), got {count}")
        held = _balanced(self.labels, count, seed)
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[held] = False
        rest = torch.nonzero(keep).flatten()
        return (ImageSet(self.images[rest], self.labels[rest], self.classes),
                ImageSet(self.images[held], self.labels[held], self.classes))

    def to(self, device: torch.device | str) -> ImageSet:
        """The same images and labels on ``device`` (decode once, move once, index there)."""
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes)


def _balanced(labels: Tensor, limit: int, seed: int) -> Tensor:
    """Indices of a class-balanced random subset of ``limit`` rows (sorted, deterministic)."""
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    classes = labels.unique()
    per_class = [torch.nonzero(labels == c).flatten() for c in classes]
    per_class = [idx[torch.randperm(len(idx), generator=g)] for idx in per_class]
    quota = limit // len(classes)
    chosen = [idx[:quota] for idx in per_class]
    leftover = limit - sum(len(c) for c in chosen)
    if leftover > 0:  # fill the remainder round-robin from what is left
        rest = torch.cat([idx[quota:] for idx in per_class])
        chosen.append(rest[torch.randperm(len(rest), generator=g)[:leftover]])
    return torch.cat(chosen).sort().values


# ---------------------------------------------------------------------------------------- sources
def digits(size: int = 16, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 8×8 digits (1,797 images, offline), upscaled to ``size``², 3 channels.

    Returns:
        ``(train, test)``, a stratified split with ``test_fraction`` of each class in ``test``.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N,1,8,8) in [0,1]
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(data.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    test_idx = []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        test_idx.append(idx[: round(len(idx) * test_fraction)])
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[torch.cat(test_idx)] = True
    names = [str(c) for c in range(10)]
    return (
        ImageSet(images[~is_test], labels[~is_test], names),
        ImageSet(images[is_test], labels[is_test], names),
    )


def image_folder(
    root: str | os.PathLike[str],
    *,
    limit: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ImageSet:
    """Decode an ``ImageFolder`` tree (``root/<class>/<image>``) once into memory with ``torchvision.io``.

    JPEGs are decoded in one batched ``torchvision.io.decode_jpeg`` call (libjpeg-turbo; the pixels
    equal PIL's), other formats one by one with ``decode_image``.

    Args:
        root: the tree; classes are its sub-folders in sorted order (torchvision's convention).
        limit: keep a class-balanced random subset of this many images (chosen before decoding).
        seed: seed of the subset.
        image_size: resize every image to ``image_size``² (needed when sizes differ).
        cache_dir: if given, the decoded tensor is saved there and reused by later runs.

    Returns:
        The decoded set, ``uint8`` images ``(N, 3, H, W)`` on the CPU.
    """
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root} has no class sub-folders (expected root/<class>/<image>)")
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [index] * len(found)
    if not files:
        raise ValueError(f"{root} holds no images with suffixes {IMAGE_SUFFIXES}")
    label_tensor = torch.tensor(labels, dtype=torch.long)
    keep = (
        _balanced(label_tensor, limit, seed)
        if limit is not None and limit < len(files)
        else torch.arange(len(files))
    )
    cache: Path | None = None
    if cache_dir is not None:
        key = f"{root.resolve()}|{len(files)}|{limit}|{seed}|{image_size}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        cache = Path(cache_dir) / f"{root.name}-{digest}.pt"
        if cache.exists():
            saved = torch.load(cache)
            return ImageSet(saved["images"], saved["labels"], saved["classes"])
    chosen = [files[i] for i in keep.tolist()]
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image decoders in favour of TorchCodec's; they still work,
        # and they are what the torchvision these examples declare ships
        warnings.filterwarnings("ignore", "The image decoding and encoding", DeprecationWarning)
        raw = [read_file(str(f)) for f in chosen]
        if all(f.suffix.lower() in _JPEG for f in chosen):
            decoded = list(decode_jpeg(raw, mode=ImageReadMode.RGB))
        else:
            decoded = [decode_image(data, mode=ImageReadMode.RGB) for data in raw]
    if image_size is not None:
        decoded = [
            img if tuple(img.shape[-2:]) == (image_size, image_size)
            else F.interpolate(img[None].float(), size=(image_size, image_size), mode="bilinear",
                               antialias=True)[0].round().clamp(0, 255).to(torch.uint8)
            for img in decoded
        ]
    shapes = {tuple(t.shape) for t in decoded}
    if len(shapes) > 1:
        raise ValueError(f"images in {root} differ in size {sorted(shapes)[:3]}…; pass image_size")
    result = ImageSet(torch.stack(decoded), label_tensor[keep], classes)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")  # parallel processes: write, then rename
        torch.save({"images": result.images, "labels": result.labels, "classes": classes}, partial)
        partial.replace(cache)
    return result


def torchvision_cifar10(root: str | os.PathLike[str], *, download: bool) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 through torchvision's downloader (needs a network the first time)."""
    from torchvision.datasets import CIFAR10

    out = []
    for train in (True, False):
        ds = CIFAR10(str(root), train=train, download=download)
        images = torch.as_tensor(ds.data).permute(0, 3, 1, 2).contiguous()  # (N,3,32,32) uint8
        out.append(ImageSet(images, torch.as_tensor(ds.targets, dtype=torch.long), list(ds.classes)))
    return out[0], out[1]


# ----------------------------------------------------------------------------------- batches
def normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``uint8`` ``(B, C, H, W)`` → float, standardised per channel."""
    x = images.float().div_(255)
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


@functools.lru_cache(maxsize=16)
def augmentation(size: tuple[int, int], padding: int = 4, flip: bool = True) -> nn.Module:
    """kornia's per-sample batch augmentation: random crop after zero padding, random horizontal flip.

    Every image of the batch draws its own crop offset and flip (kornia draws the parameters on the
    CPU from the global RNG, so ``torch.manual_seed`` makes a run repeatable, and applies them on
    the images' device without reading anything back from it).

    Args:
        size: the output ``(H, W)``, the images' own size.
        padding: zero padding on every side before the crop; 0 turns the crop off.
        flip: flip each image horizontally with probability 1/2.

    Returns:
        An ``nn.Module`` mapping ``(B, C, H, W)`` to ``(B, C, H, W)``, cached per arguments.
    """
    import kornia.augmentation as K

    steps: list[nn.Module] = []
    if padding > 0:
        steps.append(K.RandomCrop(size, padding=padding, fill=0, cropping_mode="slice"))
    if flip:
        steps.append(K.RandomHorizontalFlip())
    return nn.Sequential(*steps)


def augment(x: Tensor, *, padding: int = 4, flip: bool = True) -> Tensor:
    """Random crop with zero padding and random horizontal flip per image, on ``x``'s device (kornia).

    Shape:
        - x: :math:`(B, C, H, W)` float (normalised images, so zero padding is the mean colour);
          output: same shape, device and dtype.
    """
    if padding <= 0 and not flip:
        return x
    return augmentation((x.shape[-2], x.shape[-1]), padding, flip)(x)


def batches(
    data: ImageSet,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(uint8 images, labels)`` mini-batches from an in-memory set, indexed where it lives.

    The order is drawn on the CPU (from ``generator``) and moved to the data's device once per epoch.
    """
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(data.images.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield data.images[idx], data.labels[idx]


# ------------------------------------------------------------------------------------- model
class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """The CIFAR ResNet-20 of He et al. (2016): 3 stages of 3 blocks, 16/32/64 channels.

    Submodules ``layer1``…``layer3`` and the classifier ``fc`` are named as in torchvision's ResNets,
    so ``ChannelDrop(at="layer3")`` works on both.
    """

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._stage(width, width, 1)
        self.layer2 = self._stage(width, 2 * width, 2)
        self.layer3 = self._stage(2 * width, 4 * width, 2)
        self.fc = nn.Linear(4 * width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(cin: int, cout: int, stride: int, blocks: int = 3) -> nn.Sequential:
        layers = [_BasicBlock(cin, cout, stride)]
        layers += [_BasicBlock(cout, cout, 1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def resnet20(num_classes: int = 10) -> ResNet20:
    """A CIFAR ResNet-20 (0.27 M parameters)."""
    return ResNet20(num_classes)


def cifar_resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 with the usual CIFAR stem (3×3 stride-1 conv, no max-pool)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model
