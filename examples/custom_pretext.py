"""Write your own pretext: ColorPermutation, six states that reorder the RGB channels.

A pretext needs a name, a number of states, a site and a vectorised ``transform(x, states)``
that transforms row ``i`` by its own state ``states[i]``. The base class validates the states
(``apply``), draws them (``sample_states``) and enumerates them (``all_states``), so this is all
there is to it.

Run it (a few seconds on a CPU): ``python examples/custom_pretext.py``
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from ipt_compose import ChannelDrop, Compose, JointModel, Pretext, joint_cross_entropy


class ColorPermutation(Pretext):
    """Reorder the three colour channels; state ``s`` is the ``s``-th permutation of ``(0, 1, 2)``.

    States follow ``itertools.permutations(range(3))``: state 0 is ``(0, 1, 2)``, the identity,
    and state 5 is ``(2, 1, 0)``, RGB → BGR. Output channel ``c`` of a row in state ``s`` is input
    channel ``PERMUTATIONS[s][c]``.

    Args:
        name: the factor's name in the joint label space.

    Shape:
        - x: :math:`(B, 3, H, W)`
        - states: :math:`(B)`, in ``[0, 6)``
        - output: :math:`(B, 3, H, W)`

    Example:
        >>> x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
        >>> ColorPermutation()(x, torch.tensor([5])).flatten().tolist()
        [3.0, 2.0, 1.0]
    """

    site = "input"  # acts on the images, before the model
    PERMUTATIONS = tuple(itertools.permutations(range(3)))

    def __init__(self, *, name: str = "color_permutation") -> None:
        super().__init__(name, num_states=len(self.PERMUTATIONS), identity_state=0)

    def transform(self, x: Tensor, states: Tensor) -> Tensor:
        # states is (B,), long, in [0, 6) and on x's device: apply() checked it, or the library drew it.
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"ColorPermutation expects RGB images (B, 3, H, W), got {tuple(x.shape)}")
        table = torch.tensor(self.PERMUTATIONS, device=x.device)  # (6, 3)
        index = table.index_select(0, states).view(-1, 3, 1, 1).expand_as(x)  # (B, 3, H, W): source channel
        return x.gather(1, index)  # every row by its own permutation, in one call


def tiny_backbone(num_classes: int) -> nn.Module:
    """A small CNN whose last ``nn.Linear`` is the classifier that ``JointModel`` widens."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def main(steps: int = 20, seed: int = 0) -> float:
    """Train a tiny model for a few steps on random images; return the last loss."""
    torch.manual_seed(seed)
    num_classes = 10
    pretext = Compose([ColorPermutation(), ChannelDrop(k=4)], num_classes=num_classes)
    print(pretext.space())  # LabelSpace(class=10, color_permutation=6, channel_drop=4)
    model = JointModel(tiny_backbone(num_classes), pretext, num_classes=num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.rand(32, 3, 16, 16)
    labels = torch.randint(num_classes, (32,))
    generator = torch.Generator().manual_seed(seed)
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        batch = pretext(images, labels, generator=generator)
        logits = model(batch.inputs, batch.states)  # (32, 10 * 6 * 4)
        loss = joint_cross_entropy(logits, batch.target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 5 == 0 or step == steps - 1:
            print(f"step {step:2d}  loss {loss.item():.3f}")
    model.eval()  # BatchNorm-free here, but predict belongs in eval mode
    scores = model(images)  # = model.predict(images): colours as they are, averaged over ChannelDrop
    accuracy = (scores.argmax(dim=1) == labels).float().mean().item()
    print(f"train accuracy after {steps} steps: {accuracy:.2f}")
    return float(loss.item())


if __name__ == "__main__":
    main()
