"""A compiled training step in ``mode="reduce-overhead"`` (CUDA graphs on a GPU; on the CPU, inductor
without them) runs the library and matches eager, values and gradients."""

from __future__ import annotations

import pytest
import torch

from ipt_compose import ChannelDrop, Compose, CutMix, JointModel, joint_cross_entropy
from tests._reliability import N, cnn, images, labels


@pytest.mark.slow
def test_reduce_overhead_training_step_matches_eager() -> None:
    import torch._inductor.config as inductor

    # compiled draws equal to eager ones; inductor's own patch, not monkeypatch: monkeypatch's undo
    # deletes the option from torch's config module, and every later compile fails
    with inductor.patch(fallback_random=True):
        _reduce_overhead_training_step_matches_eager()


def _reduce_overhead_training_step_matches_eager() -> None:
    torch.manual_seed(0)
    pretext = Compose([CutMix(), ChannelDrop(k=4)], num_classes=N)
    net = JointModel(cnn(), pretext, num_classes=N)
    x, y = images(8), labels(8)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        batch = pretext(x, y)  # the global RNG, seeded below for both runs
        return joint_cross_entropy(net(batch.inputs, batch.states), batch.target)

    torch.manual_seed(1)
    eager = loss_of(x, y)
    eager.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(loss_of, mode="reduce-overhead")
    torch.manual_seed(1)
    loss = compiled(x, y)
    loss.backward()
    torch.testing.assert_close(loss, eager, rtol=1e-5, atol=1e-5)
    for p, g in zip(net.parameters(), grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)
