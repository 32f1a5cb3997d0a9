"""What does data parallelism over processes buy on this machine, and what does Lamina's `fit`
add on top of a hand-written DDP loop?

In one invocation, for the sheet's MLP (784-256-256-10) and a small CNN (two 3x3 convolutions,
28x28x1 inputs), global batch 128, Adam, synthetic data:

- samples/s of `fit` in 1 process and in 2 processes (DataParallel over gloo, one thread per
  process, the processes forked from this one);
- ms per step of `fit` under DataParallel against the hand-written DDP loop of the docs
  (the same Lamina model in `DistributedDataParallel`, index-sliced batches, `torch.optim.Adam`),
  both in 2 processes, interleaved over rounds; the ratio is Lamina's overhead per step.

Usage: python bench/distributed.py [--rounds 3] [--samples 8192]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

import lamina
from lamina import distribution, layers

BATCH = 128


def build(kind: str):
    lamina.set_random_seed(0)
    if kind == "mlp":
        model = lamina.Sequential([lamina.Input((28, 28)), layers.Flatten(),
                                   layers.Dense(256, activation="relu"),
                                   layers.Dense(256, activation="relu"), layers.Dense(10)])
    else:
        model = lamina.Sequential([lamina.Input((28, 28, 1)),
                                   layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),
                                   layers.Conv2D(32, 3, activation="relu"),
                                   layers.GlobalAveragePooling2D(), layers.Dense(10)])
    model.compile(optimizer=lamina.optimizers.Adam(1e-3),
                  loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data(kind: str, samples: int):
    rng = np.random.default_rng(0)
    shape = (samples, 28, 28) if kind == "mlp" else (samples, 28, 28, 1)
    return rng.random(shape, dtype=np.float32), rng.integers(0, 10, samples).astype(np.int64)


def time_fit(kind: str, samples: int) -> float:
    """Seconds of one epoch of `fit` (after a warm-up epoch)."""
    model = build(kind)
    x, y = data(kind, samples)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    if dist.is_initialized():
        dist.barrier()
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return time.perf_counter() - start


def time_hand_written(kind: str, samples: int) -> float:
    """Seconds of one epoch of the docs' hand-written DDP loop (after a warm-up epoch)."""
    model = build(kind)
    x, y = (torch.from_numpy(a) for a in data(kind, samples))
    world, rank = dist.get_world_size(), dist.get_rank()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    local = BATCH // world

    def epoch() -> None:
        order = torch.randperm(samples)
        dist.broadcast(order, 0)
        for start in range(0, samples, BATCH):
            index = order[start:start + BATCH][rank * local:(rank + 1) * local]
            loss = F.cross_entropy(ddp(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    epoch()
    dist.barrier()
    start = time.perf_counter()
    epoch()
    return time.perf_counter() - start


def _worker(rank: int, world: int, port: int, jobs: list, queue) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if world > 1:
        distribution.initialize(timeout=300)
    results = []
    for contender, kind, samples in jobs:
        if contender == "fit":
            strategy = distribution.DataParallel() if world > 1 else None
            distribution.set_distribution(strategy)
            results.append(time_fit(kind, samples))
            distribution.set_distribution(None)
        else:
            results.append(time_hand_written(kind, samples))
    if rank == 0:
        queue.put(results)
    if world > 1:
        dist.destroy_process_group()


def run(world: int, jobs: list) -> list[float]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = [context.Process(target=_worker, args=(rank, world, port, jobs, queue))
                 for rank in range(world)]
    for process in processes:
        process.start()
    results = queue.get(timeout=1800)
    for process in processes:
        process.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=8192)
    args = parser.parse_args()
    kinds = {"mlp": args.samples, "cnn": args.samples // 4}
    one, two, hand = {k: [] for k in kinds}, {k: [] for k in kinds}, {k: [] for k in kinds}
    for _ in range(args.rounds):
        jobs = [("fit", kind, n) for kind, n in kinds.items()]
        for kind, seconds in zip(kinds, run(1, jobs)):
            one[kind].append(seconds)
        jobs = [(contender, kind, n) for kind, n in kinds.items() for contender in ("fit", "hand")]
        times = iter(run(2, jobs))
        for kind in kinds:
            two[kind].append(next(times))
            hand[kind].append(next(times))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, global batch {BATCH}, "
          f"median of {args.rounds} rounds")
    print(f"{'model':6} {'1 proc samples/s':>17} {'2 proc samples/s':>17} {'2/1':>6} "
          f"{'fit ms/step':>12} {'hand DDP ms/step':>17} {'fit/hand':>9}")
    for kind, samples in kinds.items():
        steps = -(-samples // BATCH)
        t1, t2, th = (statistics.median(v[kind]) for v in (one, two, hand))
        print(f"{kind:6} {samples / t1:17,.0f} {samples / t2:17,.0f} {t1 / t2:6.2f} "
              f"{1000 * t2 / steps:12.2f} {1000 * th / steps:17.2f} {t2 / th:9.3f}")


if __name__ == "__main__":
    main()
