"""timm's Mixup/CutMix (label-smoothed soft targets) stacked with the internal pretext task.

timm's ``Mixup`` returns soft ``(B, N)`` targets that already carry label smoothing. ``Compose``
lifts them onto ``class × channel_drop(4) × rotation(4)`` exactly: the class marginal of every
joint target is timm's target. Keep the smoothing in one place: here timm's, so the loss adds none.

    python examples/timm_mixup.py                      # offline: scikit-learn digits
    python examples/timm_mixup.py --data path/to/cifar10 --limit 2000

``--data`` takes any ImageFolder tree: ``root/<class>/<image>``, or ``root/train`` and ``root/test``
(for example CIFAR-10 saved as image files).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from timm.data import Mixup

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import batches, normalize
from _mix_common import accuracy, load_data, parser, small_cnn, standardise

from ipt_compose import ChannelDrop, Compose, JointModel, Rotation, joint_cross_entropy


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Train, print the loss per epoch and the test accuracy, return them."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--smoothing", type=float, default=0.1, help="timm's label_smoothing")
    args = p.parse_args(argv)
    if args.batch_size % 2:
        p.error("timm's Mixup needs an even --batch-size")
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # timm draws λ and the box from NumPy's global RNG
    device = torch.device(args.device)
    train, test = load_data(args)
    mean, std = (t.to(device) for t in standardise(train))
    n = train.num_classes

    mixup = Mixup(
        mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=args.smoothing, num_classes=n
    )  # switches between MixUp and CutMix per batch; λ weights the own label
    pretext = Compose([ChannelDrop(k=4), Rotation()], num_classes=n)
    model = JointModel(small_cnn(n), pretext, num_classes=n).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)

    g = torch.Generator().manual_seed(args.seed)
    losses: list[float] = []
    for epoch in range(1, args.epochs + 1):
        total, count = 0.0, 0
        for images, labels in batches(train, args.batch_size, shuffle=True, generator=g, drop_last=True):
            if len(labels) % 2:  # a set smaller than one batch: timm needs an even count
                images, labels = images[:-1], labels[:-1]
            images, labels = normalize(images.to(device), mean, std), labels.to(device)
            images, soft = mixup(images, labels)  # (B, 3, H, W), (B, n) smoothed soft targets
            batch = pretext(images, soft)
            logits = model(batch.inputs, batch.states)  # (B, 16 n)
            loss = joint_cross_entropy(logits, batch.target)  # smoothing is already in `soft`
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(labels), count + len(labels)
        losses.append(total / max(count, 1))
        print(f"epoch {epoch}  joint loss {losses[-1]:.4f}")
    acc = accuracy(model, test, mean, std, device)
    print(f"test accuracy {acc:.3f} ({len(test)} images)")
    return {"losses": losses, "accuracy": acc}


if __name__ == "__main__":
    main()
