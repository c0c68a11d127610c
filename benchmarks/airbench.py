"""The internal pretext task on airbench94: does ChannelDrop pay against the fastest CIFAR-10 trainer?

`airbench <https://github.com/KellerJordan/cifar10-airbench>`_ (Keller Jordan, MIT; ``pip install
ipt_compose[bench]``) trains a small VGG-like network to 94.01 % mean CIFAR-10 accuracy in a few
seconds of one GPU. This runner keeps everything of airbench's own: its network (``make_net94`` or
``make_net96``), hyper-parameters (``hyp``: batch 1024, decoupled lr/momentum/weight decay, label
smoothing 0.2, the triangular schedule, the whitening layer whose bias trains for 3 epochs), its
``CifarLoader`` (flip and translate on the GPU, alternating flips), its lookahead (``LookaheadState``)
and its test-time augmentation (``infer`` at ``tta_level`` 2: mirror and translate), and changes only
the loss and the head:

* ``plain``: airbench's own training, the loss ``F.cross_entropy(..., label_smoothing=0.2).sum()``.
* ``cd4``: ``Compose([ChannelDrop(k=4)])`` at the classifier's input (one drop per image), the joint
  loss ``joint_cross_entropy(..., label_smoothing=0.2, reduction="sum")``; predicts with
  ``aggregate="features"`` (SLA+AG over the 4 groups, one backbone pass).
* ``cd4-all``: ``Compose([ChannelDrop(k=4)], mode="all")``: every image with all 4 drops (the loss is
  averaged over an image's 4 rows, so each image weighs what it weighs in plain training).
* ``cd4-distill``: ``cd4`` with self-distillation (``JointModel(..., distill=True)``, plus
  ``self_distillation_loss``); predicts with the plain head (``aggregate="distilled"``).

For the joint arms the network's final constant scale (``Mul(1/9)`` after the bias-free classifier)
is moved in front of the classifier: the same function and the same gradients in exact arithmetic,
but the self-distilled plain head and its teacher then see the scale too.

Protocol (the issue's rule: each arm its own best schedule, chosen on training data only): every
configuration trains on the training set minus ``--holdout`` class-balanced images with each
learning rate of ``--lr-factors`` × airbench's own and each of ``--select-seeds``; the factor with the
best mean held-out accuracy (with TTA) is then run with ``--runs`` seeds on the full training set and
evaluated on the test set. Each run appends one JSON line to ``--jsonl``; runs already there are
skipped, so a study resumes. ``--report`` prints mean ± standard error per configuration and the
difference to plain with its 95 % interval. CIFAR-10 comes from an ImageFolder copy (``--data``),
decoded once into airbench's ``train.pt``/``test.pt`` (``--cache``): nothing downloads::

    python benchmarks/airbench.py --data ../shared/data/cifar10 --runs 25 --workers 4
    python benchmarks/airbench.py --report

airbench's ``make_net`` places the network with ``.cuda()``; with ``--device cpu`` (the smoke tests)
that one call is redirected to the CPU, nothing else changes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from _data import ImageSet, image_folder  # examples/_data.py

from ipt_compose import (
    ChannelDrop,
    Compose,
    JointModel,
    joint_cross_entropy,
    self_distillation_loss,
)

HERE = Path(__file__).resolve().parent  # this file is named like the airbench package: see package()
DEFAULT_JSONL = "benchmarks/results/airbench.jsonl"
CONFIGS = ("plain", "cd4", "cd4-all", "cd4-distill")
AGGREGATE = {"plain": None, "cd4": "features", "cd4-all": "features", "cd4-distill": "distilled"}


def package(module: str = "") -> Any:
    """The installed ``airbench`` package (or its submodule ``module``), never this file.

    This file is named like the package, so wherever ``benchmarks/`` is on ``sys.path`` (a script run
    from there, or another benchmark that put it there) a plain ``import airbench`` could find it:
    import with that folder left out, and drop a stray entry that is not the package.
    """
    stray = sys.modules.get("airbench")
    if stray is not None and not hasattr(stray, "__path__"):
        del sys.modules["airbench"]
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    try:
        importlib.import_module("airbench")
        return importlib.import_module(f"airbench.{module}" if module else "airbench")
    except ImportError:
        raise SystemExit("airbench is missing: pip install 'ipt_compose[bench]'") from None
    finally:
        sys.path[:] = saved


def _airbench(variant: str) -> Any:
    """airbench's module for ``variant`` (``airbench94`` or ``airbench96``): ``hyp`` and ``make_net``."""
    modules = {"airbench94": "lib_airbench94", "airbench96": "lib_airbench96"}
    if variant not in modules:
        raise SystemExit(f"--variant must be one of {list(modules)}, got {variant!r}")
    return package(modules[variant])


@contextlib.contextmanager
def placed_on(device: torch.device) -> Iterator[None]:
    """Let airbench's ``make_net`` (which calls ``.cuda()``) build the network on ``device``."""
    if device.type == "cuda":
        yield
        return
    with mock.patch.object(nn.Module, "cuda", lambda self, *args, **kwargs: self.to(device)):
        yield


# ------------------------------------------------------------------------------------ data
def prepare(data: Path, cache: Path, limit_train: int | None = None,
            limit_test: int | None = None) -> Path:
    """Write airbench's ``train.pt``/``test.pt`` (``uint8 (N, 32, 32, 3)``, labels, classes) from JPEGs.

    Args:
        data: an ImageFolder tree with ``train/`` and ``test/`` (the CIFAR-10 JPEG copy).
        cache: the folder ``CifarLoader`` reads; reused if the files are there.
        limit_train: keep a class-balanced subset of this many training images (smoke tests).
        limit_test: likewise for the test set.

    Returns:
        The folder written, ``cache/<tree>-<limit_train>-<limit_test>`` (``<tree>``: a digest of the
        tree's path; ``all`` for a full set).
    """
    tree = hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:10]
    cache = cache / f"{tree}-{limit_train or 'all'}-{limit_test or 'all'}"
    cache.mkdir(parents=True, exist_ok=True)
    for split, limit in (("train", limit_train), ("test", limit_test)):
        path = cache / f"{split}.pt"
        if path.exists():
            continue
        images = image_folder(data / split, limit=limit)
        if tuple(images.images.shape[1:]) != (3, 32, 32):
            raise SystemExit(f"airbench needs 32×32 RGB images, got {tuple(images.images.shape[1:])}")
        partial = path.with_suffix(".tmp")
        torch.save({"images": images.images.permute(0, 2, 3, 1).contiguous(), "labels": images.labels,
                    "classes": images.classes}, partial)
        partial.replace(path)
    return cache


def loaders(cache: Path, hyp: dict[str, Any], device: torch.device, holdout: int, seed: int = 0,
            batch_size: int | None = None) -> tuple[Any, Any]:
    """airbench's training loader and the evaluation loader (the test set, or held-out training images).

    With ``holdout`` the loader's images are replaced before the first epoch (which ``CifarLoader``
    allows) by the training set minus ``holdout`` class-balanced images, and the evaluation loader
    holds those images.
    """
    CifarLoader = package("utils").CifarLoader

    batch = batch_size or hyp["opt"]["batch_size"]
    train = CifarLoader(str(cache), train=True, batch_size=batch, aug=hyp["aug"], altflip=True,
                        gpu=device)
    test = CifarLoader(str(cache), train=False, batch_size=2000, gpu=device)
    if holdout:
        rest, held = ImageSet(train.images, train.labels, list(train.classes)).split(holdout, seed)
        train.images, train.labels = rest.images, rest.labels
        test.images, test.labels = held.images, held.labels
    return train, test


# ------------------------------------------------------------------------------------ training
def _triangle(steps: int, start: float, end: float, peak: float) -> Tensor:
    """airbench's learning-rate shape: linear from ``start`` up to 1 at ``peak`` of the steps, then
    down to ``end`` (float32, so that the values equal airbench's ``triangle``)."""
    knots = torch.tensor([0, int(peak * steps), steps])
    values = torch.tensor([start, 1.0, end])
    x = torch.arange(1 + steps)
    slope = (values[1:] - values[:-1]) / (knots[1:] - knots[:-1])
    offset = values[:-1] - slope * knots[:-1]
    segment = (torch.sum(torch.ge(x[:, None], knots[None, :]), 1) - 1).clamp(0, len(slope) - 1)
    return slope[segment] * x + offset[segment]


class _Scores(nn.Module):
    """``predict(x, aggregate=...)`` as a module, so that airbench's ``infer`` (and its TTA) can run it."""

    def __init__(self, model: JointModel, aggregate: str) -> None:
        super().__init__()
        self.model = model
        self.aggregate = aggregate

    def forward(self, x: Tensor) -> Tensor:
        return self.model.predict(x, aggregate=self.aggregate)  # type: ignore[arg-type]


def build(config: str, make_net: Callable[[], nn.Sequential], device: torch.device,
          ) -> tuple[nn.Module, nn.Sequential]:
    """``(the model trained, airbench's network inside it)`` for a configuration."""
    with placed_on(device):
        net = make_net()
    if config == "plain":
        return net, net
    *body, classifier, scale = net  # airbench ends with Linear(bias=False), Mul(1/9)
    if not isinstance(classifier, nn.Linear) or classifier.bias is not None:
        raise SystemExit("expected airbench's network to end with a bias-free Linear and a Mul")
    net = nn.Sequential(*body, scale, classifier)  # (W x) / 9 == W (x / 9): same function
    pretext = Compose([ChannelDrop(k=4)], num_classes=10, mode="all" if config == "cd4-all" else "sample")
    return JointModel(net, pretext, 10, distill=config == "cd4-distill"), net


def train_one(config: str, seed: int, lr: float, hyp: dict[str, Any], make_net: Callable[[], nn.Sequential],
              train_loader: Any, test_loader: Any, device: torch.device,
              epochs: float | None = None) -> dict[str, Any]:
    """Train one configuration with airbench's recipe; return accuracies (without / with TTA) and time.

    The order of random draws for ``plain`` is airbench's own (``airbench.utils.train``), so that at
    one seed the two give the same network; the pretext states come from a separate generator.
    """
    utils = package("utils")
    LookaheadState, infer, init_whitening_conv = (
        utils.LookaheadState, utils.infer, utils.init_whitening_conv)

    opt = hyp["opt"]
    epochs = opt["train_epochs"] if epochs is None else epochs
    torch.manual_seed(seed)
    train_loader.epoch = 0
    batch_size = train_loader.batch_size
    momentum = opt["momentum"]
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))  # airbench's decoupled parametrisation
    lr_sgd = lr / kilostep_scale
    wd = opt["weight_decay"] * batch_size / kilostep_scale
    lr_biases = lr_sgd * opt["bias_scaler"]
    total_steps = math.ceil(len(train_loader) * epochs)
    model, net = build(config, make_net, device)
    norm_biases = [p for k, p in model.named_parameters() if "norm" in k and p.requires_grad]
    other = [p for k, p in model.named_parameters() if "norm" not in k and p.requires_grad]
    optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                                 dict(params=other, lr=lr_sgd, weight_decay=wd / lr_sgd)],
                                momentum=momentum, nesterov=True)
    schedule = _triangle(total_steps, start=0.2, end=0.07, peak=0.23)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule[i])
    alpha = 0.95**5 * (torch.arange(total_steps + 1) / total_steps) ** 3
    lookahead = LookaheadState(model)
    pretext: Compose | None = getattr(model, "pretext", None)
    repeats = 4 if config == "cd4-all" else 1
    generator = torch.Generator(device=device).manual_seed(seed)
    smoothing = opt["label_smoothing"]

    _sync(device)
    t0 = time.perf_counter()
    init_whitening_conv(net[0], train_loader.normalize(train_loader.images[:5000]))
    steps = 0
    for epoch in range(math.ceil(epochs)):
        net[0].bias.requires_grad = epoch < opt["whiten_bias_epochs"]
        model.train()
        for inputs, labels in train_loader:
            if pretext is None:
                loss = F.cross_entropy(model(inputs), labels, label_smoothing=smoothing,
                                       reduction="none").sum()
            else:
                batch = pretext(inputs, labels, generator=generator)
                if config == "cd4-distill":
                    out = model(batch.inputs, batch.states, return_plain=True)
                    loss = joint_cross_entropy(out.joint.float(), batch.target, label_smoothing=smoothing,
                                               reduction="sum") + self_distillation_loss(
                        out.plain.float(), out.teacher.float(), batch.target, reduction="sum")
                else:
                    logits = model(batch.inputs, batch.states).float()
                    loss = joint_cross_entropy(logits, batch.target, label_smoothing=smoothing,
                                               reduction="sum") / repeats
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps += 1
            if steps % 5 == 0:
                lookahead.update(model, decay=alpha[steps].item())
            if steps >= total_steps:
                lookahead.update(model, decay=1.0)
                break
    _sync(device)
    seconds = time.perf_counter() - t0

    scorer: nn.Module = model if config == "plain" else _Scores(model, AGGREGATE[config])  # type: ignore[arg-type]
    labels = test_loader.labels
    accuracy = {}
    for level in (0, hyp["net"]["tta_level"]):
        logits = infer(scorer, test_loader, tta_level=level)
        accuracy[level] = float((logits.argmax(1) == labels).float().mean())
    return {"accuracy": accuracy[0], "accuracy_tta": accuracy[hyp["net"]["tta_level"]],
            "seconds": seconds, "steps": steps, "model": model}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------ plan
@dataclass(frozen=True)
class Run:
    """One airbench run: configuration, seed, learning-rate factor and phase (select or final)."""

    config: str
    seed: int
    lr_factor: float
    phase: str


def parse_seeds(text: str) -> list[int]:
    """``"0-24"`` or ``"0,1,5"`` → seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part.strip()[1:]:
            lo, hi = part.split("-")
            seeds += range(int(lo), int(hi) + 1)
        elif part.strip():
            seeds.append(int(part))
    return seeds


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _identity(line: dict[str, Any]) -> str:
    return json.dumps([line["variant"], line["config"], line["seed"], line["lr_factor"], line["phase"],
                       line["holdout"], line.get("setup")], sort_keys=True)


def setup_of(args: argparse.Namespace) -> dict[str, Any]:
    """What else must match for runs to be compared (smoke-test sizes differ from the study's)."""
    return {"epochs": args.epochs, "widths": args.widths, "batch_size": args.batch_size,
            "limit_train": args.limit_train, "limit_test": args.limit_test}


def execute(runs: list[Run], args: argparse.Namespace, shard: str = "0/1") -> None:
    """Train this shard's runs that ``--jsonl`` does not hold yet, one JSON line each."""
    module = _airbench(args.variant)
    hyp = module.hyp
    make_net = getattr(module, f"make_net{args.variant[-2:]}")
    if args.widths:
        block1, block2, block3 = (int(w) for w in args.widths.split(","))
        make_net = functools.partial(make_net, widths={"block1": block1, "block2": block2,
                                                       "block3": block3})
    device = torch.device(args.device)
    cache = prepare(Path(args.data), Path(args.cache), args.limit_train, args.limit_test)
    jsonl = Path(args.jsonl)
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    index, count = (int(v) for v in shard.split("/"))
    setup = setup_of(args)
    done = {_identity(r) for r in read_lines(jsonl)}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        platform.processor() or platform.machine())
    data: dict[int, tuple[Any, Any]] = {}
    for i, run in enumerate(runs):
        holdout = args.holdout if run.phase == "select" else 0
        line = {"variant": args.variant, "config": run.config, "seed": run.seed,
                "lr_factor": run.lr_factor, "phase": run.phase, "holdout": holdout, "setup": setup}
        if i % count != index or _identity(line) in done:
            continue
        if holdout not in data:
            data.clear()
            data[holdout] = loaders(cache, hyp, device, holdout, batch_size=args.batch_size)
        lr = hyp["opt"]["lr"] * run.lr_factor
        out = train_one(run.config, run.seed, lr, hyp, make_net, *data[holdout], device, args.epochs)
        line.update(lr=lr, accuracy=out["accuracy"], accuracy_tta=out["accuracy_tta"],
                    seconds=out["seconds"], steps=out["steps"], device_name=name,
                    torch=torch.__version__, airbench=_version())
        print(f"[{args.variant} {run.config} {run.phase} lr×{run.lr_factor:g} seed {run.seed}] "
              f"{100 * out['accuracy']:.2f} % ({100 * out['accuracy_tta']:.2f} % with TTA) "
              f"in {out['seconds']:.1f} s", flush=True)
        _sweep().append_line(jsonl, line)  # one write: parallel workers never interleave


def _version() -> str:
    from importlib.metadata import version

    return version("airbench")  # the installed distribution's metadata, whatever sys.path holds


def spawn(runs: list[Run], args: argparse.Namespace, argv: list[str]) -> None:
    """Run the plan on ``--workers`` processes at once on the one GPU, or in this process."""
    if args.workers <= 1:
        execute(runs, args)
        return
    prepare(Path(args.data), Path(args.cache), args.limit_train, args.limit_test)  # once, before workers
    with tempfile.TemporaryDirectory() as tmp:
        plan_file = Path(tmp) / "plan.json"
        plan_file.write_text(json.dumps([asdict(r) for r in runs]))
        procs = [subprocess.Popen([sys.executable, __file__, *argv, "--plan-file", str(plan_file),
                                   "--shard", f"{i}/{args.workers}"]) for i in range(args.workers)]
        codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"workers failed with exit codes {codes}")


def choose(lines: list[dict[str, Any]], args: argparse.Namespace, configs: list[str]) -> dict[str, float]:
    """Each configuration's learning-rate factor with the best mean held-out accuracy (with TTA)."""
    setup = setup_of(args)
    chosen = {}
    for config in configs:
        scores: dict[float, list[float]] = {}
        for r in lines:
            if (r["phase"] == "select" and r["config"] == config and r["variant"] == args.variant
                    and r.get("setup") == setup and r["holdout"] == args.holdout):
                scores.setdefault(r["lr_factor"], []).append(r["accuracy_tta"])
        if not scores:
            raise SystemExit(f"no held-out runs of {config}")
        chosen[config] = max(scores, key=lambda f: statistics.mean(scores[f]))
    return chosen


# ------------------------------------------------------------------------------------ report
def report(args: argparse.Namespace) -> str:
    """Mean ± standard error per configuration (final runs) and the difference to plain, 95 % CI."""
    difference = _sweep().difference

    lines = [r for r in read_lines(Path(args.jsonl))]
    if not lines:
        raise SystemExit(f"no runs in {args.jsonl}")
    out = []
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for r in lines:
        key = (r["variant"], json.dumps(r.get("setup"), sort_keys=True))
        groups.setdefault(key, {}).setdefault(f"{r['phase']}|{r['config']}", []).append(r)
    for (variant, setup), runs in sorted(groups.items()):
        out.append(f"{variant}, set-up {setup}, device {_devices(runs)}")
        out.append("| configuration | lr (× airbench) | runs | accuracy % | with TTA % | "
                   "Δ TTA vs plain, 95 % CI | s/run |")
        out.append("| --- | --- | --- | --- | --- | --- | --- |")
        plain = [100 * r["accuracy_tta"] for r in runs.get("final|plain", [])]
        for config in CONFIGS:
            rs = runs.get(f"final|{config}")
            if not rs:
                continue
            acc = [100 * r["accuracy"] for r in rs]
            tta = [100 * r["accuracy_tta"] for r in rs]
            delta = "—"
            if config != "plain" and plain:
                d, half = difference(tta, plain)
                delta = f"{d:+.2f} [{d - half:+.2f}, {d + half:+.2f}]"
            factors = sorted({r["lr_factor"] for r in rs})
            out.append(f"| {config} | {', '.join(f'{f:g}' for f in factors)} | {len(rs)} | "
                       f"{_mean_se(acc)} | {_mean_se(tta)} | {delta} | "
                       f"{statistics.median(r['seconds'] for r in rs):.1f} |")
        selection = {k.split("|")[1]: v for k, v in runs.items() if k.startswith("select|")}
        if selection:
            out.append("")
            out.append("Held-out choice (mean accuracy with TTA on the held-out training images):")
            out.append("| configuration | " + " | ".join(
                f"lr × {f:g}" for f in sorted({r["lr_factor"] for v in selection.values() for r in v}))
                + " |")
            factors = sorted({r["lr_factor"] for v in selection.values() for r in v})
            out.append("| --- |" + " --- |" * len(factors))
            for config in CONFIGS:
                if config not in selection:
                    continue
                cells = []
                for f in factors:
                    vals = [100 * r["accuracy_tta"] for r in selection[config] if r["lr_factor"] == f]
                    cells.append(f"{statistics.mean(vals):.2f} (n={len(vals)})" if vals else "—")
                out.append(f"| {config} | " + " | ".join(cells) + " |")
        out.append("")
    text = "\n".join(out)
    print(text)
    return text


def _sweep() -> Any:
    """``benchmarks/sweep.py`` (its Welch interval), loaded by path."""
    import importlib.util

    if "_benchmark_sweep" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_benchmark_sweep", HERE / "sweep.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["_benchmark_sweep"]


def _mean_se(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) / math.sqrt(len(values)):.2f}"


def _devices(runs: dict[str, list[dict[str, Any]]]) -> str:
    names = {r.get("device_name", "?") for rs in runs.values() for r in rs}
    versions = {r.get("torch", "?") for rs in runs.values() for r in rs}
    return f"{', '.join(sorted(names))}; torch {', '.join(sorted(versions))}"


# ------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/cifar10",
                   help="CIFAR-10 as an ImageFolder tree (train/, test/)")
    p.add_argument("--cache", default="runs/airbench_data",
                   help="where airbench's train.pt/test.pt are written from --data")
    p.add_argument("--jsonl", default=DEFAULT_JSONL, help="results, one JSON line per run")
    p.add_argument("--variant", default="airbench94", choices=("airbench94", "airbench96"),
                   help="airbench94 (9.9 epochs) or the longer airbench96 (40 epochs, wider, cutout)")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of {CONFIGS}")
    p.add_argument("--lr-factors", default="0.7,1,1.4",
                   help="learning rates tried on the held-out split, as factors of airbench's own")
    p.add_argument("--select-seeds", default="1000-1002", help="seeds of the held-out choice")
    p.add_argument("--holdout", type=int, default=5000,
                   help="class-balanced training images held out for the choice")
    p.add_argument("--runs", type=int, default=25, help="final runs per configuration: seeds 0..runs-1")
    p.add_argument("--seeds", default=None, help="explicit final seeds instead of --runs, e.g. 0-24")
    p.add_argument("--stage", default="all", choices=("all", "select", "final"),
                   help="select: only the held-out grid; final: only the chosen runs")
    p.add_argument("--workers", type=int, default=1, help="parallel processes on the one GPU")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--prepare-only", action="store_true", help="write train.pt/test.pt and exit")
    p.add_argument("--report", action="store_true", help="summarise --jsonl and exit")
    # smaller than the study, for smoke tests
    p.add_argument("--epochs", type=float, default=None, help="override airbench's epochs")
    p.add_argument("--widths", default=None, help="override the block widths, e.g. 8,16,16")
    p.add_argument("--batch-size", type=int, default=None, help="override airbench's batch size")
    p.add_argument("--limit-train", type=int, default=None, help="class-balanced training subset")
    p.add_argument("--limit-test", type=int, default=None, help="class-balanced test subset")
    p.add_argument("--plan-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the held-out choice, then the final runs at each configuration's choice; or report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.report:
        report(args)
        return
    if args.prepare_only:
        prepare(Path(args.data), Path(args.cache), args.limit_train, args.limit_test)
        return
    if args.plan_file:
        execute([Run(**r) for r in json.loads(Path(args.plan_file).read_text())], args, args.shard)
        return
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configurations {unknown}; choose from {CONFIGS}")
    factors = [float(f) for f in args.lr_factors.split(",") if f]
    if args.stage in ("all", "select"):
        spawn([Run(c, s, f, "select") for s in parse_seeds(args.select_seeds) for f in factors
               for c in configs], args, argv)
    if args.stage in ("all", "final"):
        chosen = choose(read_lines(Path(args.jsonl)), args, configs)
        print("chosen on held-out data (lr × airbench's): "
              + ", ".join(f"{c} {f:g}" for c, f in chosen.items()), flush=True)
        seeds = parse_seeds(args.seeds) if args.seeds else list(range(args.runs))
        spawn([Run(c, s, chosen[c], "final") for s in seeds for c in configs], args, argv)


if __name__ == "__main__":
    main()
