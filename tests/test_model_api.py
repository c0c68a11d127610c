"""JointModel in the scripts people run: forward without states, class_logits, to_plain, the head it
widens, capabilities a user's own pretexts declare, and what the model trusts."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from torchvision.models import resnet18

import ipt_compose._checks as checks
from ipt_compose import (
    ChannelDrop,
    Compose,
    Cutout,
    JointModel,
    Pretext,
    RegionDrop,
    Rotation,
    joint_cross_entropy,
    self_distillation_loss,
)

N = 5


def cnn(classes: int = N) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes)
    )


def images(batch: int = 4, side: int = 8, seed: int = 0) -> Tensor:
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


def trained(model: JointModel) -> JointModel:
    """Break the copies' symmetry, so that the state blocks differ."""
    with torch.no_grad():
        model.head.weight.add_(0.3 * torch.randn_like(model.head.weight))
        model.head.bias.add_(0.1 * torch.randn_like(model.head.bias))
    return model


# ---------------------------------------------------------------------------------- forward(x)
def test_forward_without_states_in_eval_is_predict() -> None:
    model = trained(JointModel(cnn(), [ChannelDrop(k=4), Rotation()], N)).eval()
    x = images()
    torch.testing.assert_close(model(x), model.predict(x))
    assert model(x).shape == (4, N)


def test_forward_without_states_in_training_names_states() -> None:
    model = JointModel(cnn(), [ChannelDrop(k=4)], N).train()
    with pytest.raises(ValueError, match=r"states.*training mode.*model\.eval\(\)"):
        model(images())


def test_averaged_model_evaluates_like_the_model() -> None:
    model = trained(JointModel(cnn(), [ChannelDrop(k=4)], N))
    ema = AveragedModel(model)
    ema.eval()
    model.eval()
    torch.testing.assert_close(ema(images()), model(images()))


def test_predict_follows_the_weights_after_an_update() -> None:
    """The averaged classifier is cached per version of the head's weights."""
    model = JointModel(cnn(), [ChannelDrop(k=4)], N).eval()
    before = model(images())
    with torch.no_grad():
        model.head.weight[::4].add_(1.0)  # the blocks of state 0 only
    after = model(images())
    assert not torch.allclose(before, after)
    fresh = copy.deepcopy(model)
    torch.testing.assert_close(after, fresh.predict(images()))


# ---------------------------------------------------------------------------------- class_logits
def test_class_logits_is_the_log_class_marginal() -> None:
    model = JointModel(cnn(), [ChannelDrop(k=2), Rotation()], N)
    logits = torch.randn(6, N * 8, generator=torch.Generator().manual_seed(1))
    got = model.class_logits(logits)
    expected = logits.softmax(dim=1).view(6, N, 8).sum(dim=2).log()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.logsumexp(dim=1), torch.zeros(6))
    with pytest.raises(ValueError, match=r"joint_logits must have shape \(B, 40\)"):
        model.class_logits(torch.zeros(6, N))


# ---------------------------------------------------------------------------------- to_plain
PLAIN_RECIPES = {
    "channel_drop": (lambda: [ChannelDrop(k=4)], "features"),
    "rescale_identity": (lambda: [ChannelDrop(k=3, rescale=True, identity=True)], "features"),
    "drops_and_rotation": (lambda: [ChannelDrop(k=2), Rotation(), ChannelDrop(k=4, name="b")], "features"),
    "state_zero": (lambda: [ChannelDrop(k=4, groups="interleaved")], "none"),
}


@pytest.mark.parametrize("recipe", sorted(PLAIN_RECIPES))
def test_to_plain_equals_predict_and_loads_into_a_fresh_backbone(recipe: str) -> None:
    make, aggregate = PLAIN_RECIPES[recipe]
    model = trained(JointModel(cnn(), make(), N)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = model.to_plain(aggregate)  # type: ignore[arg-type]
    assert type(plain) is nn.Sequential and plain[-1].out_features == N
    x = images(6)
    torch.testing.assert_close(plain(x), model.predict(x, aggregate=aggregate), atol=1e-6, rtol=1e-5)
    fresh = cnn()
    fresh.load_state_dict(plain.state_dict(), strict=True)
    torch.testing.assert_close(fresh.eval()(x), plain(x))
    for key, value in model.state_dict().items():  # the joint model is untouched
        torch.testing.assert_close(value, before[key])
    assert model.head.out_features == N * model.pretext.num_states


def test_to_plain_of_a_torchvision_resnet() -> None:
    torch.manual_seed(0)
    model = trained(JointModel(resnet18(num_classes=10), [ChannelDrop(k=4)], 10)).eval()
    plain = model.to_plain()
    assert type(plain) is type(resnet18())
    fresh = resnet18(num_classes=10)
    fresh.load_state_dict(plain.state_dict(), strict=True)
    x = images(2, side=32)
    torch.testing.assert_close(fresh.eval()(x), model.predict(x), atol=1e-5, rtol=1e-4)


def test_to_plain_distilled_is_the_plain_head() -> None:
    model = JointModel(cnn(), [ChannelDrop(k=4)], N, distill=True).eval()
    with torch.no_grad():
        model.plain_head.weight.add_(1.0)
    plain = model.to_plain("distilled")
    torch.testing.assert_close(plain(images()), model.predict(images(), aggregate="distilled"))


@pytest.mark.parametrize(
    ("pretexts", "aggregate", "match"),
    [
        ([ChannelDrop(k=2, at="0")], "features", r"act inside the network.*predict"),
        ([RegionDrop(at="0")], "features", r"act inside the network"),
        ([Cutout(grid=2)], "none", r"input pretext 'cutout'.*identity=True"),
        ([ChannelDrop(k=4), Cutout(grid=2)], "features", r"input pretext 'cutout'.*identity=True"),
        ([ChannelDrop(k=4)], "distilled", r"distill=True"),
        ([ChannelDrop(k=4)], "marginal", r"aggregate must be"),
    ],
)
def test_to_plain_says_why_one_classifier_cannot(pretexts: list[Pretext], aggregate: str, match: str) -> None:
    model = JointModel(cnn(), pretexts, N)
    with pytest.raises(ValueError, match=match):
        model.to_plain(aggregate)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- the head
class UnusedLinearAfterTheClassifier(nn.Module):
    """The classifier ``fc`` runs last, but a ``Linear`` with as many outputs is defined after it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, N)
        self.spare = nn.Linear(8, N)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


class ProjectionDefinedLast(nn.Module):
    """The last-defined ``Linear`` is a projection (other width) that runs first."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, N)
        self.proj = nn.Linear(3 * 8 * 8, 16)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.proj(x.flatten(1)))


def test_head_never_run_names_the_linear_that_ran() -> None:
    model = JointModel(UnusedLinearAfterTheClassifier(), [ChannelDrop(k=2)], N)
    assert model.head_name == "spare"
    batch = model.pretext(images(), torch.arange(4) % N)
    with pytest.raises(ValueError, match=r"'spare'.*never ran.*head='fc'"):
        model(batch.inputs, batch.states)
    fixed = JointModel(UnusedLinearAfterTheClassifier(), [ChannelDrop(k=2)], N, head="fc")
    assert fixed(batch.inputs, batch.states).shape == (4, 2 * N)


def test_head_is_the_linear_with_num_classes_outputs() -> None:
    model = JointModel(ProjectionDefinedLast(), [ChannelDrop(k=2)], N)
    assert model.head_name == "fc"
    batch = model.pretext(images(), torch.arange(4) % N)
    assert model(batch.inputs, batch.states).shape == (4, 2 * N)


# ---------------------------------------------------------------------------------- distillation
def test_empty_batch_with_distillation() -> None:
    pretext = Compose([ChannelDrop(k=4)], num_classes=N)
    model = JointModel(cnn(), pretext, N, distill=True)
    for mode in ("sample", "all"):
        pretext.mode = mode  # type: ignore[assignment]
        batch = pretext(images(0), torch.zeros(0, dtype=torch.long))
        out = model(batch.inputs, batch.states, return_plain=True)
        assert out.joint.shape == (0, 4 * N) and out.plain.shape == out.teacher.shape == (0, N)
        loss = joint_cross_entropy(out.joint, batch.target, reduction="sum")
        loss = loss + self_distillation_loss(out.plain, out.teacher, batch.target, reduction="sum")
        assert float(loss.detach()) == 0.0


def test_teacher_is_the_average_over_feature_states_at_each_rows_input_state() -> None:
    pretext = Compose([Rotation(), ChannelDrop(k=2)], num_classes=N)
    model = trained(JointModel(cnn(), pretext, N, distill=True))
    batch = pretext(images(6), torch.arange(6) % N, generator=torch.Generator().manual_seed(3))
    teacher = model(batch.inputs, batch.states, return_plain=True).teacher
    for row in range(6):
        rotation = int(batch.states[row, 0])
        logits = []
        for drop in range(2):
            states = torch.tensor([[rotation, drop]])
            z = model(batch.inputs[row : row + 1], states)
            logits.append(model.space.select(z, states))
        torch.testing.assert_close(teacher[row], torch.stack(logits).mean(dim=0)[0], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------- capabilities
class ScaleChannels(Pretext):
    """A user's feature pretext: multiplies every channel by a per-state factor (a mask of sorts)."""

    site = "feature"

    def __init__(self) -> None:
        super().__init__("scale", 3, identity_state=0)

    def channel_scale(
        self, num_channels: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        steps = torch.tensor([1.0, 0.5, 2.0], device=device, dtype=dtype or torch.float32)
        return steps.view(3, 1).expand(3, num_channels)

    def transform(self, x: Tensor, states: Tensor) -> Tensor:
        table = self.channel_scale(x.shape[1], device=x.device, dtype=x.dtype)
        return x * table.index_select(0, states).view(*x.shape[:2], *([1] * (x.ndim - 2)))


class Legacy(Pretext):
    """A pretext written for 0.1, which named the hook ``_apply_states``."""

    site = "input"

    def __init__(self) -> None:
        super().__init__("legacy", 2, identity_state=0)

    def _apply_states(self, x: Tensor, states: Tensor) -> Tensor:
        return x * (1 - states).view(-1, 1, 1, 1).to(x.dtype)


def test_a_users_channel_scale_gets_the_one_matmul_aggregate_and_distillation() -> None:
    model = trained(JointModel(cnn(), [ScaleChannels()], N, distill=True)).eval()
    x = images()
    expected = torch.stack(
        [model.space.select(model(x, torch.full((4, 1), s)), [s]) for s in range(3)]
    ).mean(dim=0)
    torch.testing.assert_close(model.predict(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.to_plain()(x), expected, atol=1e-5, rtol=1e-5)


def test_a_pretext_written_for_0_1_still_runs() -> None:
    pretext = Compose([Legacy(), ChannelDrop(k=2)], num_classes=N)
    batch = pretext(images(), torch.arange(4) % N)
    assert torch.equal(Legacy().apply(images(), torch.ones(4, dtype=torch.long)), torch.zeros(4, 3, 8, 8))
    assert batch.inputs.shape == (4, 3, 8, 8)


# ---------------------------------------------------------------------------------- trust
def _count_state_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the names the model's range checks are called with."""
    import ipt_compose.model as model_module

    names: list[str] = []
    real = model_module.check_range

    def recording(name: str, *args: object, **kwargs: object) -> None:
        names.append(name)
        real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(model_module, "check_range", recording)
    return names


def test_states_compose_drew_are_not_checked_again_but_copies_and_edits_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretext = Compose([ChannelDrop(k=4)], num_classes=N)
    model = JointModel(cnn(), pretext, N)
    batch = pretext(images(), torch.arange(4) % N)
    messages = _count_state_checks(monkeypatch)
    model(batch.inputs, batch.states)
    assert not [m for m in messages if m.startswith("states")]
    model(batch.inputs, batch.states.clone())  # a copy is checked
    assert [m for m in messages if m.startswith("states")]
    batch.states[0, 0] = 7  # an edit in place is checked too
    with pytest.raises(ValueError, match=r"states \(per pretext column\) must lie in \[0, "):
        model(batch.inputs, batch.states)


def test_checks_without_torch_assert_async(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback for a torch without the private ``_assert_async``: CPU values still raise."""
    monkeypatch.setattr(checks, "_assert_async", None)
    pretext = Compose([ChannelDrop(k=4)], num_classes=N)
    with pytest.raises(ValueError, match=r"labels \(class index\) must lie in \[0, 5\)"):
        pretext(images(), torch.tensor([0, 1, 2, 9]))
    batch = pretext(images(), torch.arange(4) % N)
    assert batch.target.hard_labels is not None


# ---------------------------------------------------------------------------------- the loss
def test_loss_names_a_device_mismatch() -> None:
    target = Compose([ChannelDrop(k=2)], num_classes=N)(images(), torch.arange(4) % N).target
    with pytest.raises(ValueError, match=r"same device.*meta.*cpu"):
        joint_cross_entropy(torch.zeros(4, 2 * N, device="meta"), target)


@pytest.mark.parametrize("mixed", [False, True])
def test_losses_compute_in_float32_under_autocast(mixed: bool) -> None:
    pretext = Compose([ChannelDrop(k=2)], num_classes=N)
    labels = torch.arange(4) % N
    target = pretext(images(), labels).target
    if mixed:
        target = target.mix(1, 0.7)
    logits = torch.randn(4, 2 * N, generator=torch.Generator().manual_seed(0)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = joint_cross_entropy(logits, target, label_smoothing=0.1)
        reference = F.cross_entropy(logits, target.dense().bfloat16(), label_smoothing=0.1)
        distill = self_distillation_loss(logits[:, :N], logits[:, N:], target)
    assert loss.dtype == reference.dtype == distill.dtype == torch.float32
    torch.testing.assert_close(loss, reference, atol=1e-2, rtol=1e-2)
    expected = F.cross_entropy(logits.float(), target.dense(), label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)


# ---------------------------------------------------------------------------------- after the head
class Scaled(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(dim=1) * 3


def test_distillation_refuses_a_backbone_that_changes_the_classifiers_output() -> None:
    backbone = nn.Sequential(*cnn(), Scaled())
    pretext = Compose([ChannelDrop(k=4)], num_classes=N)
    model = JointModel(backbone, pretext, N, distill=True)
    batch = pretext(images(), torch.arange(4) % N)
    with pytest.raises(ValueError, match=r"distill=True needs the classifier '4'.*changed its output"):
        model(batch.inputs, batch.states, return_plain=True)


def test_predict_averages_what_the_backbone_outputs_after_the_head() -> None:
    """A nonlinear step after the classifier: the average is taken over its outputs, state by state."""
    model = trained(JointModel(nn.Sequential(*cnn(), Scaled()), [ChannelDrop(k=4)], N)).eval()
    x = images()
    with torch.no_grad():
        expected = torch.stack(
            [model.space.select(model(x, torch.full((4, 1), s)), [s]) for s in range(4)]
        ).mean(dim=0)
    torch.testing.assert_close(model.predict(x), expected)
