"""``torch.compile``: a compiled step matches eager, and a training step and ``predict`` trace
without graph breaks."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from ipt_compose import (
    ChannelDrop,
    Compose,
    CutMix,
    Cutout,
    JointModel,
    JointTarget,
    MixUp,
    RegionDrop,
    Rotation,
    joint_cross_entropy,
)
from tests._reliability import N, cnn, images, labels, model


# ------------------------------------------------------------------------------------ compile
def _training_step(net: JointModel) -> Callable[[Tensor, Tensor, JointTarget], Tensor]:
    def step(x: Tensor, s: Tensor, t: JointTarget) -> Tensor:
        return joint_cross_entropy(net(x, s), t, label_smoothing=0.1)

    return step


@pytest.mark.slow
def test_compiled_training_step_matches_eager() -> None:
    torch.manual_seed(0)
    pretext = Compose([Rotation(), ChannelDrop(k=4)], num_classes=N)
    net = JointModel(cnn(), pretext, num_classes=N)
    batch = pretext(images(8), labels(8), generator=torch.Generator().manual_seed(0))
    step = _training_step(net)
    eager = step(*batch)
    eager.backward()
    eager_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(step)(*batch)
    compiled.backward()
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    for p, g in zip(net.parameters(), eager_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)


GRAPH_CASES = {
    "ChannelDrop at the head": [ChannelDrop(k=4)],
    "MixUp, Rotation, ChannelDrop at a site and at the head": [
        MixUp(),
        Rotation(),
        ChannelDrop(k=2, at="0"),
        ChannelDrop(k=4, rescale=True, name="d2"),
    ],
    "CutMix, Cutout, RegionDrop, ChannelDrop": [
        CutMix(),  # one box for the batch: its host fast path must step aside while compiling
        Cutout(identity=True),
        RegionDrop(at="0"),
        ChannelDrop(k=4),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sample", "all"])
@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
def test_training_step_has_no_graph_breaks(case: str, mode: str) -> None:
    """Compose + JointModel + joint_cross_entropy trace into one graph (fullgraph=True)."""
    items = [copy.deepcopy(i) for i in GRAPH_CASES[case]]
    if mode == "all":
        items = [i for i in items if not isinstance(i, (MixUp, CutMix))]
    pretext = Compose(items, num_classes=N, mode=mode)
    net = JointModel(cnn(), pretext, num_classes=N)

    def step(x: Tensor, y: Tensor) -> Tensor:
        batch = pretext(x, y)
        return joint_cross_entropy(net(batch.inputs, batch.states), batch.target)

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(step)(images(4), labels(4))
    assert explanation.graph_break_count == 0, [r.reason for r in explanation.break_reasons]


@pytest.mark.slow
def test_predict_has_no_graph_breaks() -> None:
    net = model([Rotation(), ChannelDrop(k=4)])
    for aggregate in ("features", "all"):
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(lambda x, a=aggregate: net.predict(x, aggregate=a))(images(4))
        assert explanation.graph_break_count == 0, [r.reason for r in explanation.break_reasons]
