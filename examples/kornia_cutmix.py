"""kornia's CutMix (two rounds per batch) stacked with the internal pretext task, on one device.

kornia's ``RandomCutMixV2`` returns ``(num_mix, B, 3)`` label triples ``(y_i, y_π(i), λ)``.
``from_kornia`` turns them into a sparse joint target (the own class and one partner per round),
``Compose`` lifts it onto ``class × channel_drop(4) × rotation(4)``, and everything (data, mixing,
targets, model) stays on the input's device.

    python examples/kornia_cutmix.py                      # offline: scikit-learn digits
    python examples/kornia_cutmix.py --data path/to/cifar10 --limit 2000 --device cuda

``--data`` takes any ImageFolder tree: ``root/<class>/<image>``, or ``root/train`` and ``root/test``
(for example CIFAR-10 saved as image files).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from kornia.augmentation import RandomCutMixV2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import normalize
from _mix_common import accuracy, load_data, parser, small_cnn, standardise

from ipt_compose import (
    ChannelDrop,
    Compose,
    JointModel,
    Rotation,
    from_kornia,
    joint_cross_entropy,
)


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Train, print the loss per epoch and the test accuracy, return them."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--num-mix", type=int, default=2, help="CutMix rounds per batch")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train, test = load_data(args)
    mean, std = (t.to(device) for t in standardise(train))
    n = train.num_classes
    images_all, labels_all = train.images.to(device), train.labels.to(device)  # all on device

    # use_correct_lambda=True: λ = 1 - cut area / image area weights the own label ("own")
    cutmix = RandomCutMixV2(num_mix=args.num_mix, data_keys=["input", "class"], use_correct_lambda=True)
    pretext = Compose([ChannelDrop(k=4), Rotation()], num_classes=n)
    model = JointModel(small_cnn(n), pretext, num_classes=n).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)

    losses: list[float] = []
    for epoch in range(1, args.epochs + 1):
        total, count = 0.0, 0
        order = torch.randperm(len(labels_all), device=device)
        for idx in order.split(args.batch_size):
            images = normalize(images_all[idx], mean, std)
            images, triples = cutmix(images, labels_all[idx])  # triples: (num_mix, B, 3)
            target = from_kornia(triples, n, lambda_weights="own")  # (B, 1 + num_mix) sparse
            batch = pretext(images, target)
            logits = model(batch.inputs, batch.states)  # (B, 16 n)
            loss = joint_cross_entropy(logits, batch.target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        losses.append(total / max(count, 1))
        print(f"epoch {epoch}  joint loss {losses[-1]:.4f}")
    acc = accuracy(model, test, mean, std, device)
    print(f"test accuracy {acc:.3f} ({len(test)} images)")
    return {"losses": losses, "accuracy": acc}


if __name__ == "__main__":
    main()
