"""The library's own cost: aten ops and CPU time that ipt_compose adds to a step (issue 11's budget).

A GPU step of a small CNN is bound by how fast the host issues kernels, so what the library adds is
best read in two host-side numbers, measured here on the CPU:

* **ops** (``--ops``): every aten op a step dispatches, views excluded, counted with a
  ``TorchDispatchMode`` on a CIFAR ResNet-20 at B=32; the table gives the ops a case adds to its
  plain counterpart and the host reads of tensor values among them (``_local_scalar_dense``, the
  op behind ``.item()``/``bool()``; a GPU would sync on each). The same steps run on the ``meta``
  device (``off-CPU``) take the path of an accelerator: there the check of the user's labels is
  queued with ``_assert_async`` (no sync), which costs two ops more than the CPU's ``torch.equal``
  on values that are on the host already, and any host read would fail outright.
* **µs** (``--micro``): the library's own CPU time per call, on a model too small to hide it (flatten
  + linear, B=128, 3×8×8 inputs): the median CPU time of the case minus the median CPU time of its
  plain counterpart, timed interleaved in one process, one thread (``time.thread_time``, so that
  other processes on a shared machine do not count), and the same difference between the fastest
  rounds (``(min)``), which interference from other processes can only lengthen. For ChannelDrop at
  the head the same method is also written out by hand in plain PyTorch (the draw, the mask, the
  joint index, the 4× wider classifier); ``own`` is the library's time beyond that hand-written
  step: what the library itself costs, apart from what the method costs.

Budget (issue 11): ChannelDrop(k=4) at the head adds at most 12 ops to a training step and at most
8 to ``predict``, no host sync, and at most 100 µs of CPU time to each. The other lines (mode
``"all"``, the mixers, distillation) are reported against their own plain counterparts.

    python benchmarks/budget.py --ops --micro --json runs/budget.json

``benchmarks/overhead.py --ops/--micro`` runs the same.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from _data import resnet20

from ipt_compose import (
    ChannelDrop,
    Compose,
    CutMix,
    JointModel,
    MixUp,
    joint_cross_entropy,
    self_distillation_loss,
)

N = 10
OPS_BUDGET = {"train": 12, "predict": 8}
MICROSECONDS_BUDGET = 100.0


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched inside the mode, views excluded."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        is_view = any(r.alias_info is not None and not r.alias_info.is_write for r in returns)
        if not is_view:
            self.ops[str(func.overloadpacket.__name__)] += 1
        return out


def count_ops(fn: Callable[[], object]) -> collections.Counter[str]:
    """The ops of one call of ``fn`` (after one warm-up call, which fills the library's caches)."""
    fn()
    with OpCounter() as counter:
        fn()
    return counter.ops


# ---------------------------------------------------------------------------------------- cases
Step = Callable[[], object]


def _train_step(model: nn.Module, loss: Callable[[], Tensor]) -> Step:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    return step


def build_cases(
    backbone: Callable[[], nn.Module], images: Tensor, labels: Tensor
) -> dict[str, tuple[Step, Step]]:
    """``name → (plain, ours)``: each case and the plain step or forward it is compared with."""

    def joint(pretext: Compose, **kwargs: Any) -> JointModel:
        torch.manual_seed(0)
        return JointModel(backbone(), pretext, num_classes=N, **kwargs).to(images.device)

    def plain_model() -> nn.Module:
        torch.manual_seed(0)
        return backbone().to(images.device)

    def plain_train(mix: Any = None) -> Step:
        model = plain_model().train()

        def loss() -> Tensor:
            x, y = (images, labels) if mix is None else mix(images, labels)
            return F.cross_entropy(model(x), y)

        return _train_step(model, loss)

    def ours_train(pretext: Compose, *, before: Any = None, distill: bool = False) -> Step:
        model = joint(pretext, distill=distill).train()

        def loss() -> Tensor:
            x, y = (images, labels) if before is None else before(images, labels)
            batch = pretext(x, y)
            if distill:
                out = model(batch.inputs, batch.states, return_plain=True)
                return joint_cross_entropy(out.joint, batch.target) + self_distillation_loss(
                    out.plain, out.teacher, batch.target
                )
            return joint_cross_entropy(model(batch.inputs, batch.states), batch.target)

        return _train_step(model, loss)

    def plain_forward() -> Step:
        model = plain_model().eval()
        return torch.no_grad()(lambda: model(images))

    def ours_predict(aggregate: str, call: bool = False) -> Step:
        model = joint(Compose([ChannelDrop(k=4)], num_classes=N)).eval()
        if call:
            return torch.no_grad()(lambda: model(images))
        return lambda: model.predict(images, aggregate=aggregate)  # type: ignore[arg-type]

    def cd(mode: str = "sample", *before: Any) -> Compose:
        return Compose([*before, ChannelDrop(k=4)], num_classes=N, mode=mode)  # type: ignore[arg-type]

    tv_cutmix, tv_mixup = v2.CutMix(num_classes=N), v2.MixUp(num_classes=N)
    return {
        "train: ChannelDrop(k=4) at the head, sample": (plain_train(), ours_train(cd())),
        "train: ChannelDrop(k=4) at the head, all": (plain_train(), ours_train(cd("all"))),
        "train: ChannelDrop(k=4) at the head + self-distillation": (
            plain_train(), ours_train(cd(), distill=True)
        ),
        "train: our CutMix + ChannelDrop vs v2.CutMix": (
            plain_train(tv_cutmix), ours_train(cd("sample", CutMix()))
        ),
        "train: our MixUp + ChannelDrop vs v2.MixUp": (
            plain_train(tv_mixup), ours_train(cd("sample", MixUp()))
        ),
        "train: v2.CutMix inside Compose + ChannelDrop vs v2.CutMix": (
            plain_train(tv_cutmix), ours_train(cd("sample", tv_cutmix))
        ),
        "train: v2.CutMix soft labels + ChannelDrop vs v2.CutMix": (
            plain_train(tv_cutmix), ours_train(cd(), before=tv_cutmix)
        ),
        "predict: aggregated (features) vs plain forward": (plain_forward(), ours_predict("features")),
        "predict: model(x) in eval vs plain forward": (plain_forward(), ours_predict("features", call=True)),
        "predict: single state (none) vs plain forward": (plain_forward(), ours_predict("none")),
    }


# ---------------------------------------------------------------------------------------- measures
def measure_ops(batch: int = 32, device: str = "cpu") -> list[dict[str, Any]]:
    """Ops per case on ``device``: ``"cpu"``, or ``"meta"`` for the path an accelerator takes (the
    value checks queued with ``_assert_async``; a host read of a value fails there outright)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    labels = torch.randint(N, (batch,), generator=g).to(device)
    rows = []
    for name, (plain, ours) in build_cases(lambda: resnet20(N), images, labels).items():
        if device != "cpu" and not _in_budget(name):
            continue  # torchvision's mixers read values on the host: no meta run for them
        torch.manual_seed(0)
        try:
            base, mine = count_ops(plain), count_ops(ours)
        except (TypeError, ValueError) as error:  # a case this version of the library lacks
            print(f"skipped {name!r}: {type(error).__name__}: {error}")
            continue
        extra = mine.copy()
        extra.subtract(base)
        kind = name.split(":")[0]
        rows.append({
            "case": name,
            "plain_ops": sum(base.values()),
            "ops": sum(mine.values()),
            "extra_ops": sum(mine.values()) - sum(base.values()),
            "host_reads": mine["_local_scalar_dense"] - base["_local_scalar_dense"],
            "queued_checks": mine["_assert_async"],
            "budget": OPS_BUDGET[kind] if _in_budget(name) else None,
            "diff": {k: v for k, v in sorted(extra.items()) if v},
        })
    return rows


def by_hand(images: Tensor, labels: Tensor, mode: str) -> Step:
    """ChannelDrop(k=4) at the head of the tiny model, written out in plain PyTorch: the method's own
    ops (the draw, the mask, the joint index, the 4× wider classifier), none of the library's."""
    torch.manual_seed(0)
    head = nn.Linear(3 * 8 * 8, 4 * N)
    channels = 3 * 8 * 8
    keep = (torch.arange(channels) // (channels // 4) != torch.arange(4).view(4, 1)).float()

    def loss() -> Tensor:
        features = images.flatten(1)
        if mode == "all":  # every row under every state: rows (b, s)
            masked = (features.unsqueeze(1) * keep).flatten(0, 1)
            joint = (labels.unsqueeze(1) * 4 + torch.arange(4)).flatten()
        else:
            states = torch.randint(4, (images.shape[0],))
            masked = features * keep.index_select(0, states)
            joint = torch.add(states, labels, alpha=4)
        return F.cross_entropy(head(masked), joint)

    return _train_step(head, loss)


def measure_micro(batch: int = 128, rounds: int = 15, calls: int = 200) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 8, 8, generator=g)
    labels = torch.randint(N, (batch,), generator=g)

    def tiny() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, N))

    hand = {
        "train: ChannelDrop(k=4) at the head, sample": by_hand(images, labels, "sample"),
        "train: ChannelDrop(k=4) at the head, all": by_hand(images, labels, "all"),
    }

    cases = {}
    for name, (plain, ours) in build_cases(tiny, images, labels).items():
        try:
            ours()
        except (TypeError, ValueError) as error:  # a case this version of the library lacks
            print(f"skipped {name!r}: {type(error).__name__}: {error}")
            continue
        cases[name] = (plain, ours)
    fns = {(name, "plain"): pair[0] for name, pair in cases.items()}
    fns.update({(name, "ours"): pair[1] for name, pair in cases.items()})
    fns.update({(name, "hand"): step for name, step in hand.items() if name in cases})
    for fn in fns.values():  # warm-up: caches, allocator
        for _ in range(20):
            fn()
    samples: dict[Any, list[float]] = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            t0 = time.thread_time()  # this thread's CPU time: other processes' load does not count
            for _ in range(calls):
                fn()
            samples[key].append((time.thread_time() - t0) / calls * 1e6)
    rows = []
    for name in cases:
        plain = statistics.median(samples[(name, "plain")])
        ours = statistics.median(samples[(name, "ours")])
        hand = statistics.median(samples[(name, "hand")]) if (name, "hand") in samples else None
        rows.append({
            "case": name,
            "plain_us": plain,
            "us": ours,
            "extra_us": ours - plain,
            # the fastest round of each: what a call costs when nothing else interferes
            "extra_us_min": min(samples[(name, "ours")]) - min(samples[(name, "plain")]),
            # against the method written out by hand: the library's own cost alone
            "hand_us": hand,
            "own_us": None if hand is None else ours - hand,
            "budget_us": MICROSECONDS_BUDGET if _in_budget(name) else None,
        })
    return rows


def _in_budget(case: str) -> bool:
    """The lines issue 11's budget names: ChannelDrop(k=4) at the head (sample, all) and predict."""
    return case.startswith("predict") or "ChannelDrop(k=4) at the head," in case


def _verdict(value: float, budget: float | None) -> str:
    if budget is None:
        return ""
    return "met" if value <= budget else "MISSED"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", action="store_true", help="count the aten ops of each case (ResNet-20, B=32)")
    p.add_argument(
        "--micro", action="store_true", help="time the library's own CPU cost (flatten+linear, B=128)"
    )
    p.add_argument("--rounds", type=int, default=15, help="--micro: interleaved rounds (median over them)")
    p.add_argument("--calls", type=int, default=200, help="--micro: calls per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    args = p.parse_args(argv)
    if not (args.ops or args.micro):
        args.ops = args.micro = True
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"torch": torch.__version__, "threads": args.threads}
    if args.ops:
        rows = measure_ops()
        result["ops"] = rows
        result["ops_off_cpu"] = off_cpu = measure_ops(device="meta")
        by_case = {r["case"]: r for r in off_cpu}
        width = max(len(r["case"]) for r in rows)
        print(f"{'ops (ResNet-20, B=32)':<{width}}  {'plain':>6}  {'ours':>6}  {'extra':>6}  {'reads':>5}  "
              f"{'off-CPU':>7}  budget")
        for r in rows:
            meta = by_case.get(r["case"])
            worst = max(r["extra_ops"], meta["extra_ops"]) if meta else r["extra_ops"]
            budget = "" if r["budget"] is None else f"≤ {r['budget']} {_verdict(worst, r['budget'])}"
            off = f"{meta['extra_ops']:+7d}" if meta else "      -"
            print(f"{r['case']:<{width}}  {r['plain_ops']:6d}  {r['ops']:6d}  {r['extra_ops']:+6d}  "
                  f"{r['host_reads']:5d}  {off}  {budget}")
        for r in rows:
            print(f"  {r['case']}: {r['diff']}")
        for r in off_cpu:
            print(f"  off-CPU (meta) {r['case']}: {r['diff']}")
    if args.micro:
        rows = measure_micro(rounds=args.rounds, calls=args.calls)
        result["micro"] = rows
        width = max(len(r["case"]) for r in rows)
        head = f"{'µs per call (flatten+linear, B=128)':<{width}}"
        print(f"{head}  {'plain':>7}  {'ours':>7}  {'extra':>7}  {'(min)':>7}  {'by hand':>7}  "
              f"{'own':>7}  budget")
        for r in rows:
            budget = "" if r["budget_us"] is None else (
                f"≤ {r['budget_us']:.0f} {_verdict(r['extra_us'], r['budget_us'])}"
            )
            cells = f"{r['plain_us']:7.1f}  {r['us']:7.1f}  {r['extra_us']:+7.1f}  {r['extra_us_min']:+7.1f}"
            hand_cells = "      -        -" if r["hand_us"] is None else (
                f"{r['hand_us']:7.1f}  {r['own_us']:+7.1f}"
            )
            print(f"{r['case']:<{width}}  {cells}  {hand_cells}  {budget}")
    if args.json:
        write_json(args.json, result)
    return result


def write_json(path: str, result: dict[str, Any]) -> None:
    """Write ``result`` to ``path`` (its folder made as needed) and say so."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
