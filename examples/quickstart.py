"""Quickstart: train a ResNet-18 with the internal pretext task (ChannelDrop) for a few steps.

Runs offline in seconds on a CPU: the data is scikit-learn's 8×8 digits, upscaled to 32×32×3.

    python examples/quickstart.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchvision.models import resnet18

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import batches, digits, normalize

from ipt_compose import ChannelDrop, Compose, JointModel, joint_cross_entropy


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    train, test = digits(size=32)
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.5)

    # 1. the pretext: drop one of 4 channel groups of the pooled features; joint label (class, group)
    pretext = Compose([ChannelDrop(k=4)], num_classes=10)
    # 2. the model: the classifier is widened to 10 classes × 4 states = 40 outputs
    model = JointModel(resnet18(num_classes=10), pretext, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)

    model.train()
    step, loss_value = 0, float("nan")
    g = torch.Generator().manual_seed(args.seed)
    while step < args.steps:
        for images, labels in batches(train, args.batch_size, shuffle=True, generator=g):
            batch = pretext(normalize(images, mean, std), labels)
            logits = model(batch.inputs, batch.states)  # (B, 40)
            loss = joint_cross_entropy(logits, batch.target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = loss.item()
            if step % 5 == 0 or step == 1:
                print(f"step {step:3d}  joint loss {loss_value:.3f}")
            if step >= args.steps:
                break

    # 3. inference: class scores averaged over the 4 channel-drop states (one backbone pass)
    model.eval()
    x = normalize(test.images[:200], mean, std)
    scores = model.predict(x)  # (200, 10)
    accuracy = (scores.argmax(1) == test.labels[:200]).float().mean().item()
    print(f"test accuracy after only {step} steps: {accuracy:.3f} on 200 held-out digits "
          "(examples/train.py trains to convergence)")
    return {"loss": loss_value, "accuracy": accuracy, "steps": float(step)}


if __name__ == "__main__":
    main()
