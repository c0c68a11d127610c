"""The accelerator branch of the value checks (issue 14): off the CPU, and while compiling, a check
hands its verdict to ``torch._assert_async`` instead of reading it on the host.

This machine has no accelerator, so the branch is taken two ways: on the CPU while
``torch.compiler.is_compiling()`` says yes (then the real ``torch._assert_async`` raises at once on a
false verdict, which shows the verdict is right), and on the ``meta`` device (no values; the
calls are recorded, which shows the branch runs and with which message). Removing the branch, or
handing it a verdict that is always true, fails these tests.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import ipt_compose._checks as checks
from ipt_compose import Compose, JointTarget, MixUp, Rotation


@pytest.fixture
def compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the CPU take the accelerator branch (the one compiled code takes)."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Tensor, str]]:
    """Record every verdict handed to ``torch._assert_async`` (and still hand it over)."""
    real = checks._assert_async
    assert real is not None
    calls: list[tuple[Tensor, str]] = []

    def recording(ok: Tensor, message: str) -> None:
        calls.append((ok, message))
        real(ok, message)

    monkeypatch.setattr(checks, "_assert_async", recording)
    return calls


@pytest.mark.usefixtures("compiling")
def test_branch_hands_the_verdict_to_assert_async(queued: list[tuple[Tensor, str]]) -> None:
    checks.check_values(torch.tensor([True, True]), "all fine")
    with pytest.raises(RuntimeError, match=r"^one is false$"):  # torch._assert_async's error, not ours
        checks.check_values(torch.tensor([True, False]), "one is false")
    assert [(bool(ok), message) for ok, message in queued] == [(True, "all fine"), (False, "one is false")]


@pytest.mark.usefixtures("compiling")
def test_range_check_verdict_on_the_branch() -> None:
    """``check_range``'s verdict: true inside the range, false outside it, per-column bounds too."""
    checks.check_range("states", torch.tensor([0, 3, 1]), 4)
    checks.check_range("indices", torch.tensor([[2, 0], [0, 3]]), torch.tensor([3, 4]))
    for bad in (torch.tensor([0, 4, 1]), torch.tensor([-1, 0, 0])):
        with pytest.raises(RuntimeError, match=r"^states must lie in \[0, 4\)"):
            checks.check_range("states", bad, 4)
    with pytest.raises(RuntimeError, match=r"^indices \(per factor\) must lie in"):
        checks.check_range("indices", torch.tensor([[2, 0], [3, 3]]), torch.tensor([3, 4]), "per factor")


@pytest.mark.usefixtures("compiling")
def test_public_checks_take_the_branch() -> None:
    """Labels, soft labels and states checked through the public entry points, on the branch."""
    with pytest.raises(RuntimeError, match=r"labels \(class index\) must lie in \[0, 3\)"):
        JointTarget.from_labels(torch.tensor([0, 3]), 3)
    with pytest.raises(RuntimeError, match="labels must hold probability rows"):
        JointTarget.from_labels(torch.tensor([[0.5, 0.6]]))
    with pytest.raises(RuntimeError, match="labels must hold probability rows"):
        JointTarget.from_labels(torch.tensor([[1.5, -0.5]]))
    with pytest.raises(RuntimeError, match=r"states \(rotation state\) must lie in \[0, 4\)"):
        Rotation().apply(torch.rand(2, 1, 3, 3), torch.tensor([0, 4]))
    # valid values pass the branch
    JointTarget.from_labels(torch.tensor([[0.25, 0.75]]))
    Rotation().apply(torch.rand(2, 1, 3, 3), torch.tensor([0, 3]))


def test_meta_device_queues_each_check_once(queued: list[tuple[Tensor, str]]) -> None:
    """On ``meta`` (an accelerator's path: no values on the host) each check of the user's input is
    queued, with its message, and nothing is read back."""
    labels = torch.empty(4, dtype=torch.long, device="meta")
    JointTarget.from_labels(labels, 10)
    assert [m for _, m in queued] == ["labels (class index) must lie in [0, 10), got values outside it"]
    queued.clear()
    soft = torch.empty(4, 10, device="meta")
    batch = Compose([MixUp(), Rotation()], num_classes=10)(torch.empty(4, 3, 8, 8, device="meta"), soft)
    expected = "labels must hold probability rows (non-negative, no NaN, summing to 1)"
    assert [m for _, m in queued] == [expected]
    assert all(ok.device.type == "meta" and ok.dtype == torch.bool and ok.ndim == 0 for ok, _ in queued)
    assert batch.inputs.device.type == "meta"


def test_cpu_values_raise_value_error_at_once() -> None:
    """Off the branch (the CPU, eager): the same checks raise ``ValueError`` naming the argument."""
    with pytest.raises(ValueError, match=r"^labels \(class index\) must lie in \[0, 3\)"):
        JointTarget.from_labels(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match=r"^one is false$"):
        checks.check_values(torch.tensor([True, False]), "one is false")
