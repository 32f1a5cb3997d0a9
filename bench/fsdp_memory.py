"""How much memory does a unit per large layer save under FSDP, against the whole model as one
FSDP unit?

Two processes (gloo, one thread each, forked from this one) train an MLP of several large Dense
layers (1024-2048-2048-2048-2048-10: 14.7M weights, 56 MiB) under `FSDP`, once with
`min_unit_size` above the model's size (one unit: every weight gathered whole for the whole
forward and backward) and once with the default (one unit per large layer: each gathered only
while it runs). Reported per process: the peak resident memory (Linux VmHWM, restarted before
the timed steps) above what the process held before them (its shards of the weights and
optimizer state, the data): what a step's gathering, gradients and optimizer update cost.
The contenders alternate over rounds, each in its own pair of processes; the table gives the
median and range, and the ratio per round.

Usage: python bench/fsdp_memory.py [--rounds 3] [--steps 3]
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import socket
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist

import lamina
from lamina import distribution, layers
from lamina.distribution.distribution_lib import MIN_UNIT_SIZE

BATCH = 128
WIDE = (1024, 2048, 2048, 2048, 2048, 10)
CONTENDERS = {"one unit": 10**12, "per layer": MIN_UNIT_SIZE}


def _kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def step_memory(min_unit_size: int, steps: int) -> tuple[float, float]:
    """(MiB above the memory held before, seconds) per training step of this process."""
    distribution.set_distribution(distribution.FSDP(min_unit_size=min_unit_size))
    lamina.set_random_seed(0)
    model = lamina.Sequential(
        [lamina.Input((WIDE[0],))]
        + [layers.Dense(units, activation="relu") for units in WIDE[1:-1]]
        + [layers.Dense(WIDE[-1])])
    model.compile(optimizer=lamina.optimizers.Adam(1e-3),
                  loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.random((BATCH * steps, WIDE[0]), dtype=np.float32)
    y = rng.integers(0, WIDE[-1], BATCH * steps).astype(np.int64)
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)  # shards, slots
    dist.barrier()
    before = _kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak (VmHWM) restarts from the current resident size
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    seconds = (time.perf_counter() - start) / steps
    return (_kib("VmHWM") - before) / 1024, seconds


def _worker(rank: int, port: int, min_unit_size: int, steps: int, queue) -> None:
    # Large blocks straight from mmap and back to the system when freed, so the resident peak
    # follows the tensors alive (glibc's adaptive threshold would keep freed blocks resident).
    ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: 1 MiB
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    distribution.initialize(timeout=300)
    queue.put(step_memory(min_unit_size, steps))
    dist.destroy_process_group()


def run(min_unit_size: int, steps: int) -> list[tuple[float, float]]:
    """Each of 2 fresh processes' (MiB, seconds) per step."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = [context.Process(target=_worker, args=(rank, port, min_unit_size, steps, queue))
                 for rank in range(2)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    peaks: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for round_ in range(args.rounds):
        for name in list(CONTENDERS)[::1 if round_ % 2 == 0 else -1]:
            results = run(CONTENDERS[name], args.steps)
            peaks[name].append(max(mib for mib, _ in results))
            times[name].append(max(seconds for _, seconds in results))
    weights = sum(a * b + b for a, b in zip(WIDE, WIDE[1:]))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; FSDP over 2 processes, MLP "
          f"{'-'.join(map(str, WIDE))} ({weights / 1e6:.1f}M weights, {weights * 4 / 2**20:.0f} "
          f"MiB), global batch {BATCH}, {args.rounds} rounds")
    print(f"{'':10} {'peak MiB above held, per process':>34} {'ms/step':>9}")
    for name in CONTENDERS:
        values = peaks[name]
        print(f"{name:10} {statistics.median(values):16.1f} [{min(values):.1f}-{max(values):.1f}]"
              f"{1000 * statistics.median(times[name]):18.0f}")
    memory = [a / b for a, b in zip(peaks["per layer"], peaks["one unit"])]
    speed = [a / b for a, b in zip(times["per layer"], times["one unit"])]
    print(f"per layer / one unit: memory {statistics.median(memory):.2f} "
          f"[{min(memory):.2f}-{max(memory):.2f}], time {statistics.median(speed):.2f} "
          f"[{min(speed):.2f}-{max(speed):.2f}]")


if __name__ == "__main__":
    main()
