"""Determinism (generators, the global seed), pickling and deep copies, and DataLoader workers."""

from __future__ import annotations

import copy
import io
import multiprocessing
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset, default_collate, get_worker_info
from torchvision.transforms import v2

import ipt_compose
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
from tests._reliability import N, cnn, images, labels


# ------------------------------------------------------------------------------------ determinism
def _pretext_all_kinds() -> Compose:
    return Compose(
        [
            MixUp(),
            Rotation(),
            CutMix(per_sample=True),
            Cutout(identity=True),
            ChannelDrop(k=4, groups="random"),
        ],
        num_classes=N,
    )


def _same_batch(a: ipt_compose.PretextBatch, b: ipt_compose.PretextBatch) -> None:
    torch.testing.assert_close(a.inputs, b.inputs, rtol=0, atol=0)
    torch.testing.assert_close(a.states, b.states, rtol=0, atol=0)
    torch.testing.assert_close(a.target.dense(), b.target.dense(), rtol=0, atol=0)


def test_same_generator_seed_same_states_images_targets() -> None:
    pretext = _pretext_all_kinds()
    x, y = images(8), labels(8)
    first = pretext(x, y, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global RNG must not matter when a generator is given
    second = pretext(x, y, generator=torch.Generator().manual_seed(7))
    _same_batch(first, second)
    other = pretext(x, y, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(first.states, other.states)


def test_global_seed_reproduces_without_a_generator() -> None:
    pretext = Compose([v2.CutMix(num_classes=N), *_pretext_all_kinds().items], num_classes=N)
    x, y = images(8), labels(8)
    torch.manual_seed(3)
    first = pretext(x, y)
    torch.manual_seed(3)
    _same_batch(first, pretext(x, y))


def _roundtrips() -> dict[str, Callable[[Any], Any]]:
    def torch_save(obj: Any) -> Any:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=False)

    return {
        "pickle": lambda o: pickle.loads(pickle.dumps(o)),
        "deepcopy": copy.deepcopy,
        "torch.save": torch_save,
    }


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "torch.save"])
def test_pretexts_mixers_compose_pickle_and_deepcopy(how: str) -> None:
    roundtrip = _roundtrips()[how]
    x, y = images(6), labels(6)
    objects: list[Any] = [
        Rotation(),
        Cutout(grid=3, fill=0.5, identity=True, name="erase"),
        ChannelDrop(k=3, groups="random", seed=5),
        MixUp(alpha=0.4, per_sample=True),
        CutMix(alpha=2.0),
        _pretext_all_kinds(),
        Compose([v2.MixUp(num_classes=N), Rotation()], num_classes=N),
    ]
    for obj in objects:
        clone = roundtrip(obj)
        assert type(clone) is type(obj) and repr(clone) == repr(obj)
        if isinstance(obj, Compose):
            torch.manual_seed(0)  # for torchvision's mixers
            a = obj(x, y, generator=torch.Generator().manual_seed(1))
            torch.manual_seed(0)
            _same_batch(a, clone(x, y, generator=torch.Generator().manual_seed(1)))
        elif isinstance(obj, (MixUp, CutMix)):
            a_img, a_t = obj(x, y, num_classes=N, generator=torch.Generator().manual_seed(1))
            b_img, b_t = clone(x, y, num_classes=N, generator=torch.Generator().manual_seed(1))
            torch.testing.assert_close(a_img, b_img, rtol=0, atol=0)
            torch.testing.assert_close(a_t.dense(), b_t.dense(), rtol=0, atol=0)
        else:
            s = obj.sample_states(6, generator=torch.Generator().manual_seed(1))
            features = x if obj.site == "input" else torch.rand(6, 7)
            torch.testing.assert_close(obj.apply(features, s), clone.apply(features, s), rtol=0, atol=0)


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "torch.save"])
def test_joint_model_pickles_and_deepcopies(how: str) -> None:
    """Hooks at the classifier and at a named site survive, and point at the copy, not the original."""
    pretext = Compose(
        [Rotation(), ChannelDrop(k=2, at="0"), ChannelDrop(k=4, name="head_drop")], num_classes=N
    )
    original = JointModel(cnn(), pretext, num_classes=N)
    clone = _roundtrips()[how](original)
    batch = pretext(images(4), labels(4), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(clone(batch.inputs, batch.states), original(batch.inputs, batch.states))
    torch.testing.assert_close(clone.predict(batch.inputs), original.predict(batch.inputs))
    # the clone's hooks act on the clone: a feature pretext that reads the clone's context runs
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(1.0)
    assert not torch.allclose(clone(batch.inputs, batch.states), original(batch.inputs, batch.states))


class PretextCollate:
    """collate_fn that runs the input-site work in the DataLoader worker.

    Each worker draws its states from its own generator, seeded from the worker's seed (which the
    DataLoader derives from its own generator), so workers do not repeat each other's draws and a
    seeded DataLoader reproduces the run.
    """

    def __init__(self, pretext: Compose) -> None:
        self.pretext = pretext
        self.generator: torch.Generator | None = None

    def __call__(self, samples: list[tuple[Tensor, Tensor]]) -> ipt_compose.PretextBatch:
        images_, labels_ = default_collate(samples)
        info = get_worker_info()
        if self.generator is None and info is not None:
            self.generator = torch.Generator().manual_seed(info.seed)
        return self.pretext(images_.float() / 255, labels_, generator=self.generator)


def _loader(pretext: Compose, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randint(0, 256, (24, 3, 8, 8), generator=g, dtype=torch.uint8),
        torch.randint(0, N, (24,), generator=g),
    )
    context = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    return DataLoader(
        data,
        batch_size=4,
        shuffle=True,
        num_workers=2,
        collate_fn=PretextCollate(pretext),
        multiprocessing_context=context,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


@pytest.mark.slow
def test_dataloader_workers_run_input_pretexts_and_states_reach_the_model() -> None:
    pretext = Compose([CutMix(), Rotation(), ChannelDrop(k=4)], num_classes=N)
    net = JointModel(cnn(), pretext, num_classes=N)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    runs = []
    for _ in range(2):
        seen = []
        for batch in _loader(pretext, seed=11):
            assert isinstance(batch, ipt_compose.PretextBatch)
            assert batch.inputs.shape == (4, 3, 8, 8) and batch.states.shape == (4, 2)
            logits = net(batch.inputs, batch.states)  # main process: the feature pretext runs here
            loss = joint_cross_entropy(logits, batch.target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert torch.isfinite(loss)
            seen.append(batch.states)
        runs.append(torch.cat(seen))
    assert runs[0].shape == (24, 2)
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)  # a seeded DataLoader reproduces
    # the two workers draw differently (batches 0, 2, 4 come from worker 0; 1, 3, 5 from worker 1)
    assert not torch.equal(runs[0][0:4], runs[0][4:8]) or not torch.equal(runs[0][8:12], runs[0][12:16])
