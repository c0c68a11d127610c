"""The private torch APIs the library uses sit behind fallbacks that work without them:
``torch._assert_async`` (value checks) and ``torch._standard_gamma`` (Beta draws with a generator)."""

from __future__ import annotations

import pytest
import torch

import ipt_compose._checks as checks
import ipt_compose._random as random_draws
from ipt_compose import ChannelDrop, Compose, CutMix, JointModel, MixUp


@pytest.fixture
def without_assert_async(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_assert_async", None)


@pytest.fixture
def without_standard_gamma(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random_draws, "_standard_gamma", None)


@pytest.mark.usefixtures("without_assert_async")
def test_value_checks_still_raise_on_the_cpu() -> None:
    pretext = Compose([ChannelDrop(k=4)], num_classes=5)
    with pytest.raises(ValueError, match=r"labels \(class index\) must lie in \[0, 5\)"):
        pretext(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 9]))
    with pytest.raises(ValueError, match=r"labels rows must sum to 1"):
        pretext(torch.rand(4, 3, 8, 8), torch.full((4, 5), 0.3))
    model = JointModel(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 5)), pretext, 5)
    with pytest.raises(ValueError, match=r"states \(per pretext column\) must lie in \[0, "):
        model(torch.rand(4, 3, 8, 8), torch.tensor([[0], [1], [2], [4]]))
    batch = pretext(torch.rand(4, 3, 8, 8), torch.arange(4))
    assert model(batch.inputs, batch.states).shape == (4, 20)


@pytest.mark.usefixtures("without_assert_async")
def test_value_checks_off_the_cpu_do_not_read_values() -> None:
    """Without ``_assert_async`` an accelerator's checks are skipped rather than synced on."""
    pretext = Compose([ChannelDrop(k=4)], num_classes=5)
    labels = torch.empty(4, dtype=torch.long, device="meta")  # no values to read
    batch = pretext(torch.empty(4, 3, 8, 8, device="meta"), labels)
    assert batch.states.device.type == "meta"


@pytest.mark.usefixtures("without_standard_gamma")
@pytest.mark.parametrize("mixer", [MixUp(alpha=0.4), CutMix(alpha=0.4), MixUp(alpha=2.0, per_sample=True)])
def test_beta_draws_without_the_gamma_kernel(mixer: MixUp | CutMix) -> None:
    images = torch.rand(64, 3, 8, 8)
    labels = torch.arange(64) % 5
    first = mixer(images, labels, num_classes=5, generator=torch.Generator().manual_seed(1))
    again = mixer(images, labels, num_classes=5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(first[0], again[0])  # a generator still reproduces the draws
    torch.testing.assert_close(first[1].dense(), again[1].dense())


@pytest.mark.usefixtures("without_standard_gamma")
def test_beta_distribution_without_the_gamma_kernel() -> None:
    """Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1)): the fallback draws from it."""
    g = torch.Generator().manual_seed(0)
    for alpha in (0.4, 1.0, 3.0):
        draws = random_draws.draw_beta(alpha, (20000,), generator=g)
        assert draws.min() >= 0 and draws.max() <= 1
        assert abs(draws.mean().item() - 0.5) < 0.01
        assert abs(draws.var().item() - 1 / (4 * (2 * alpha + 1))) < 0.01
        host = [random_draws.draw_beta_on_host(alpha, g) for _ in range(400)]  # seeded: no flake
        assert abs(sum(host) / len(host) - 0.5) < 0.05
