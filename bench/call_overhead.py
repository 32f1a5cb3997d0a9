"""Does calling a lamina model cost what its torch modules cost? (DESIGN principle 5)

A 3-layer MLP (Dense-relu, Dense-relu, Dense) on one sample, three ways side by side:
raw `torch.nn` modules, the lamina `Sequential` and functional models, and `predict`.
Timings are interleaved (each round times every contender once) so drift in machine load hits
them all alike; the median over rounds is reported as a ratio to raw torch.
Targets: model call <= 2x raw torch, `predict` <= 5x (Keras 3 measures 20x and 57x).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch import nn

import lamina
from lamina import layers

SIZES = (32, 64, 64, 10)
ROUNDS = 200
CALLS_PER_ROUND = 50


def raw_torch() -> nn.Module:
    return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]),
                         nn.ReLU(), nn.Linear(SIZES[2], SIZES[3])).eval()


def lamina_sequential() -> lamina.Sequential:
    return lamina.Sequential([
        layers.Dense(SIZES[1], activation="relu", input_shape=(SIZES[0],)),
        layers.Dense(SIZES[2], activation="relu"),
        layers.Dense(SIZES[3]),
    ])


def lamina_functional() -> lamina.Model:
    inputs = lamina.Input(shape=(SIZES[0],))
    x = layers.Dense(SIZES[1], activation="relu")(inputs)
    x = layers.Dense(SIZES[2], activation="relu")(x)
    return lamina.Model(inputs, layers.Dense(SIZES[3])(x))


def time_once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS_PER_ROUND):
        fn()
    return (time.perf_counter() - start) / CALLS_PER_ROUND


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sample = torch.randn(1, SIZES[0])
    sample_numpy = sample.numpy()
    torch_model, sequential, functional = raw_torch(), lamina_sequential(), lamina_functional()

    def torch_call():
        with torch.no_grad():
            return torch_model(sample)

    def sequential_call():
        with torch.no_grad():
            return sequential(sample)

    def functional_call():
        with torch.no_grad():
            return functional(sample)

    contenders = {
        "torch nn.Sequential": torch_call,
        "lamina Sequential(x)": sequential_call,
        "lamina functional Model(x)": functional_call,
        "lamina Sequential.predict(x)": lambda: sequential.predict(sample_numpy, verbose=0),
    }
    for fn in contenders.values():  # warm-up: builds, allocator, first-call paths
        for _ in range(20):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, fn in contenders.items():
            times[name].append(time_once(fn))
    base = statistics.median(times["torch nn.Sequential"])
    targets = {"lamina Sequential(x)": 2.0, "lamina functional Model(x)": 2.0,
               "lamina Sequential.predict(x)": 5.0}
    print(f"3-layer MLP {SIZES}, one sample, median of {ROUNDS} rounds x {CALLS_PER_ROUND} calls")
    for name, samples in times.items():
        median = statistics.median(samples)
        target = targets.get(name)
        verdict = "" if target is None else f"  (target <= {target:.0f}x: " \
                                            f"{'ok' if median / base <= target else 'MISSED'})"
        print(f"  {name:<30} {median * 1e6:8.1f} us   {median / base:5.2f}x{verdict}")


if __name__ == "__main__":
    main()
