"""Tests of JointModel: head surgery, feature sites, row alignment with Compose, predict, errors."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18

from ipt_compose import (
    ChannelDrop,
    Compose,
    Cutout,
    JointModel,
    Pretext,
    Rotation,
    joint_cross_entropy,
)

NUM_CLASSES = 5


def small_cnn(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """Sites: "0" conv (8 ch), "1" relu, "2" conv (12 ch), "3" relu, head "6" (12 → N)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(12, num_classes),
    )


def small_resnet() -> nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=10).eval()


def _images(batch: int, side: int = 8, seed: int = 0) -> Tensor:
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


def _joint_index(model: JointModel, classes: Tensor, states: Tensor) -> Tensor:
    """Joint column of (class c, state row) for every class: ``(R, N)``."""
    space = model.space
    rows = states.shape[0]
    full = torch.cat(
        [
            classes.view(1, -1, 1).expand(rows, -1, 1),
            states.unsqueeze(1).expand(-1, classes.numel(), -1),
        ],
        dim=2,
    )
    return space.encode(full)


def _apply_inputs(pretexts: tuple[Pretext, ...], x: Tensor, states: Tensor) -> Tensor:
    for column, p in enumerate(pretexts):
        if p.site == "input":
            x = p.apply(x, states[:, column])
    return x


# ---------------------------------------------------------------------------------- construction
BACKBONES: dict[str, Callable[[], nn.Module]] = {"sequential": small_cnn, "resnet18": small_resnet}


def _timm_resnet() -> nn.Module:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("test_resnet", num_classes=10, pretrained=False).eval()


@pytest.mark.parametrize("name", ["sequential", "resnet18", "timm"])
def test_widened_head_starts_where_it_was(name: str) -> None:
    backbone = _timm_resnet() if name == "timm" else BACKBONES[name]()
    backbone.eval()
    num_classes = 10 if name != "sequential" else NUM_CLASSES
    plain = copy.deepcopy(backbone)
    old_head = [m for m in plain.modules() if isinstance(m, nn.Linear)][-1]
    pretext = Compose([ChannelDrop(k=3, identity=True), Rotation()])
    model = JointModel(backbone, pretext, num_classes=num_classes).eval()
    k = pretext.num_states
    assert k == 16
    # each state's block of the new head is a copy of the old weights and bias
    head = model.head
    assert head.out_features == num_classes * k
    weight = head.weight.view(num_classes, k, -1)
    assert torch.equal(weight, old_head.weight.unsqueeze(1).expand_as(weight))
    assert torch.equal(head.bias.view(num_classes, k), old_head.bias.unsqueeze(1).expand(-1, k))
    # at the identity states the joint softmax is p(c) / K
    x = _images(2, side=32 if name != "sequential" else 8)
    with torch.no_grad():
        joint = model(x, torch.zeros(2, 2, dtype=torch.long))
        p = plain(x).softmax(dim=1)
    assert joint.shape == (2, num_classes * k)
    torch.testing.assert_close(
        joint.softmax(dim=1).view(2, num_classes, k), (p / k).unsqueeze(2).expand(-1, -1, k)
    )
    # and predict(aggregate="none") is the plain model's logits
    torch.testing.assert_close(model.predict(x, aggregate="none"), plain(x).detach())


def test_list_of_pretexts_accepted() -> None:
    model = JointModel(small_cnn(), [ChannelDrop(k=4), Rotation()], num_classes=NUM_CLASSES)
    assert model.space.names == ("class", "channel_drop", "rotation")
    assert model.head.out_features == NUM_CLASSES * 16


def test_head_by_name() -> None:
    backbone = nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 4 * 4, 6), nn.ReLU(), nn.Linear(6, NUM_CLASSES), nn.Softmax(1)
    )
    model = JointModel(backbone, [Rotation()], num_classes=NUM_CLASSES, head="3")
    assert model.head_name == "3" and model.head.out_features == NUM_CLASSES * 4
    with pytest.raises(ValueError, match=r"6 outputs but num_classes=5"):
        JointModel(copy.deepcopy(backbone), [Rotation()], num_classes=NUM_CLASSES, head="1")


# --------------------------------------------------------------------------------- feature sites
def test_channel_drop_at_head_sequential() -> None:
    model = JointModel(small_cnn(), [ChannelDrop(k=4)], num_classes=NUM_CLASSES)
    x, states = _images(4), torch.tensor([[0], [1], [2], [3]])
    seq = model.backbone
    drop = model.pretext.pretexts[0]
    expected = seq[6](drop.apply(seq[:6](x), states[:, 0]))
    torch.testing.assert_close(model(x, states), expected)


def test_channel_drop_inner_site_sequential() -> None:
    model = JointModel(small_cnn(), [ChannelDrop(k=4, at="2")], num_classes=NUM_CLASSES)
    x, states = _images(4), torch.tensor([[3], [2], [1], [0]])
    seq = model.backbone
    drop = model.pretext.pretexts[0]
    expected = seq[3:](drop.apply(seq[:3](x), states[:, 0]))
    torch.testing.assert_close(model(x, states), expected)
    # the backbone called on its own is left plain
    assert seq(x).shape == (4, NUM_CLASSES * 4)


def _resnet_reference(model: JointModel, x: Tensor, drop: Pretext, states: Tensor) -> Tensor:
    m = model.backbone
    h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    h = m.layer3(m.layer2(m.layer1(h)))
    h = drop.apply(h, states)
    h = torch.flatten(m.avgpool(m.layer4(h)), 1)
    return m.fc(h)


@pytest.mark.parametrize("at", [None, "layer3"])
def test_channel_drop_resnet(at: str | None) -> None:
    model = JointModel(small_resnet(), [ChannelDrop(k=4, at=at)], num_classes=10).eval()
    x, states = _images(4, side=32), torch.tensor([[0], [1], [2], [3]])
    drop = model.pretext.pretexts[0]
    with torch.no_grad():
        out = model(x, states)
        if at == "layer3":
            expected = _resnet_reference(model, x, drop, states[:, 0])
        else:
            m = model.backbone
            features = torch.flatten(m.avgpool(m.layer4(m.layer3(m.layer2(m.layer1(
                m.maxpool(m.relu(m.bn1(m.conv1(x))))))))), 1)  # fmt: skip
            expected = m.fc(drop.apply(features, states[:, 0]))
    assert out.shape == (4, 40)
    torch.testing.assert_close(out, expected)


def test_fewer_channels_than_groups_at_first_forward() -> None:
    model = JointModel(small_cnn(), [ChannelDrop(k=16, at="0")], num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match=r"k=16.*8 channels"):
        model(_images(2), torch.zeros(2, 1, dtype=torch.long))


# ------------------------------------------------------------------------------------ row order
ALIGN_RECIPES: dict[str, Callable[[], list[Pretext]]] = {
    "head": lambda: [ChannelDrop(k=4)],
    "rot_head": lambda: [Rotation(), ChannelDrop(k=3)],
    "two_sites": lambda: [
        ChannelDrop(k=2, at="2"),
        Rotation(),
        ChannelDrop(k=3, name="drop_head", identity=True),
    ],
    "inner_then_head_reversed": lambda: [
        ChannelDrop(k=3, name="drop_head"),
        Cutout(grid=2),
        ChannelDrop(k=2, at="0"),
    ],
}


@pytest.mark.parametrize("recipe", sorted(ALIGN_RECIPES))
def test_all_mode_rows_line_up(recipe: str) -> None:
    pretext = Compose(ALIGN_RECIPES[recipe](), num_classes=NUM_CLASSES, mode="all")
    model = JointModel(small_cnn(), pretext, num_classes=NUM_CLASSES).eval()
    images, labels = (
        (_images(2), torch.tensor([1, 4])) if recipe == "head" else (_images(1), torch.tensor([4]))
    )
    batch = pretext(images, labels)
    k_feat = math.prod(p.num_states for p in pretext.pretexts if p.site == "feature")
    with torch.no_grad():
        logits = model(batch.inputs, batch.states)
        assert logits.shape == (batch.states.shape[0], model.space.size)
        assert batch.target.batch_size == logits.shape[0]
        for r in range(logits.shape[0]):
            single = model(batch.inputs[r // k_feat : r // k_feat + 1], batch.states[r : r + 1])
            torch.testing.assert_close(logits[r], single[0])
    # the loss sees one target per output row
    joint_cross_entropy(logits, batch.target)


def test_all_mode_rows_line_up_resnet() -> None:
    pretext = Compose(
        [ChannelDrop(k=2, at="layer3"), ChannelDrop(k=2, name="drop_head")],
        num_classes=10,
        mode="all",
    )
    model = JointModel(small_resnet(), pretext, num_classes=10).eval()
    batch = pretext(_images(1, side=32), torch.tensor([3]))
    with torch.no_grad():
        logits = model(batch.inputs, batch.states)
        assert logits.shape == (4, 40)
        for r in range(4):
            single = model(batch.inputs[r // 4 : r // 4 + 1], batch.states[r : r + 1])
            torch.testing.assert_close(logits[r], single[0], atol=1e-5, rtol=1e-4)


def test_joint_cross_entropy_backprops_to_backbone() -> None:
    pretext = Compose([ChannelDrop(k=4, at="2"), Rotation()], num_classes=NUM_CLASSES)
    model = JointModel(small_cnn(), pretext, num_classes=NUM_CLASSES)
    batch = pretext(_images(6), torch.arange(6) % NUM_CLASSES, generator=torch.Generator().manual_seed(0))
    reference = copy.deepcopy(model)
    loss = joint_cross_entropy(model(batch.inputs, batch.states), batch.target)
    loss.backward()
    # the same step with the dense target and F.cross_entropy, on a copy: the same gradients, by value
    dense_loss = F.cross_entropy(reference(batch.inputs, batch.states.clone()), batch.target.dense())
    dense_loss.backward()
    torch.testing.assert_close(loss, dense_loss)
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, msg=name)
        assert bool(p.grad.abs().sum() > 0), f"{name} got no gradient"


@pytest.mark.slow
def test_resnet18_training_step() -> None:
    pretext = Compose([ChannelDrop(k=4), Rotation()], num_classes=10)
    model = JointModel(resnet18(num_classes=10), pretext, num_classes=10).train()
    batch = pretext(_images(4, side=32), torch.tensor([0, 3, 5, 9]))
    logits = model(batch.inputs, batch.states)
    assert logits.shape == (4, 160)
    joint_cross_entropy(logits, batch.target).backward()
    grad = model.backbone.conv1.weight.grad
    assert grad is not None and bool(torch.isfinite(grad).all()) and bool(grad.abs().sum() > 0)


# ---------------------------------------------------------------------------------------- predict
def _feature_state_rows(pretexts: tuple[Pretext, ...], enumerate_inputs: bool) -> list[list[int]]:
    """Every state row that predict averages over (input pretexts at identity unless enumerated)."""
    choices = []
    for p in pretexts:
        if p.site == "feature" or enumerate_inputs:
            choices.append(range(p.num_states))
        else:
            choices.append([p.identity_state or 0])
    return [list(row) for row in itertools.product(*choices)]


def _predict_reference(model: JointModel, x: Tensor, aggregate: str) -> Tensor:
    pretexts = model.pretext.pretexts
    classes = torch.arange(model.num_classes)
    batch = x.shape[0]
    if aggregate in ("none", "marginal"):
        rows = [[0] * len(pretexts)]
    else:
        rows = _feature_state_rows(pretexts, enumerate_inputs=aggregate == "all")
    scores = []
    for row in rows:
        states = torch.tensor([row] * batch)
        z = model(_apply_inputs(pretexts, x, states), states)
        if aggregate == "marginal":
            return z.view(batch, model.num_classes, -1).logsumexp(dim=2)
        scores.append(z.gather(1, _joint_index(model, classes, states)))
    return torch.stack(scores).mean(dim=0)


PREDICT_RECIPES: dict[str, Callable[[], list[Pretext]]] = {
    "head": lambda: [ChannelDrop(k=4)],
    "head_rescale_identity": lambda: [ChannelDrop(k=3, rescale=True, identity=True)],
    "head_rotation": lambda: [ChannelDrop(k=2, groups="interleaved"), Rotation()],
    "two_sites": lambda: [
        ChannelDrop(k=2, at="2"),
        Rotation(),
        ChannelDrop(k=3, name="drop_head"),
    ],
    "two_sites_reversed": lambda: [
        ChannelDrop(k=3, name="drop_head"),
        Cutout(grid=2, identity=True),
        ChannelDrop(k=2, at="0", groups="random"),
    ],
    "inputs_only": lambda: [Rotation(), Cutout(grid=2, identity=True)],
}


@pytest.mark.parametrize("aggregate", ["features", "all", "none", "marginal"])
@pytest.mark.parametrize("recipe", sorted(PREDICT_RECIPES))
def test_predict_equals_explicit_loop(recipe: str, aggregate: str) -> None:
    model = JointModel(small_cnn(), PREDICT_RECIPES[recipe](), num_classes=NUM_CLASSES).eval()
    x = _images(3)
    with torch.no_grad():
        # break the init symmetry so that the states matter
        model.head.weight.add_(0.3 * torch.randn_like(model.head.weight))
        expected = _predict_reference(model, x, aggregate)
    got = model.predict(x, aggregate=aggregate)  # type: ignore[arg-type]
    assert got.shape == (3, NUM_CLASSES)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_predict_resnet_layer3() -> None:
    pretext = Compose([ChannelDrop(k=2, at="layer3"), ChannelDrop(k=2, name="head_drop")])
    model = JointModel(small_resnet(), pretext, num_classes=10).eval()
    x = _images(2, side=32)
    with torch.no_grad():
        expected = _predict_reference(model, x, "features")
    torch.testing.assert_close(model.predict(x), expected, atol=1e-5, rtol=1e-4)


def test_predict_needs_identity_for_input_pretexts() -> None:
    model = JointModel(small_cnn(), [ChannelDrop(k=2), Cutout(grid=2)], num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match=r"aggregate='all'.*identity=True"):
        model.predict(_images(2))
    assert model.predict(_images(2), aggregate="all").shape == (2, NUM_CLASSES)


def test_predict_bad_aggregate() -> None:
    model = JointModel(small_cnn(), [ChannelDrop(k=2)], num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="aggregate must be"):
        model.predict(_images(2), aggregate="mean")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- errors
def test_wrong_at_name_lists_nearest() -> None:
    with pytest.raises(ValueError, match=r"at='layer5'.*nearest.*'layer4'"):
        JointModel(small_resnet(), [ChannelDrop(k=4, at="layer5")], num_classes=10)
    with pytest.raises(ValueError, match=r"at='9'.*"):
        JointModel(small_cnn(), [ChannelDrop(k=4, at="9")], num_classes=NUM_CLASSES)


def test_wrong_head_name_lists_nearest() -> None:
    with pytest.raises(ValueError, match=r"head='fcc'.*nearest.*'fc'"):
        JointModel(small_resnet(), [Rotation()], num_classes=10, head="fcc")
    with pytest.raises(TypeError, match=r"nn.Linear"):
        JointModel(small_resnet(), [Rotation()], num_classes=10, head="layer4")


def test_num_classes_mismatch() -> None:
    with pytest.raises(ValueError, match=r"10 outputs but num_classes=5"):
        JointModel(small_resnet(), [ChannelDrop(k=4)], num_classes=5)
    with pytest.raises(ValueError, match=r"num_classes=10 disagrees.*num_classes=7"):
        JointModel(small_resnet(), Compose([ChannelDrop(k=4)], num_classes=7), num_classes=10)


def test_no_linear_head() -> None:
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        JointModel(nn.Sequential(nn.Conv2d(3, 5, 1)), [Rotation()], num_classes=5)
    with pytest.raises(TypeError, match=r"backbone must be an nn\.Module"):
        JointModel(lambda x: x, [Rotation()], num_classes=5)  # type: ignore[arg-type]


def test_states_wrong_shape_or_range() -> None:
    model = JointModel(small_cnn(), [ChannelDrop(k=4), Rotation()], num_classes=NUM_CLASSES)
    x = _images(3)
    for bad in (
        torch.zeros(3, 1, dtype=torch.long),
        torch.zeros(3, 3, dtype=torch.long),
        torch.zeros(3, dtype=torch.long),
    ):
        with pytest.raises(ValueError, match=r"states must have shape \(B', 2\)"):
            model(x, bad)
    with pytest.raises(ValueError, match="states must have 3 rows"):
        model(x, torch.zeros(5, 2, dtype=torch.long))
    for column in (0, 1):
        states = torch.zeros(3, 2, dtype=torch.long)
        states[1, column] = 4
        with pytest.raises(ValueError, match=r"must lie in \[0, "):
            model(x, states)
    with pytest.raises(ValueError, match=r"must lie in \[0, "):
        model(x, torch.full((3, 2), -1))
    with pytest.raises(TypeError, match="integer tensor"):
        model(x, torch.zeros(3, 2))


def test_head_site_needs_pooled_features() -> None:
    backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Linear(8, NUM_CLASSES))  # Linear on (B, 4, H, 8)
    model = JointModel(backbone, [ChannelDrop(k=2)], num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match=r"pooled features.*at='"):
        model(_images(2), torch.zeros(2, 1, dtype=torch.long))


@pytest.mark.slow
def test_timm_model_all_mode_and_predict() -> None:
    backbone = _timm_resnet()
    pretext = Compose(
        [ChannelDrop(k=2, at="layer3"), Rotation(), ChannelDrop(k=2, name="head_drop")],
        num_classes=10,
        mode="all",
    )
    model = JointModel(backbone, pretext, num_classes=10).eval()
    batch = pretext(_images(1, side=32), torch.tensor([7]))
    with torch.no_grad():
        logits = model(batch.inputs, batch.states)
        assert logits.shape == (16, 160)
        for r in range(0, 16, 3):
            single = model(batch.inputs[r // 4 : r // 4 + 1], batch.states[r : r + 1])
            torch.testing.assert_close(logits[r], single[0], atol=1e-5, rtol=1e-4)
        expected = _predict_reference(model, _images(2, side=32), "features")
    torch.testing.assert_close(model.predict(_images(2, side=32)), expected, atol=1e-5, rtol=1e-4)
