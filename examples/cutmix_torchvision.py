"""torchvision's CutMix stacked with the internal pretext task and rotation, on joint labels.

``v2.CutMix`` turns hard labels into soft ``(B, N)`` ones. ``Compose`` takes them as they are and
lifts each row onto the joint space ``class × channel_drop(4) × rotation(4)``: the mixed class
label times the one channel group dropped and the one rotation applied to that image. The loss is
the cross-entropy over the ``16 N`` joint classes, computed without building them.

    python examples/cutmix_torchvision.py                      # offline: scikit-learn digits
    python examples/cutmix_torchvision.py --data path/to/cifar10 --limit 2000

``--data`` takes any ImageFolder tree: ``root/<class>/<image>``, or ``root/train`` and ``root/test``
(for example CIFAR-10 saved as image files).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import batches, normalize
from _mix_common import accuracy, load_data, parser, small_cnn, standardise

from ipt_compose import ChannelDrop, Compose, JointModel, Rotation, joint_cross_entropy


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Train, print the loss per epoch and the test accuracy, return them."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train, test = load_data(args)
    mean, std = (t.to(device) for t in standardise(train))
    n = train.num_classes

    cutmix = v2.CutMix(num_classes=n)  # λ weights the own label: λ = 1 - box area / image area
    pretext = Compose([ChannelDrop(k=4), Rotation()], num_classes=n)  # n × 4 × 4 joint classes
    model = JointModel(small_cnn(n), pretext, num_classes=n).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)

    g = torch.Generator().manual_seed(args.seed)
    losses: list[float] = []
    for epoch in range(1, args.epochs + 1):
        total, count = 0.0, 0
        for images, labels in batches(train, args.batch_size, shuffle=True, generator=g):
            images, labels = normalize(images.to(device), mean, std), labels.to(device)
            images, soft = cutmix(images, labels)  # (B, 3, H, W), (B, n) soft labels
            batch = pretext(images, soft)  # rotates the images, draws the dropped groups
            logits = model(batch.inputs, batch.states)  # (B, 16 n)
            loss = joint_cross_entropy(logits, batch.target)
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
