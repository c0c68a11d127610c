"""Property and exception tests of :class:`~ipt_compose.JointTarget` (design items 3-5)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ipt_compose import JointTarget, LabelSpace
from tests._strategies import (
    KINDS,
    PROPERTY,
    apply_op,
    dense_of,
    draw_op,
    generator,
    keep_subsets,
    lams,
    make_target,
    seeds,
    spaces,
    target_cases,
)

OPS = st.lists(st.sampled_from(["lift", "mix", "marginal"]), max_size=5)


def _pairings(batch_size: int) -> st.SearchStrategy[list[int]]:
    """Random permutations and arbitrary (non-injective) pairings of ``batch_size`` rows."""
    return st.one_of(
        st.permutations(range(batch_size)),
        st.lists(st.integers(0, batch_size - 1), min_size=batch_size, max_size=batch_size),
    )


def _assert_distributions(dense: torch.Tensor) -> None:
    assert (dense >= 0).all()
    torch.testing.assert_close(dense.sum(dim=1), torch.ones(dense.shape[0], dtype=dense.dtype))


# ---------------------------------------------------------------------------------- laws


@PROPERTY
@given(case=target_cases(max_factors=2), k=st.integers(1, 5))
def test_lift_then_marginal_gives_the_target_back(case, k: int) -> None:
    """Law 3: marginalising the new factor out of ``lift(p, s)`` gives ``p``."""
    space, target, g = case
    states = torch.randint(k, (target.batch_size,), generator=g)
    lifted = target.lift(states, "new", k)
    back = lifted.marginal(list(space.names))
    assert back.factors == target.factors
    torch.testing.assert_close(dense_of(back, space.num_classes), dense_of(target, space.num_classes))
    classes = lifted.marginal(["class"])
    torch.testing.assert_close(
        dense_of(classes, space.num_classes),
        space.marginal(dense_of(target, space.num_classes), ["class"]),
    )


@PROPERTY
@given(case=target_cases(max_factors=2), k=st.integers(1, 5))
def test_lift_is_outer_product_with_onehot(case, k: int) -> None:
    """Law 4: ``dense(lift(p, s)) = dense(p) ⊗ onehot(s)``, class-major."""
    space, target, g = case
    states = torch.randint(k, (target.batch_size,), generator=g)
    lifted = target.lift(states, "new", k)
    assert lifted.space(space.num_classes) == space.extend("new", k)
    onehot = torch.nn.functional.one_hot(states, k).to(torch.float64)
    dense = dense_of(target, space.num_classes)
    expected = torch.einsum("bj,bk->bjk", dense, onehot).reshape(target.batch_size, -1)
    torch.testing.assert_close(dense_of(lifted, space.num_classes), expected)
    if not target.is_dense:
        assert lifted.weight.shape == target.weight.shape  # M is kept


@PROPERTY
@given(case=target_cases(), data=st.data())
def test_mix_is_convex_combination_with_partner(case, data: st.DataObject) -> None:
    """Law 5: ``dense(mix(a, π, λ)) = λ dense(a) + (1-λ) dense(a)[π]``, λ scalar or per row."""
    space, target, _ = case
    b = target.batch_size
    pairing = torch.tensor(data.draw(_pairings(b), label="pairing"))
    lam = data.draw(lams(b), label="lam")
    mixed = target.mix(pairing, lam)
    dense = dense_of(target, space.num_classes)
    own = torch.as_tensor(lam, dtype=torch.float64)
    own = own.unsqueeze(1) if own.ndim == 1 else own
    expected = own * dense + (1 - own) * dense[pairing]
    torch.testing.assert_close(dense_of(mixed, space.num_classes), expected)
    assert mixed.is_dense == target.is_dense
    if not target.is_dense:
        assert mixed.weight.shape[1] == 2 * target.weight.shape[1]  # M doubles


@PROPERTY
@given(case=target_cases(max_factors=2), k=st.integers(1, 4), data=st.data())
def test_mix_and_lift_commute_when_states_agree(case, k: int, data: st.DataObject) -> None:
    """Law 6: mix-then-lift equals lift-then-mix when ``states[π] == states``."""
    space, target, g = case
    b = target.batch_size
    states = torch.randint(k, (b,), generator=g)
    # Each row's partner is drawn among the rows that share its state.
    pairing = torch.tensor(
        [
            data.draw(st.sampled_from(torch.nonzero(states == states[i]).flatten().tolist()),
                      label=f"partner{i}")
            for i in range(b)
        ]
    )
    assert torch.equal(states[pairing], states)
    lam = data.draw(lams(b), label="lam")
    mix_lift = target.mix(pairing, lam).lift(states, "new", k)
    lift_mix = target.lift(states, "new", k).mix(pairing, lam)
    torch.testing.assert_close(
        dense_of(mix_lift, space.num_classes), dense_of(lift_mix, space.num_classes)
    )


@PROPERTY
@given(case=target_cases(max_factors=2), ops=OPS, data=st.data())
def test_rows_stay_distributions_through_any_ops(case, ops: list[str], data: st.DataObject) -> None:
    """Law 7: any sequence of lift/mix/marginal keeps rows non-negative and summing to 1."""
    space, target, g = case
    _assert_distributions(dense_of(target, space.num_classes))
    for step, op in enumerate(ops):
        target = apply_op(data, target, op, step, g)
        dense = dense_of(target, space.num_classes)
        assert dense.shape == (target.batch_size, target.space(space.num_classes).size)
        _assert_distributions(dense)
        assert (target.weight >= 0).all()


@PROPERTY
@given(
    case=target_cases(max_factors=2),
    first=st.integers(1, 4),
    second=st.integers(1, 4),
)
def test_lift_twice_equals_lift_by_product(case, first: int, second: int) -> None:
    """Law 8 on targets: lifting by (a, b) equals lifting once by state ``a*K_b + b``."""
    space, target, g = case
    b = target.batch_size
    sa = torch.randint(first, (b,), generator=g)
    sb = torch.randint(second, (b,), generator=g)
    twice = target.lift(sa, "a", first).lift(sb, "b", second)
    once = target.lift(sa * second + sb, "ab", first * second)
    assert twice.num_states == once.num_states
    torch.testing.assert_close(
        dense_of(twice, space.num_classes), dense_of(once, space.num_classes)
    )
    if not target.is_dense:
        torch.testing.assert_close(twice.index, once.index, rtol=0, atol=0)


@PROPERTY
@given(case=target_cases(max_factors=2, kinds=("hard", "mixture")), ops=OPS, data=st.data())
def test_mixture_and_dense_forms_agree(case, ops: list[str], data: st.DataObject) -> None:
    """Law 9: the same ops on a mixture target and on its dense form give the same dense()."""
    space, mixture, g = case
    dense = JointTarget(
        mixture.dense(), None, num_classes=space.num_classes, factors=mixture.factors
    )
    assert dense.is_dense and not mixture.is_dense
    for step, op in enumerate(ops):
        apply = draw_op(data, mixture.batch_size, [n for n, _ in mixture.factors], op, step, g)
        mixture, dense = apply(mixture), apply(dense)
        assert mixture.factors == dense.factors
        torch.testing.assert_close(mixture.dense(), dense.dense())


@PROPERTY
@given(case=target_cases(), data=st.data())
def test_target_marginal_matches_space_marginal(case, data: st.DataObject) -> None:
    """Law 12: ``target.marginal(keep)`` equals ``space.marginal(target.dense(), keep)``."""
    space, target, _ = case
    keep = data.draw(keep_subsets(space.names), label="keep")
    marg = target.marginal(keep)
    assert marg.factors == tuple((n, s) for n, s in list(space)[1:] if n in keep)
    assert marg.is_dense == target.is_dense
    torch.testing.assert_close(
        dense_of(marg, space.num_classes),
        space.marginal(dense_of(target, space.num_classes), keep),
    )


@PROPERTY
@given(space=spaces(max_factors=0), seed=seeds(), batch=st.integers(1, 6))
def test_from_labels_gives_onehot_or_the_probabilities(
    space: LabelSpace, seed: int, batch: int
) -> None:
    """Hard labels give one-hot rows; probabilities come back unchanged in the dense form."""
    n = space.num_classes
    g = generator(seed)
    labels = torch.randint(n, (batch,), generator=g)
    hard = JointTarget.from_labels(labels, n)
    assert not hard.is_dense and hard.num_classes == n
    torch.testing.assert_close(hard.dense(), torch.nn.functional.one_hot(labels, n).float())
    unknown = JointTarget.from_labels(labels)
    assert unknown.num_classes is None
    torch.testing.assert_close(unknown.dense(num_classes=n), hard.dense())
    soft = make_target(space, "dense", batch, g).dense()
    from_soft = JointTarget.from_labels(soft)
    assert from_soft.is_dense and from_soft.num_classes == n
    torch.testing.assert_close(from_soft.dense(), soft, rtol=0, atol=0)


@PROPERTY
@given(case=target_cases(kinds=KINDS), repeats=st.integers(1, 3))
def test_repeat_interleave_repeats_rows(case, repeats: int) -> None:
    """``repeat_interleave`` row ``r`` is row ``r // repeats`` of the original."""
    space, target, _ = case
    out = target.repeat_interleave(repeats)
    torch.testing.assert_close(
        dense_of(out, space.num_classes),
        dense_of(target, space.num_classes).repeat_interleave(repeats, dim=0),
    )


# ---------------------------------------------------------------------------------- bad input

HARD = JointTarget.from_labels(torch.tensor([1, 0, 2]), num_classes=3)
UNKNOWN = JointTarget.from_labels(torch.tensor([1, 0, 5]))
SOFT = JointTarget.from_labels(torch.tensor([[0.5, 0.5], [1.0, 0.0]]))


@pytest.mark.parametrize(
    ("labels", "num_classes", "error", "match"),
    [
        (torch.tensor([[0.5, 0.6]]), None, ValueError, r"^labels rows must sum to 1"),
        (torch.tensor([[1.5, -0.5]]), None, ValueError, r"^labels must be non-negative"),
        (torch.tensor([[float("nan"), 1.0]]), None, ValueError, r"^labels must not contain NaN"),
        # float class indices: the message is about the dtype (issue 12), not the shape
        (torch.tensor([0.5, 0.5]), None, TypeError, r"^labels of shape \(B,\) must be integer class indices"),
        (torch.tensor([0, 3]), 3, ValueError, r"^labels \(class index\) must lie in \[0, 3\)"),
        (torch.tensor([-1, 0]), 3, ValueError, r"^labels"),
        (torch.tensor([-1, 0]), None, ValueError, r"^labels must be non-negative"),
        (torch.tensor([[0, 1]]), 3, ValueError, r"^labels must be class indices of shape"),
        (torch.tensor([True]), None, TypeError, r"^labels must be an integer tensor"),
        ([0, 1], None, TypeError, r"^labels must be a torch.Tensor"),
        (torch.tensor([[0.5, 0.5]]), 3, ValueError, r"num_classes is 3"),
        (torch.tensor([0, 1]), 0, ValueError, r"^num_classes must be >= 1"),
        (torch.tensor([0, 1]), 2.0, TypeError, r"^num_classes must be an int"),
    ],
)
def test_bad_labels(labels, num_classes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        JointTarget.from_labels(labels, num_classes)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: UNKNOWN.dense(), ValueError, r"pass num_classes"),
        (lambda: UNKNOWN.lift(torch.tensor([0, 1, 0]), "r", 2).dense(), ValueError,
         r"pass num_classes"),
        (lambda: UNKNOWN.dense(num_classes=3), ValueError, r"^labels \(class index\)"),
        (lambda: HARD.dense(num_classes=4), ValueError, r"^num_classes=4 disagrees"),
        (lambda: HARD.mix(torch.tensor([1, 0, 2]), 1.5), ValueError, r"^lam must lie in \[0, 1\]"),
        (lambda: HARD.mix(torch.tensor([1, 0, 2]), -0.1), ValueError, r"^lam"),
        (lambda: HARD.mix(torch.tensor([1, 0, 2]), float("nan")), ValueError, r"^lam"),
        (lambda: HARD.mix(torch.tensor([1, 0, 2]), torch.tensor([0.5, 2.0, 0.5])), ValueError,
         r"^lam"),
        (lambda: HARD.mix(torch.tensor([1, 0, 2]), torch.tensor([0.5, 0.5])), ValueError,
         r"^lam must be a scalar or have shape \(3,\)"),
        (lambda: HARD.mix(torch.tensor([1, 0, 2]), True), TypeError, r"^lam must be a float"),
        (lambda: HARD.mix(torch.tensor([1, 0, 2]), "0.5"), TypeError, r"^lam"),
        (lambda: HARD.mix(torch.tensor([1, 0]), 0.5), ValueError,
         r"^pairing must have shape \(3,\)"),
        (lambda: HARD.mix(torch.tensor([[1, 0, 2]]), 0.5), ValueError, r"^pairing must have shape"),
        (lambda: HARD.mix(torch.tensor([1, 0, 3]), 0.5), ValueError, r"^pairing must lie in"),
        (lambda: HARD.mix(torch.tensor([1.0, 0.0, 2.0]), 0.5), TypeError,
         r"^pairing must be an integer tensor"),
        (lambda: SOFT.mix(torch.tensor([1, 0]), 2.0), ValueError, r"^lam"),
        (lambda: HARD.lift(torch.tensor([0, 4, 0]), "r", 4), ValueError, r"^states must lie in"),
        (lambda: HARD.lift(torch.tensor([0, 1]), "r", 4), ValueError, r"^states must have shape"),
        (lambda: HARD.lift(torch.tensor([0, 1, 0]), "r", 0), ValueError, r"^num_states"),
        (lambda: HARD.lift(torch.tensor([0, 1, 0]), "class", 2), ValueError,
         r"^name must be a new factor name, got 'class'"),
        (lambda: HARD.lift(torch.tensor([0, 0, 0]), "r", 2).lift(torch.tensor([0, 0, 0]), "r", 2),
         ValueError, r"^name must be a new factor name, got 'r'"),
        (lambda: HARD.marginal(["rotation"]), ValueError, r"^keep names factors \['rotation'\]"),
        (lambda: HARD.lift(torch.tensor([0, 0, 0]), "r", 2).marginal(["r"]), ValueError,
         r"^keep must include 'class'"),
        (lambda: JointTarget(torch.ones(2, 3, dtype=torch.long)), TypeError, r"^weight must be"),
        (lambda: JointTarget(torch.ones(3)), ValueError, r"^weight must have shape \(B, M\)"),
        (lambda: JointTarget(torch.ones(2, 3)), ValueError, r"^num_classes is required"),
        (lambda: JointTarget(torch.ones(2, 3), num_classes=4), ValueError,
         r"^weight must have 4 columns"),
        (lambda: JointTarget(torch.ones(2, 3), torch.zeros(2, 2, dtype=torch.long)), ValueError,
         r"^index and weight must have the same shape"),
        (lambda: JointTarget(torch.ones(2, 1), torch.zeros(2, 1)), TypeError,
         r"^index must be an integer tensor"),
    ],
)
def test_bad_target_calls(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
