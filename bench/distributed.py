"""What does data parallelism over processes buy on this machine, and what does Lamina's `fit`
add on top of a hand-written DDP loop?

In one invocation, for the sheet's MLP (784-256-256-10) and a small CNN (two 3x3 convolutions,
28x28x1 inputs), global batch 128, Adam, synthetic data:

- samples/s of `fit` in 1 process and in 2 processes (DataParallel over gloo, one thread per
  process, the processes forked from this one);
- time per step of `fit` under DataParallel against the hand-written DDP loop of the docs
  (the same Lamina model in `DistributedDataParallel`, index-sliced batches, `torch.optim.Adam`),
  both in the same 2 processes, interleaved (their order alternating) over rounds. Each contender
  runs a warm-up epoch and then `--epochs` timed ones; an epoch is timed from its start to its
  end (fit: by a callback, so the time includes the epoch-end reduction of the logs), and
  divided by its steps. `fit`'s once-per-call work (data checks, adapters, callbacks) is reported
  apart, as ms per call. Wall time is rank 0's; CPU time is both processes' together (all their
  threads), which moves less than wall time when other work shares the cores.

Each round gives a ratio fit/hand; the table prints the median ratio and its range over rounds.

Usage: python bench/distributed.py [--rounds 5] [--samples 8192] [--epochs 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue as queue_module
import socket
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

import lamina
from lamina import callbacks, distribution, layers

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


def _clock() -> np.ndarray:
    return np.array([time.perf_counter(), time.process_time()])


class _EpochClock(callbacks.Callback):
    """Wall and CPU seconds of the epochs after the first (the warm-up), and wall seconds of
    all epochs."""

    def __init__(self):
        super().__init__()
        self.total, self.every, self.started = np.zeros(2), 0.0, np.zeros(2)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = _clock()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = _clock() - self.started
        self.every += elapsed[0]
        if epoch > 0:
            self.total += elapsed


def time_fit(kind: str, samples: int, epochs: int) -> tuple[np.ndarray, float]:
    """(wall, CPU) seconds of `epochs` epochs of `fit` after a warm-up epoch, and the wall
    seconds of the call outside its epochs (its once-per-call work)."""
    model = build(kind)
    x, y = data(kind, samples)
    clock = _EpochClock()
    if dist.is_initialized():
        dist.barrier()
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1 + epochs, verbose=0, callbacks=[clock])
    whole = time.perf_counter() - start
    return clock.total, whole - clock.every


def time_hand_written(kind: str, samples: int, epochs: int) -> tuple[np.ndarray, float]:
    """(wall, CPU) seconds of `epochs` epochs of the docs' hand-written DDP loop after a
    warm-up epoch."""
    model = build(kind)
    x, y = (torch.from_numpy(a) for a in data(kind, samples))
    world, rank = dist.get_world_size(), dist.get_rank()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    # fused: fit's Adam takes torch's fused CPU kernel, so the hand loop gets it too.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
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
    total = np.zeros(2)
    for _ in range(epochs):
        started = _clock()
        epoch()
        total += _clock() - started
    return total, 0.0


def _worker(rank: int, world: int, port: int, jobs: list, epochs: int, queue) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if world > 1:
        distribution.initialize(timeout=300)
    results = []
    for contender, kind, samples in jobs:
        if contender == "fit":
            distribution.set_distribution(distribution.DataParallel() if world > 1 else None)
            results.append(time_fit(kind, samples, epochs))
            distribution.set_distribution(None)
        else:
            results.append(time_hand_written(kind, samples, epochs))
    queue.put((rank, results))
    if world > 1:
        dist.destroy_process_group()


def run(world: int, jobs: list, epochs: int) -> list[list]:
    """Each rank's results of `jobs`, run in `world` processes forked from this one."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = [context.Process(target=_worker, args=(rank, world, port, jobs, epochs, queue))
                 for rank in range(world)]
    for process in processes:
        process.start()
    results: dict[int, list] = {}
    while len(results) < world:
        try:
            rank, result = queue.get(timeout=5)
            results[rank] = result
        except queue_module.Empty:
            # A rank that died (its traceback is above) would leave the others waiting.
            failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if failed:
                for process in processes:
                    process.kill()
                raise RuntimeError(f"a benchmark process failed (exit codes {failed})")
    for process in processes:
        process.join()
    return [results[rank] for rank in range(world)]


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per contender")
    args = parser.parse_args()
    kinds = {"mlp": args.samples, "cnn": args.samples // 4}
    one, two, hand, calls = ({k: [] for k in kinds} for _ in range(4))
    for round_ in range(args.rounds):
        jobs = [("fit", kind, n) for kind, n in kinds.items()]
        for kind, (seconds, _) in zip(kinds, run(1, jobs, args.epochs)[0]):
            one[kind].append(seconds)
        # Alternate which contender goes first, so neither always runs on a warmer machine.
        order = ("fit", "hand") if round_ % 2 == 0 else ("hand", "fit")
        jobs = [(contender, kind, n) for kind, n in kinds.items() for contender in order]
        ranks = run(2, jobs, args.epochs)
        for index, (contender, kind, _) in enumerate(jobs):
            # Rank 0's wall time; both processes' CPU time.
            wall = ranks[0][index][0][0]
            cpu = sum(rank[index][0][1] for rank in ranks)
            (two if contender == "fit" else hand)[kind].append(np.array([wall, cpu]))
            if contender == "fit":
                calls[kind].append(ranks[0][index][1])
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, global batch {BATCH}, "
          f"{args.epochs} timed epochs per contender, {args.rounds} rounds: median [min-max]")
    print(f"{'model':6} {'1 proc samples/s':>17} {'2 proc samples/s':>17} {'fit ms/step':>12} "
          f"{'hand ms/step':>13} {'fit/hand wall':>22} {'fit/hand CPU':>22} {'fit call ms':>12}")
    for kind, samples in kinds.items():
        steps = -(-samples // BATCH) * args.epochs
        t1 = statistics.median(s[0] for s in one[kind])
        fit, ours = np.median(two[kind], axis=0), np.median(hand[kind], axis=0)
        wall = [f[0] / h[0] for f, h in zip(two[kind], hand[kind])]
        cpu = [f[1] / h[1] for f, h in zip(two[kind], hand[kind])]
        print(f"{kind:6} {samples * args.epochs / t1:17,.0f} {samples * args.epochs / fit[0]:17,.0f} "
              f"{1000 * fit[0] / steps:12.2f} {1000 * ours[0] / steps:13.2f} {_spread(wall):>22} "
              f"{_spread(cpu):>22} {1000 * statistics.median(calls[kind]):12.1f}")


if __name__ == "__main__":
    main()
