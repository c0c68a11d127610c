"""Distributed data-parallel training with a joint label: ChannelDrop + Rotation, one process per device.

Launch with torchrun (CPU processes talk over gloo, GPUs over nccl)::

    torchrun --standalone --nproc_per_node=2 examples/train_ddp.py --steps 200
    torchrun --standalone --nproc_per_node=8 examples/train_ddp.py \
        --data digits --amp --channels-last --compile

What each rank does:

* reads its shard of the data through a ``DistributedSampler`` (``set_epoch`` every epoch);
* draws its pretext states from its **own** generator, seeded ``seed + rank`` — ranks must not
  repeat each other's rotations and dropped groups, or the effective batch loses variety;
* runs ``JointModel`` wrapped in ``DistributedDataParallel`` (the same initial weights everywhere:
  one global seed for the model, DDP also broadcasts rank 0's at wrap time) and the joint loss;
* keeps its metrics as tensors on the device (no host sync per step) and reduces them across ranks
  with ``all_reduce`` only when it logs;
* at the end computes a checksum of its parameters; rank 0 gathers every rank's checksum, checks
  that they agree (DDP keeps replicas identical) and prints it. ``--checksum-dir`` makes every rank
  also write its checksum to ``rank<R>.txt`` there.

Data: ``--data synthetic`` (default; class-dependent patterns plus noise, made on the fly, offline)
or ``--data digits`` (scikit-learn's 8×8 digits, offline, upscaled to 16×16).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from ipt_compose import ChannelDrop, Compose, JointModel, Rotation, joint_cross_entropy

NUM_CLASSES = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=200, help="optimizer steps (per rank; all ranks step together)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per rank per step")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--data", choices=("synthetic", "digits"), default="synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend",
        choices=("auto", "gloo", "nccl"),
        default="auto",
        help="auto: nccl with CUDA, gloo otherwise",
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per rank")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA or CPU)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last images and model")
    parser.add_argument("--compile", action="store_true", help="torch.compile the DDP model")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--checksum-dir", type=Path, default=None, help="write rank<R>.txt checksums here")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------ data
def synthetic(n: int, size: int = 16, seed: int = 0) -> TensorDataset:
    """``n`` images: a fixed random pattern per class plus noise, ``uint8`` ``(n, 3, size, size)``."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(NUM_CLASSES, 3, size, size, generator=g)
    labels = torch.randint(NUM_CLASSES, (n,), generator=g)
    images = 0.6 * templates[labels] + 0.4 * torch.rand(n, 3, size, size, generator=g)
    return TensorDataset((images * 255).round().to(torch.uint8), labels)


def digits(size: int = 16) -> tuple[TensorDataset, TensorDataset]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    split = len(order) * 4 // 5
    train, test = order[:split], order[split:]
    return TensorDataset(images[train], labels[train]), TensorDataset(images[test], labels[test])


def datasets(kind: str) -> tuple[TensorDataset, TensorDataset]:
    if kind == "digits":
        return digits()
    return synthetic(4096, seed=0), synthetic(512, seed=1)


# ------------------------------------------------------------------------------------ model
def small_cnn(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]

    return nn.Sequential(
        *block(3, 32),
        *block(32, 32),
        nn.MaxPool2d(2),
        *block(32, 64),
        *block(64, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


def checksum(module: nn.Module) -> float:
    """A position-sensitive float64 checksum of every parameter (equal replicas, equal checksums)."""
    total = torch.zeros((), dtype=torch.float64)
    for i, p in enumerate(module.parameters()):
        flat = p.detach().double().flatten().cpu()
        total += ((torch.arange(flat.numel(), dtype=torch.float64) % 97 + 1 + i) * flat).sum()
    return float(total)


# ------------------------------------------------------------------------------------ training
def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    use_cuda = torch.cuda.is_available() and args.backend != "gloo"
    backend = "nccl" if use_cuda else "gloo" if args.backend == "auto" else args.backend
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    amp_dtype = torch.bfloat16

    train_set, test_set = datasets(args.data)
    sampler = DistributedSampler(
        train_set, num_replicas=world, rank=rank, shuffle=True, seed=args.seed, drop_last=True
    )
    loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=use_cuda,
        persistent_workers=args.workers > 0,
    )

    pretext = Compose([ChannelDrop(k=4), Rotation()], num_classes=NUM_CLASSES)
    # per-rank pretext draws: a generator on the device, seeded differently on every rank
    generator = torch.Generator(device=device).manual_seed(args.seed * 1000 + rank)

    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = JointModel(small_cnn(), pretext, num_classes=NUM_CLASSES).to(device, memory_format=memory_format)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if use_cuda else None)
    step_model = torch.compile(ddp) if args.compile else ddp
    optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=max(args.steps, 1))

    metrics = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, joint-correct, rows
    step, epoch, start = 0, 0, time.perf_counter()
    last: dict[str, float] = {}
    while step < args.steps:
        sampler.set_epoch(epoch)
        for images, labels in loader:
            images = images.to(device, non_blocking=True).float().div_(255)
            images = images.contiguous(memory_format=memory_format)
            labels = labels.to(device, non_blocking=True)
            batch = pretext(images, labels, generator=generator)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=args.amp):
                logits = step_model(batch.inputs, batch.states)
            loss = joint_cross_entropy(logits.float(), batch.target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():  # device-side accumulation: no .item() in the step
                dense = batch.target.dense()
                metrics += torch.stack(
                    [
                        loss.detach().double() * labels.shape[0],
                        (logits.argmax(dim=1) == dense.argmax(dim=1)).sum().double(),
                        torch.tensor(float(labels.shape[0]), device=device, dtype=torch.float64),
                    ]
                )
            step += 1
            if step % args.log_every == 0 or step == args.steps:
                reduced = metrics.clone()
                dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
                last = {
                    "step": step,
                    "loss": float(reduced[0] / reduced[2]),
                    "joint_acc": float(reduced[1] / reduced[2]),
                }
                metrics.zero_()
                if rank == 0:
                    print(
                        json.dumps(
                            {**last, "images_per_s": round(float(reduced[2]) / (time.perf_counter() - start))}
                        ),
                        flush=True,
                    )
                start = time.perf_counter()
            if step >= args.steps:
                break
        epoch += 1

    # evaluation: every rank scores its shard, the counts are summed across ranks
    model.eval()
    test_sampler = DistributedSampler(test_set, num_replicas=world, rank=rank, shuffle=False)
    correct = torch.zeros(2, device=device, dtype=torch.float64)
    with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=args.amp):
        for images, labels in DataLoader(test_set, batch_size=256, sampler=test_sampler):
            images = images.to(device).float().div_(255).contiguous(memory_format=memory_format)
            scores = model.predict(images)
            correct += torch.stack(
                [
                    (scores.argmax(1) == labels.to(device)).sum().double(),
                    torch.tensor(float(len(labels)), dtype=torch.float64, device=device),
                ]
            )
    dist.all_reduce(correct, op=dist.ReduceOp.SUM)

    mine = checksum(model)
    if args.checksum_dir is not None:
        args.checksum_dir.mkdir(parents=True, exist_ok=True)
        (args.checksum_dir / f"rank{rank}.txt").write_text(repr(mine))
    gathered: list[float] = [0.0] * world
    dist.all_gather_object(gathered, mine)
    result = {
        **last,
        "test_acc": float(correct[0] / correct[1]),
        "checksum": mine,
        "world_size": world,
        "backend": backend,
    }
    if rank == 0:
        if len(set(gathered)) != 1:
            raise RuntimeError(f"replicas diverged: parameter checksums per rank {gathered}")
        print(json.dumps({"final": result}), flush=True)
    dist.barrier()  # every rank is done before any tears the group down (gloo aborts otherwise)
    dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
