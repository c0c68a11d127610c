"""Property and exception tests of :class:`~ipt_compose.LabelSpace` (design items 1, 2, 7)."""

from __future__ import annotations

import itertools
import math
import pickle

import pytest
import torch
from einops import rearrange, reduce
from hypothesis import given
from hypothesis import strategies as st

from ipt_compose import LabelSpace
from tests._strategies import PROPERTY, generator, keep_subsets, seeds, spaces


def _letters(space: LabelSpace) -> list[str]:
    """einops axis names for the factors: ``c`` for the class, ``s0, s1, …`` for the pretexts."""
    return ["c", *(f"s{i}" for i in range(len(space) - 1))]


# ---------------------------------------------------------------------------------- laws


@PROPERTY
@given(space=spaces())
def test_encode_decode_are_inverse_bijections(space: LabelSpace) -> None:
    """Law 1: decode maps range(size) onto every index tuple once, in row-major order."""
    joint = torch.arange(space.size)
    tuples = space.decode(joint)
    assert tuples.shape == (space.size, len(space))
    assert tuples.dtype == torch.long
    torch.testing.assert_close(space.encode(tuples), joint, rtol=0, atol=0)
    expected = list(itertools.product(*(range(k) for k in space.sizes)))
    assert [tuple(row) for row in tuples.tolist()] == expected
    assert len(set(expected)) == space.size == math.prod(space.sizes)


@PROPERTY
@given(space=spaces(), seed=seeds(), batch=st.integers(1, 6))
def test_encode_matches_strides_and_decode_inverts_it(
    space: LabelSpace, seed: int, batch: int
) -> None:
    """Law 1 on random tuples of any leading shape, against the stride formula."""
    g = generator(seed)
    idx = torch.stack([torch.randint(k, (batch, 2), generator=g) for k in space.sizes], dim=-1)
    joint = space.encode(idx)
    assert joint.shape == (batch, 2)
    formula = sum(idx[..., f] * stride for f, stride in enumerate(space.strides))
    torch.testing.assert_close(joint, formula, rtol=0, atol=0)
    torch.testing.assert_close(space.decode(joint), idx, rtol=0, atol=0)
    assert space.strides[-1] == 1
    assert space.strides[0] * space.sizes[0] == space.size


@PROPERTY
@given(space=spaces(), seed=seeds(), batch=st.integers(1, 6))
def test_layout_is_the_einops_pattern(space: LabelSpace, seed: int, batch: int) -> None:
    """Law 2: z[b, encode(idx)] == rearrange(z, "b (c s0 …) -> b c s0 …")[b, *idx]."""
    g = generator(seed)
    letters = _letters(space)
    axes = dict(zip(letters, space.sizes, strict=True))
    pattern = f"b ({' '.join(letters)}) -> b {' '.join(letters)}"
    z = torch.randn(batch, space.size, generator=g, dtype=torch.float64)
    grid = rearrange(z, pattern, **axes)
    assert grid.shape == (batch, *space.sizes)
    idx = torch.stack([torch.randint(k, (batch,), generator=g) for k in space.sizes], dim=-1)
    rows = torch.arange(batch)
    from_grid = grid[(rows, *idx.unbind(-1))]
    from_joint = z[rows, space.encode(idx)]
    torch.testing.assert_close(from_grid, from_joint, rtol=0, atol=0)
    # Every joint column lands at its decoded position.
    all_idx = space.decode(torch.arange(space.size))
    torch.testing.assert_close(grid[(slice(None), *all_idx.unbind(-1))], z, rtol=0, atol=0)


@PROPERTY
@given(
    space=spaces(max_factors=2),
    first=st.integers(1, 5),
    second=st.integers(1, 5),
    seed=seeds(),
)
def test_extend_twice_equals_extend_by_product(
    space: LabelSpace, first: int, second: int, seed: int
) -> None:
    """Law 8: factors (a, b) index like one factor of size a*K_b + b, in that order."""
    twice = space.extend("a", first).extend("b", second)
    once = space.extend("ab", first * second)
    assert twice.size == once.size == space.size * first * second
    assert twice.names == (*space.names, "a", "b")
    assert twice.sizes == (*space.sizes, first, second)
    assert twice.strides[:-2] == once.strides[:-1]
    assert twice.strides[-2] == second * twice.strides[-1]
    g = generator(seed)
    idx = torch.stack(
        [torch.randint(k, (7,), generator=g) for k in twice.sizes], dim=-1
    )
    combined = torch.cat([idx[:, :-2], (idx[:, -2] * second + idx[:, -1]).unsqueeze(1)], dim=1)
    torch.testing.assert_close(twice.encode(idx), once.encode(combined), rtol=0, atol=0)


@PROPERTY
@given(space=spaces(), seed=seeds(), batch=st.integers(1, 6), data=st.data())
def test_marginal_of_probs_matches_einops_reduce(
    space: LabelSpace, seed: int, batch: int, data: st.DataObject
) -> None:
    """Law 11 (probabilities): marginal sums the dropped factors, row-major over ``keep``."""
    keep = data.draw(keep_subsets(space.names, with_class=False), label="keep")
    probs = torch.rand(batch, space.size, generator=generator(seed), dtype=torch.float64)
    probs = probs / probs.sum(dim=1, keepdim=True)
    letters = dict(zip(space.names, _letters(space), strict=True))
    kept = [letters[n] for n in space.names if n in keep]  # space order, not keep order
    pattern = f"b ({' '.join(letters.values())}) -> b ({' '.join(kept)})"
    expected = reduce(probs, pattern, "sum", **dict(zip(letters.values(), space.sizes,
                                                        strict=True)))
    out = space.marginal(probs, keep)
    assert out.shape == (batch, math.prod(space.sizes[space.index(n)] for n in keep))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(batch, dtype=torch.float64))
    if "class" in keep:
        assert space.sub(keep).size == out.shape[1]


@PROPERTY
@given(space=spaces(), seed=seeds(), batch=st.integers(1, 6), data=st.data())
def test_marginal_of_logits_is_logsumexp(
    space: LabelSpace, seed: int, batch: int, data: st.DataObject
) -> None:
    """Law 11 (logits): logsumexp over dropped factors = log of the marginal of the softmax.

    Precisely ``marginal(z, keep, logits=True) = log marginal(softmax z, keep) + lse(z)`` (the
    per-row constant), so the softmax of the marginal logits is the marginal of the softmax.
    """
    keep = data.draw(keep_subsets(space.names, with_class=False), label="keep")
    z = 3 * torch.randn(batch, space.size, generator=generator(seed), dtype=torch.float64)
    marg_logits = space.marginal(z, keep, logits=True)
    marg_probs = space.marginal(z.softmax(dim=1), keep)
    lse = torch.logsumexp(z, dim=1, keepdim=True)
    torch.testing.assert_close(marg_logits, marg_probs.log() + lse)
    torch.testing.assert_close(marg_logits.softmax(dim=1), marg_probs)
    torch.testing.assert_close(torch.logsumexp(marg_logits, dim=1, keepdim=True), lse)


@PROPERTY
@given(space=spaces(), seed=seeds(), data=st.data())
def test_marginal_over_nothing_is_identity(
    space: LabelSpace, seed: int, data: st.DataObject
) -> None:
    """Law 11: keeping every factor (in any order) drops nothing, for sums and logsumexps."""
    keep = data.draw(st.permutations(list(space.names)), label="keep")
    z = torch.randn(2, 3, space.size, generator=generator(seed), dtype=torch.float64)
    torch.testing.assert_close(space.marginal(z, keep), z, rtol=0, atol=0)
    torch.testing.assert_close(space.marginal(z, keep, logits=True), z, rtol=0, atol=0)


@PROPERTY
@given(space=spaces())
def test_space_value_semantics(space: LabelSpace) -> None:
    """Equality, hashing, pickling, iteration and ``sub`` of the full space round-trip."""
    clone = LabelSpace(list(space))
    assert clone == space and hash(clone) == hash(space)
    assert pickle.loads(pickle.dumps(space)) == space
    assert len(space) == len(space.names) and space.num_classes == space.sizes[0]
    assert space.sub(space.names) == space
    assert [space.index(n) for n in space.names] == list(range(len(space)))
    assert repr(space).startswith("LabelSpace(class=")


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("factors", "error", "match"),
    [
        ([("class", 0)], ValueError, r"size of factor 'class' must be >= 1"),
        ([("class", 3), ("rotation", 0)], ValueError, r"size of factor 'rotation'"),
        ([("class", 3), ("rotation", 2.0)], TypeError, r"size of factor 'rotation' must be an int"),
        ([("class", 3), ("rotation", True)], TypeError, r"size of factor 'rotation'"),
        ([("class", 3), ("rot", 4), ("rot", 2)], ValueError, r"names must be unique.*'rot'"),
        ([("class", 3), ("class", 2)], ValueError, r"names must be unique"),
        ([("rotation", 4), ("class", 3)], ValueError, r"first factor must be named 'class'"),
        ([], ValueError, r"factors must hold"),
        ([("class",)], TypeError, r"factors\[0\] must be a \(name, size\) pair"),
        ([("class", 3), ("", 2)], TypeError, r"factors\[1\] name"),
    ],
)
def test_bad_factors(factors: list, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        LabelSpace(factors)


SPACE = LabelSpace([("class", 3), ("channel_drop", 4), ("rotation", 2)])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: SPACE.encode(torch.tensor([[3, 0, 0]])), ValueError, r"^indices .*must lie in"),
        (lambda: SPACE.encode(torch.tensor([[0, 4, 0]])), ValueError, r"^indices"),
        (lambda: SPACE.encode(torch.tensor([[0, 0, -1]])), ValueError, r"^indices"),
        (lambda: SPACE.encode(torch.tensor([[0, 0]])), ValueError, r"^indices must have shape"),
        (lambda: SPACE.encode(torch.tensor(1)), ValueError, r"^indices must have shape"),
        (lambda: SPACE.encode(torch.tensor([[0.0, 0, 0]])), TypeError, r"^indices must be an int"),
        (lambda: SPACE.encode([0, 0, 0]), TypeError, r"^indices must be a torch.Tensor"),
        (lambda: SPACE.decode(torch.tensor([24])), ValueError, r"^joint .*must lie in \[0, 24\)"),
        (lambda: SPACE.decode(torch.tensor([-1])), ValueError, r"^joint"),
        (lambda: SPACE.decode(torch.tensor([1.0])), TypeError, r"^joint must be an int"),
        (lambda: SPACE.marginal(torch.ones(2, 23), ["class"]), ValueError, r"^values must have"),
        (lambda: SPACE.marginal(torch.tensor(1.0), ["class"]), ValueError, r"^values must have"),
        (lambda: SPACE.marginal([1.0] * 24, ["class"]), TypeError, r"^values must be a torch"),
        (lambda: SPACE.marginal(torch.ones(24), ["class", "class"]), ValueError, r"^keep"),
        (lambda: SPACE.marginal(torch.ones(24), ["colour"]), ValueError, r"^keep names factors \['colour'\]"),
        (lambda: SPACE.index("colour"), ValueError, r"no factor named 'colour'.*rotation"),
    ],
)
def test_bad_space_calls(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
