"""No host sync in a training step: what a GPU would stall on is checked on the ``meta`` device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from ipt_compose import (
    ChannelDrop,
    Compose,
    CutMix,
    Cutout,
    JointModel,
    MixUp,
    Rotation,
    joint_cross_entropy,
)
from tests._reliability import N, cnn

# ------------------------------------------------------------------------------------ host syncs
_SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")


@pytest.mark.parametrize("mode", ["sample", "all"])
def test_training_step_makes_no_host_sync(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """One step (Compose + JointModel + joint_cross_entropy + backward) reads no tensor value on the host.

    The honest way to check this without a GPU is the ``meta`` device: meta tensors have shapes and
    dtypes but no values, so any data-dependent host read (``.item()``, ``.tolist()``, ``bool(t)``,
    ``.cpu()``) cannot succeed there. On top of that, the ``Tensor`` methods that read values are
    patched to raise. The library's value checks run their own off-CPU branch unchanged (they queue
    ``torch._assert_async``, as on a GPU); the test records those calls and asserts that the checks
    of the user's labels ran. Shape logic (Python ints from ``.shape``) is allowed: it is not a
    sync.
    """
    import ipt_compose._checks as checks

    real = checks._assert_async
    assert real is not None
    queued: list[str] = []

    def recording(ok: Tensor, message: str) -> None:
        queued.append(message)
        real(ok, message)

    monkeypatch.setattr(checks, "_assert_async", recording)
    items: list[Any] = [
        Rotation(),
        Cutout(identity=True),
        ChannelDrop(k=2, at="0"),
        ChannelDrop(k=4, rescale=True, name="head"),
    ]
    if mode == "sample":
        items = [MixUp(per_sample=True), *items[:1], CutMix(), *items[1:]]
    pretext = Compose(items, num_classes=N, mode=mode)
    net = JointModel(cnn(), pretext, num_classes=N).to("meta")
    x = torch.empty(4, 3, 8, 8, device="meta")
    y = torch.empty(4, dtype=torch.long, device="meta")
    soft_y = torch.empty(4, N, device="meta")

    def no_sync(name: str) -> Callable[..., object]:
        original = getattr(torch.Tensor, name)

        def read(self: Tensor, *args: object, **kwargs: object) -> object:
            # a CPU tensor's values are on the host already (one λ or box per batch is drawn there,
            # as torchvision does): reading them syncs nothing; a device tensor's would
            if self.device.type != "cpu":
                raise AssertionError(f"host sync in the training step: Tensor.{name} on {self.device}")
            return original(self, *args, **kwargs)

        return read

    with monkeypatch.context() as patch:
        for name in _SYNCS:
            patch.setattr(torch.Tensor, name, no_sync(name))
        for labels_ in (y, soft_y):
            batch = pretext(x, labels_)
            logits = net(batch.inputs, batch.states)
            loss = joint_cross_entropy(logits, batch.target, label_smoothing=0.1)
            loss.backward()
            assert loss.device.type == "meta"
            assert logits.shape == (batch.states.shape[0], N * pretext.num_states)
    assert any("labels" in m for m in queued), queued
