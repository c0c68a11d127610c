"""Hypothesis strategies and helpers shared by the joint-label algebra property tests.

Random tensors come from a ``torch.Generator`` seeded by a drawn integer, so every example is
reproducible from hypothesis' record while the tensors themselves stay cheap to make.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from torch import Tensor

from ipt_compose import JointTarget, LabelSpace

__all__ = [
    "KINDS",
    "PROPERTY",
    "apply_op",
    "dense_of",
    "draw_op",
    "generator",
    "keep_subsets",
    "lams",
    "make_target",
    "random_probs",
    "seeds",
    "spaces",
    "target_cases",
]

DTYPE = torch.float64
#: Settings for every property test: modest example counts, no deadline (the CPUs are shared).
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
#: Pretext factor names used by :func:`spaces` (fresh names for lifts start with ``"q"``).
FACTOR_NAMES = ("p0", "p1", "p2")
#: The ways a target is built: hard labels (with or without a known class count), a random
#: mixture of joint indices, or dense probabilities.
KINDS = ("hard", "hard_unknown", "mixture", "dense")


def seeds() -> st.SearchStrategy[int]:
    """Seeds for :func:`generator`."""
    return st.integers(0, 2**31 - 1)


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


@st.composite
def spaces(
    draw: st.DrawFn, min_factors: int = 0, max_factors: int = 3, max_size: int = 5
) -> LabelSpace:
    """A space ``class(1-6) × p0 × …`` with ``min_factors..max_factors`` pretext factors."""
    num_classes = draw(st.integers(1, 6))
    count = draw(st.integers(min_factors, max_factors))
    sizes = draw(st.lists(st.integers(1, max_size), min_size=count, max_size=count))
    return LabelSpace([("class", num_classes), *zip(FACTOR_NAMES[:count], sizes, strict=True)])


def lams(batch_size: int) -> st.SearchStrategy[float | Tensor]:
    """λ as a float, a scalar tensor or one per row, endpoints included."""
    unit = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))
    return st.one_of(
        unit,
        unit.map(lambda v: torch.tensor(v, dtype=DTYPE)),
        st.lists(unit, min_size=batch_size, max_size=batch_size).map(
            lambda vs: torch.tensor(vs, dtype=DTYPE)
        ),
    )


def keep_subsets(space_names: Sequence[str], *, with_class: bool = True) -> st.SearchStrategy:
    """A shuffled subset of ``space_names``; it contains ``"class"`` if ``with_class``."""
    others = [n for n in space_names if n != "class"]
    subset = st.lists(st.sampled_from(others), unique=True) if others else st.just([])
    if with_class:
        subset = subset.map(lambda s: ["class", *s])
    else:
        subset = st.lists(st.sampled_from(list(space_names)), unique=True)
    return subset.flatmap(st.permutations)


def random_probs(g: torch.Generator, rows: int, cols: int) -> Tensor:
    """Float64 rows that are non-negative, sum to 1 and hold some exact zeros."""
    weight = torch.rand(rows, cols, generator=g, dtype=DTYPE)
    mask = torch.rand(rows, cols, generator=g) < 0.5
    mask[torch.arange(rows), torch.randint(cols, (rows,), generator=g)] = True
    weight = weight * mask
    return weight / weight.sum(dim=1, keepdim=True)


def make_target(space: LabelSpace, kind: str, batch_size: int, g: torch.Generator) -> JointTarget:
    """A float64 target over ``space`` of the given kind (see :data:`KINDS`)."""
    n = space.num_classes
    factors = list(space)[1:]
    if kind == "dense":
        return JointTarget(random_probs(g, batch_size, space.size), None, num_classes=n,
                           factors=factors)
    if kind == "mixture":
        m = int(torch.randint(1, 5, (), generator=g))
        index = torch.randint(space.size, (batch_size, m), generator=g)
        return JointTarget(random_probs(g, batch_size, m), index, num_classes=n, factors=factors)
    if kind not in ("hard", "hard_unknown"):
        raise AssertionError(f"unknown kind {kind!r}")
    labels = torch.randint(n, (batch_size,), generator=g)
    target = JointTarget.from_labels(labels, None if kind == "hard_unknown" else n).to(DTYPE)
    for name, size in factors:
        target = target.lift(torch.randint(size, (batch_size,), generator=g), name, size)
    return target


@st.composite
def target_cases(
    draw: st.DrawFn,
    min_factors: int = 0,
    max_factors: int = 3,
    kinds: Sequence[str] = KINDS,
) -> tuple[LabelSpace, JointTarget, torch.Generator]:
    """``(space, target, g)``: a target of 1-6 rows over a random space, and a generator for more."""
    space = draw(spaces(min_factors, max_factors))
    kind = draw(st.sampled_from(list(kinds)))
    batch_size = draw(st.integers(1, 6))
    g = generator(draw(seeds()))
    return space, make_target(space, kind, batch_size, g), g


def dense_of(target: JointTarget, num_classes: int) -> Tensor:
    """``target.dense`` with the class count passed (needed by ``hard_unknown`` targets)."""
    return target.dense(num_classes=num_classes)


def draw_op(
    data: st.DataObject, batch_size: int, factor_names: Sequence[str], op: str, step: int,
    g: torch.Generator,
) -> Callable[[JointTarget], JointTarget]:
    """Draw the parameters of one ``lift``/``mix``/``marginal`` and return it as a function.

    The same function can then be applied to several targets (e.g. a mixture and its dense form).
    ``factor_names`` are the pretext factors of the targets it will be applied to.
    """
    b = batch_size
    if op == "lift":
        k = data.draw(st.integers(1, 3), label=f"K{step}")
        states = torch.randint(k, (b,), generator=g)
        return lambda t: t.lift(states, f"q{step}", k)
    if op == "mix":
        pairing = data.draw(
            st.one_of(st.permutations(range(b)), st.lists(st.integers(0, b - 1), min_size=b,
                                                            max_size=b)),
            label=f"pairing{step}",
        )
        lam = data.draw(lams(b), label=f"lam{step}")
        return lambda t: t.mix(torch.tensor(pairing), lam)
    if op == "marginal":
        keep = data.draw(keep_subsets(["class", *factor_names]), label=f"keep{step}")
        return lambda t: t.marginal(keep)
    raise AssertionError(f"unknown op {op!r}")


def apply_op(
    data: st.DataObject, target: JointTarget, op: str, step: int, g: torch.Generator
) -> JointTarget:
    """Apply one random ``lift``/``mix``/``marginal`` to ``target`` (parameters drawn from ``data``)."""
    names = [n for n, _ in target.factors]
    return draw_op(data, target.batch_size, names, op, step, g)(target)
