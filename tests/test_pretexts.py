"""Tests of the pretexts: one shared checklist over every pretext, then per-pretext properties.

The checklist follows kornia's and torchvision's habit: every pretext passes the same checks
(smoke, exception, dtype, gradient, gradcheck, pickle, memory format, compile); the properties
(hypothesis) pin each pretext's meaning against a reference written with plain torch ops.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ipt_compose import ChannelDrop, Cutout, Pretext, Rotation

FAST = settings(max_examples=25, deadline=None)

# (id, factory, input shape): the shape suits the pretext (square for Rotation; Cutout's grid
# does not divide 10 for grid=3, and 10×7 is not square).
CASES: list[tuple[str, Callable[[], Pretext], tuple[int, ...]]] = [
    ("channel_drop", lambda: ChannelDrop(k=4), (5, 8, 3, 3)),
    ("channel_drop_pooled", lambda: ChannelDrop(k=3), (5, 7)),
    ("channel_drop_identity", lambda: ChannelDrop(k=4, identity=True), (5, 8, 3, 3)),
    ("channel_drop_rescale", lambda: ChannelDrop(k=3, rescale=True), (5, 7, 3, 3)),
    ("channel_drop_interleaved", lambda: ChannelDrop(k=3, groups="interleaved"), (5, 7, 2, 2)),
    ("channel_drop_random", lambda: ChannelDrop(k=4, groups="random", seed=3), (5, 9, 2, 2)),
    ("rotation", lambda: Rotation(), (5, 3, 6, 6)),
    ("cutout", lambda: Cutout(grid=2), (5, 3, 8, 8)),
    ("cutout_identity", lambda: Cutout(grid=2, identity=True), (5, 3, 8, 8)),
    ("cutout_nondividing", lambda: Cutout(grid=3, fill=0.5), (5, 3, 10, 7)),
    ("cutout_nondividing_identity", lambda: Cutout(grid=3, identity=True), (5, 2, 10, 10)),
]
IDS = [case[0] for case in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> tuple[Pretext, tuple[int, ...]]:
    _, factory, shape = request.param
    return factory(), shape


def _all_states_batch(pretext: Pretext, batch: int) -> torch.Tensor:
    """Every state at least once when ``batch >= num_states``, cycling otherwise."""
    return torch.arange(batch) % pretext.num_states


def _input(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    # values in [1, 2): never equal to any fill value used here, so erased entries are visible
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(shape, generator=gen, dtype=torch.float64) + 1).to(dtype)


def _kept(pretext: Pretext, shape: tuple[int, ...], states: torch.Tensor) -> torch.Tensor:
    """Where the pretext keeps (a possibly moved or rescaled) input value."""
    if isinstance(pretext, Cutout):
        marker = torch.full(shape, 7.0)
        return pretext.apply(marker, states) != pretext.fill
    return pretext.apply(torch.ones(shape), states) != 0


# ---------------------------------------------------------------------------------------- checklist
class TestChecklist:
    """The checks every pretext passes."""

    def test_smoke(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        x = _input(shape)
        before = x.clone()
        states = _all_states_batch(pretext, shape[0])
        out = pretext.apply(x, states)
        assert out.shape == x.shape
        assert out.dtype == x.dtype
        assert out.device == x.device
        assert torch.equal(x, before), "apply must not modify its input in place"
        assert torch.equal(pretext(x, states), out), "forward is apply"
        assert pretext.site in ("input", "feature")
        assert pretext.num_states >= 1
        assert torch.equal(pretext.all_states(), torch.arange(pretext.num_states))
        assert pretext.name in repr(pretext)

    def test_identity_state_keeps_input(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        x = _input(shape)
        if pretext.identity_state is None:
            # a pretext without an identity state changes every row
            out = pretext.apply(x, _all_states_batch(pretext, shape[0]))
            assert all(not torch.equal(out[i], x[i]) for i in range(shape[0]))
            return
        states = torch.full((shape[0],), pretext.identity_state)
        assert torch.equal(pretext.apply(x, states), x)

    def test_states_wrong_shape(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        x = _input(shape)
        for bad in (
            torch.zeros(shape[0] + 1, dtype=torch.long),
            torch.zeros(shape[0], 1, dtype=torch.long),
            torch.zeros((), dtype=torch.long),
        ):
            with pytest.raises(ValueError, match="states must have shape"):
                pretext.apply(x, bad)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
    def test_states_wrong_dtype(self, case: tuple[Pretext, tuple[int, ...]], dtype: torch.dtype) -> None:
        pretext, shape = case
        with pytest.raises(TypeError, match="integer tensor"):
            pretext.apply(_input(shape), torch.zeros(shape[0], dtype=dtype))
        with pytest.raises(TypeError, match=r"states must be a torch\.Tensor"):
            pretext.apply(_input(shape), [0] * shape[0])  # type: ignore[arg-type]

    def test_states_out_of_range(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        x = _input(shape)
        for value in (-1, pretext.num_states):
            states = torch.zeros(shape[0], dtype=torch.long)
            states[-1] = value
            with pytest.raises(ValueError, match=r"must lie in \[0, "):
                pretext.apply(x, states)

    def test_int32_states_accepted(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        x = _input(shape)
        states = _all_states_batch(pretext, shape[0])
        assert torch.equal(pretext.apply(x, states.int()), pretext.apply(x, states))

    def test_x_not_a_batch(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        with pytest.raises(ValueError, match="shape"):
            pretext.apply(torch.rand(3), torch.zeros(3, dtype=torch.long))
        with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
            pretext.apply(_input(shape).tolist(), torch.zeros(shape[0], dtype=torch.long))  # type: ignore[arg-type]
        if pretext.site == "input":
            # images must be (B, C, H, W): 3-D and 5-D are refused
            with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
                pretext.apply(torch.rand(2, 6, 6), torch.zeros(2, dtype=torch.long))
            with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
                pretext.apply(torch.rand(2, 1, 3, 6, 6), torch.zeros(2, dtype=torch.long))

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.uint8])
    def test_dtype_kept(self, case: tuple[Pretext, tuple[int, ...]], dtype: torch.dtype) -> None:
        pretext, shape = case
        if dtype == torch.uint8 and pretext.site == "feature":
            pytest.skip("feature maps are floating point")
        x = (_input(shape) * 100).to(dtype)
        states = _all_states_batch(pretext, shape[0])
        out = pretext.apply(x, states)
        assert out.dtype == dtype
        # the float64 result cast to `dtype` (uint8 truncates a fractional fill the same way)
        reference = pretext.apply(x.double(), states).to(dtype).double()
        torch.testing.assert_close(out.double(), reference, atol=0, rtol=1e-2)

    def test_gradient_flows(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        x = _input(shape).requires_grad_()
        states = _all_states_batch(pretext, shape[0])
        pretext.apply(x, states).sum().backward()
        # the sum's gradient is each input value's factor in the output: 1 where Rotation moves it
        # or Cutout keeps it, 0 where Cutout erases it, the channel's factor for a feature pretext
        # (a mask or a rescale: apply(ones) is that factor)
        kept = _kept(pretext, shape, states)
        if isinstance(pretext, Rotation):
            expected = torch.ones(shape)
        elif isinstance(pretext, Cutout):
            expected = kept.float()
        else:
            expected = pretext.apply(torch.ones(shape), states)
        assert x.grad is not None
        torch.testing.assert_close(x.grad, expected, rtol=0, atol=0)
        assert torch.equal(x.grad != 0, kept)

    def test_gradcheck(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        small = (min(shape[0], pretext.num_states), *shape[1:])
        x = _input(small, torch.float64).requires_grad_()
        states = _all_states_batch(pretext, small[0])
        assert torch.autograd.gradcheck(lambda t: pretext.apply(t, states), (x,))

    def test_pickle_and_deepcopy(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        x = _input(shape)
        states = _all_states_batch(pretext, shape[0])
        expected = pretext.apply(x, states)
        for clone in (pickle.loads(pickle.dumps(pretext)), copy.deepcopy(pretext)):
            assert type(clone) is type(pretext)
            assert (clone.name, clone.num_states, clone.site) == (
                pretext.name,
                pretext.num_states,
                pretext.site,
            )
            assert torch.equal(clone.apply(x, states), expected)

    def test_channels_last_kept(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, shape = case
        if len(shape) != 4:
            pytest.skip("memory format is about 4-D tensors")
        x = _input(shape).contiguous(memory_format=torch.channels_last)
        states = _all_states_batch(pretext, shape[0])
        out = pretext.apply(x, states)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(out, pretext.apply(x.contiguous(), states))

    def test_sample_states(self, case: tuple[Pretext, tuple[int, ...]]) -> None:
        pretext, _ = case
        draws = [pretext.sample_states(64, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
        assert torch.equal(draws[0], draws[1])
        assert draws[0].dtype == torch.long and draws[0].shape == (64,)
        assert int(draws[0].min()) >= 0 and int(draws[0].max()) < pretext.num_states


@pytest.mark.slow
def test_compile_matches_eager() -> None:
    """``torch.compile(apply)`` (graph breaks allowed) gives the eager output, for every pretext."""
    torch._dynamo.reset()
    # one instance per code path (compiling every case costs about a minute on CPU)
    chosen = ("channel_drop_rescale", "channel_drop_random", "rotation", "cutout_nondividing_identity")
    for name, factory, shape in [case for case in CASES if case[0] in chosen]:
        pretext = factory()
        x = _input(shape)
        states = _all_states_batch(pretext, shape[0])
        compiled = torch.compile(pretext.apply, fullgraph=False, backend="inductor")
        torch.testing.assert_close(compiled(x, states), pretext.apply(x, states), msg=name)


# ----------------------------------------------------------------------------- constructor checks
@pytest.mark.parametrize(
    ("factory", "error", "match"),
    [
        (lambda: ChannelDrop(k=0), ValueError, "k must be >= 1"),
        (lambda: ChannelDrop(k=-2), ValueError, "k must be >= 1"),
        (lambda: ChannelDrop(k=2.0), TypeError, "k must be an int"),
        (lambda: ChannelDrop(k=True), TypeError, "k must be an int"),
        (lambda: ChannelDrop(groups="blocks"), ValueError, "groups must be one of"),
        (lambda: ChannelDrop(at=""), TypeError, "at must be a submodule name"),
        (lambda: ChannelDrop(at=3), TypeError, "at must be a submodule name"),
        (lambda: ChannelDrop(name=""), ValueError, "name must be a non-empty str"),
        (lambda: ChannelDrop(name="class"), ValueError, "other than 'class'"),
        (lambda: Rotation(name=3), ValueError, "name must be"),
        (lambda: Cutout(grid=0), ValueError, "grid must be >= 1"),
        (lambda: Cutout(grid=1.5), TypeError, "grid must be an int"),
        (lambda: Cutout(fill="black"), TypeError, "fill must be a number"),
        (lambda: Cutout(fill=True), TypeError, "fill must be a number"),
        (lambda: Cutout(name="class"), ValueError, "other than 'class'"),
    ],
)
def test_bad_constructor_args(factory: Callable[[], Pretext], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        factory()


def test_num_states() -> None:
    assert ChannelDrop(k=4).num_states == 4
    assert ChannelDrop(k=4, identity=True).num_states == 5
    assert ChannelDrop(k=4, identity=True).identity_state == 0
    assert ChannelDrop(k=4).identity_state is None
    assert Rotation().num_states == 4 and Rotation().identity_state == 0
    assert Cutout(grid=3).num_states == 9 and Cutout(grid=3).identity_state is None
    assert Cutout(grid=3, identity=True).num_states == 10
    assert ChannelDrop().site == "feature"
    assert Rotation().site == "input" and Cutout().site == "input"


# ------------------------------------------------------------------------------------- Rotation
class TestRotation:
    @pytest.mark.parametrize("state", [0, 1, 2, 3])
    def test_non_square_raises_whatever_the_states(self, state: int) -> None:
        with pytest.raises(ValueError, match=r"square.*H=4, W=6"):
            Rotation().apply(torch.rand(2, 3, 4, 6), torch.full((2,), state))

    def test_docstring_direction(self) -> None:
        # counter-clockwise: the top-right corner moves to the top-left
        x = torch.arange(4.0).view(1, 1, 2, 2)
        assert Rotation().apply(x, torch.tensor([1])).flatten().tolist() == [1.0, 3.0, 0.0, 2.0]

    @FAST
    @given(
        batch=st.integers(1, 6),
        channels=st.integers(1, 3),
        side=st.integers(1, 7),
        seed=st.integers(0, 2**31 - 1),
    )
    def test_equals_rot90_row_by_row(self, batch: int, channels: int, side: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, channels, side, side, generator=gen)
        states = torch.randint(4, (batch,), generator=gen)
        out = Rotation().apply(x, states)
        for i in range(batch):
            assert torch.equal(out[i], torch.rot90(x[i], int(states[i]), dims=(-2, -1)))


# --------------------------------------------------------------------------------------- Cutout
def _cell_bounds(length: int, grid: int) -> list[tuple[int, int]]:
    parts = torch.tensor_split(torch.arange(length), grid)
    return [(int(p[0]), int(p[-1]) + 1) for p in parts]


class TestCutout:
    def test_image_smaller_than_grid_raises(self) -> None:
        with pytest.raises(ValueError, match=r"grid=3.*3×3.*H=2, W=5"):
            Cutout(grid=3).apply(torch.rand(1, 1, 2, 5), torch.tensor([0]))

    @FAST
    @given(
        grid=st.integers(1, 4),
        extra_h=st.integers(0, 6),
        extra_w=st.integers(0, 6),
        identity=st.booleans(),
        fill=st.sampled_from([0.0, -1.0, 0.5]),
        data=st.data(),
    )
    def test_changes_exactly_its_cell(
        self,
        grid: int,
        extra_h: int,
        extra_w: int,
        identity: bool,
        fill: float,
        data: st.DataObject,
    ) -> None:
        height, width = grid + extra_h, grid + extra_w
        pretext = Cutout(grid=grid, fill=fill, identity=identity)
        batch = data.draw(st.integers(1, 5))
        states = torch.tensor(
            data.draw(st.lists(st.integers(0, pretext.num_states - 1), min_size=batch, max_size=batch))
        )
        x = torch.rand(batch, 2, height, width) + 1  # never equal to fill
        out = pretext.apply(x, states)
        rows, cols = _cell_bounds(height, grid), _cell_bounds(width, grid)
        for i in range(batch):
            expected = x[i].clone()
            cell = int(states[i]) - int(identity)
            if cell >= 0:
                (r0, r1), (c0, c1) = rows[cell // grid], cols[cell % grid]
                expected[:, r0:r1, c0:c1] = fill
            assert torch.equal(out[i], expected)

    def test_cell_map_row_major(self) -> None:
        cells = Cutout(grid=2).cell_map(3, 5)
        assert cells.tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 1, 1], [2, 2, 2, 3, 3]]


# ---------------------------------------------------------------------------------- ChannelDrop
def _reference_groups(pretext: ChannelDrop, channels: int) -> list[torch.Tensor]:
    """The channels of each group, written independently of the library."""
    if pretext.groups == "interleaved":
        return [torch.arange(g, channels, pretext.k) for g in range(pretext.k)]
    return list(torch.tensor_split(torch.arange(channels), pretext.k))


class TestChannelDrop:
    @pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4, 4)])
    def test_fewer_channels_than_groups(self, shape: tuple[int, ...]) -> None:
        with pytest.raises(ValueError, match=r"k=4.*at least 4 channels.*3 channels"):
            ChannelDrop(k=4).apply(torch.rand(shape), torch.zeros(2, dtype=torch.long))

    def test_docstring_example(self) -> None:
        out = ChannelDrop(k=2).apply(torch.ones(2, 4), torch.tensor([0, 1]))
        assert out.tolist() == [[0, 0, 1, 1], [1, 1, 0, 0]]

    @FAST
    @given(
        k=st.integers(1, 5),
        extra=st.integers(0, 7),
        identity=st.booleans(),
        groups=st.sampled_from(["contiguous", "interleaved"]),
        spatial=st.sampled_from([(), (3, 2)]),
        data=st.data(),
    )
    def test_zeroes_exactly_its_group(
        self,
        k: int,
        extra: int,
        identity: bool,
        groups: str,
        spatial: tuple[int, ...],
        data: st.DataObject,
    ) -> None:
        channels = k + extra
        pretext = ChannelDrop(k=k, identity=identity, groups=groups)  # type: ignore[arg-type]
        batch = data.draw(st.integers(1, 5))
        states = torch.tensor(
            data.draw(st.lists(st.integers(0, pretext.num_states - 1), min_size=batch, max_size=batch))
        )
        x = torch.rand(batch, channels, *spatial) + 1
        out = pretext.apply(x, states)
        reference = _reference_groups(pretext, channels)
        for i in range(batch):
            expected = x[i].clone()
            group = int(states[i]) - int(identity)
            if group >= 0:
                expected[reference[group]] = 0
            assert torch.equal(out[i], expected)

    @pytest.mark.parametrize("channels", [4, 9, 16])
    def test_random_groups_are_a_permuted_split(self, channels: int) -> None:
        pretext = ChannelDrop(k=4, groups="random", seed=11)
        ids = pretext.group_ids(channels)
        sizes = sorted(len(p) for p in torch.tensor_split(torch.arange(channels), 4))
        assert sorted(torch.bincount(ids, minlength=4).tolist()) == sizes
        assert torch.equal(ids, ChannelDrop(k=4, groups="random", seed=11).group_ids(channels))
        x = torch.rand(4, channels) + 1
        out = pretext.apply(x, torch.arange(4))
        for g in range(4):
            assert torch.equal(out[g] == 0, ids == g)

    def test_random_layout_depends_on_seed(self) -> None:
        a = ChannelDrop(k=4, groups="random", seed=0).group_ids(64)
        b = ChannelDrop(k=4, groups="random", seed=1).group_ids(64)
        assert not torch.equal(a, b)

    def test_random_layout_survives_pickle(self) -> None:
        source = ChannelDrop(k=4, groups="random", seed=7)
        clone = pickle.loads(pickle.dumps(source))
        assert clone.seed == 7 and clone.groups == "random"
        assert torch.equal(clone.group_ids(32), source.group_ids(32))

    def test_rescale(self) -> None:
        pretext = ChannelDrop(k=3, rescale=True)
        x = torch.ones(3, 7)  # groups of 3, 2, 2 channels
        out = pretext.apply(x, torch.arange(3))
        assert torch.allclose(out[0], torch.tensor([0, 0, 0] + [7 / 4] * 4))
        assert torch.allclose(out[1], torch.tensor([7 / 5] * 3 + [0, 0] + [7 / 5] * 2))
        # the kept channels' scale keeps the total of an all-ones map
        assert torch.allclose(out.sum(dim=1), torch.full((3,), 7.0))
        identity = ChannelDrop(k=3, rescale=True, identity=True)
        assert torch.equal(identity.apply(x, torch.zeros(3, dtype=torch.long)), x)

    def test_channel_scale_matches_apply(self) -> None:
        for pretext in (ChannelDrop(k=3), ChannelDrop(k=3, rescale=True, identity=True)):
            table = pretext.channel_scale(8)
            x = torch.rand(pretext.num_states, 8)
            states = torch.arange(pretext.num_states)
            torch.testing.assert_close(pretext.apply(x, states), x * table)


# ---------------------------------------------------------------------------------- sample_states
@FAST
@given(
    which=st.sampled_from(IDS),
    batch=st.integers(0, 50),
    seed=st.integers(0, 2**31 - 1),
)
def test_sample_states_reproducible_and_in_range(which: str, batch: int, seed: int) -> None:
    factory = dict((name, f) for name, f, _ in CASES)[which]
    pretext = factory()
    first = pretext.sample_states(batch, device="cpu", generator=torch.Generator().manual_seed(seed))
    second = pretext.sample_states(batch, device="cpu", generator=torch.Generator().manual_seed(seed))
    assert torch.equal(first, second)
    assert first.shape == (batch,) and first.dtype == torch.long
    assert first.device == torch.device("cpu")
    if batch:
        assert int(first.min()) >= 0 and int(first.max()) < pretext.num_states


def test_sample_states_covers_every_state() -> None:
    pretext = Cutout(grid=2, identity=True)
    states = pretext.sample_states(500, generator=torch.Generator().manual_seed(0))
    assert set(states.tolist()) == set(range(pretext.num_states))


def test_sample_states_global_rng() -> None:
    torch.manual_seed(3)
    first = Rotation().sample_states(20)
    torch.manual_seed(3)
    assert torch.equal(Rotation().sample_states(20), first)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sample_states_on_cuda() -> None:
    for generator in (torch.Generator().manual_seed(1), torch.Generator("cuda").manual_seed(1)):
        states = Rotation().sample_states(16, device="cuda", generator=generator)
        assert states.device.type == "cuda" and states.dtype == torch.long
    x = torch.rand(4, 3, 5, 5, device="cuda")
    for _, factory, _shape in CASES:
        pretext = factory()
        if pretext.site == "feature":
            x_in = torch.rand(4, 9, 2, 2, device="cuda")
        else:
            x_in = x if isinstance(pretext, Rotation) else torch.rand(4, 3, 10, 10, device="cuda")
        states = torch.arange(4, device="cuda") % pretext.num_states
        assert torch.equal(pretext.apply(x_in, states).cpu(), pretext.apply(x_in.cpu(), states.cpu()))
