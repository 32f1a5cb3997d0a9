"""Do `predict` and `evaluate` cost what the raw torch calls cost? (issue #15)

Three measurements, each interleaved (every round times every contender once, so drift in
machine load hits them alike). Each contender's time in a round is divided by raw torch's time
in the same round; the median of those ratios is reported with their quartiles (the spread):

- batch 1: `model.predict(x, verbose=0)`, `model.predict_on_batch(x)` and `model(x)` (under
  `torch.inference_mode`) on one sample of the 3-layer MLP of bench/call_overhead.py, against a
  raw `torch.inference_mode` call of the same torch modules (target <= 2x);
- batch 1024 predict: the sheet's MLP (784-128-10) over 16,384 samples held in memory,
  `predict(x, batch_size=1024)` against a raw loop slicing the same tensor (target >= 0.95x
  the raw throughput);
- batch 1024 evaluate: compiled with sparse categorical crossentropy and accuracy, against a raw
  loop summing the loss and the correct predictions (target <= 1.05x the raw time), the
  Sequential model and the same model written with the functional API; two more contenders
  split Lamina's time: the raw loop calling Lamina's model instead of the torch one,
  and a bare loop of `model.test_step`.

Times are wall-clock (`time.perf_counter`); `--cpu-time` uses the thread's CPU time instead,
which other processes on a shared machine disturb less.

`--processes N` repeats the evaluate measurement in N fresh processes and reports the median
of their medians: each process draws its own memory layout, which moves all its ratios by a few
percent for its whole life (docs/benchmarks.md, "fourth pass").

Usage: python bench/inference.py [--rounds 30] [--cpu-time] [--processes N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import lamina
from lamina import layers

SAMPLES, BATCH = 16384, 1024


CLOCK: Callable[[], float] = time.perf_counter


def time_once(fn: Callable[[], object], calls: int) -> float:
    start = CLOCK()
    for _ in range(calls):
        fn()
    return (CLOCK() - start) / calls


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int,
                calls: int) -> dict[str, list[float]]:
    """Each contender's time per call in every round; the first contender is the baseline."""
    for fn in contenders.values():  # warm-up: builds, allocator, first-call paths
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(time_once(fn, calls))
    return times


def report(title: str, times: dict[str, list[float]], target: str) -> dict[str, float]:
    """Print each contender's median time and ratio to the first; return the median ratios."""
    base = next(iter(times.values()))
    print(title)
    medians = {}
    for name, samples in times.items():
        ratios = statistics.quantiles([t / b for t, b in zip(samples, base)], n=4)
        medians[name] = ratios[1]
        print(f"  {name:<38} {statistics.median(samples) * 1e6:10.1f} us   "
              f"{ratios[1]:5.2f}x raw (quartiles {ratios[0]:.2f}-{ratios[2]:.2f})")
    print(f"  target: {target}")
    return medians


def batch_one(rounds: int) -> None:
    from call_overhead import SIZES, lamina_sequential, raw_torch

    torch_model, model = raw_torch(), lamina_sequential()
    sample = torch.randn(1, SIZES[0])
    sample_numpy = sample.numpy()

    def raw() -> np.ndarray:
        with torch.inference_mode():
            return torch_model(sample).numpy()

    def call() -> np.ndarray:
        with torch.inference_mode():
            return model(sample).numpy()

    report("one sample (3-layer MLP 32-64-64-10)",
           interleaved({"raw inference_mode + .numpy()": raw,
                        "lamina predict(x, verbose=0)": lambda: model.predict(sample_numpy,
                                                                               verbose=0),
                        "lamina predict_on_batch(x)": lambda: model.predict_on_batch(sample_numpy),
                        "lamina model(x) in inference_mode": call},
                       rounds, 50),
           "predict and predict_on_batch <= 2.00x")


def mlp_pair() -> tuple[nn.Module, lamina.Sequential]:
    torch_model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                                nn.Linear(128, 10)).eval()
    model = lamina.Sequential([layers.Flatten(input_shape=(28, 28)),
                               layers.Dense(128, activation="relu"), layers.Dense(10)])
    with torch.no_grad():  # the same weights, so both compute the same numbers
        for linear, dense in ((torch_model[1], model.layers[1]), (torch_model[3], model.layers[2])):
            linear.weight.copy_(dense.kernel.t())
            linear.bias.copy_(dense.bias)
    model.compile(optimizer="adam",
                  loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return torch_model, model


def batch_1024(rounds: int, evaluate_only: bool = False) -> dict[str, float]:
    """The batch-1024 predict and evaluate measurements; the evaluate ratios are returned."""
    rng = np.random.default_rng(0)
    x = rng.random((SAMPLES, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, SAMPLES).astype(np.int64)
    x_tensor, y_tensor = torch.from_numpy(x), torch.from_numpy(y)
    torch_model, model = mlp_pair()

    def raw_predict() -> np.ndarray:
        with torch.inference_mode():
            return torch.cat([torch_model(x_tensor[i:i + BATCH])
                              for i in range(0, SAMPLES, BATCH)]).numpy()

    def raw_evaluate(forward: Callable[[torch.Tensor], torch.Tensor] = torch_model
                     ) -> tuple[float, float]:
        loss = torch.zeros(())
        correct = torch.zeros((), dtype=torch.int64)
        with torch.inference_mode():
            for i in range(0, SAMPLES, BATCH):
                logits = forward(x_tensor[i:i + BATCH])
                target = y_tensor[i:i + BATCH]
                loss += F.cross_entropy(logits, target, reduction="sum")
                correct += (logits.argmax(1) == target).sum()
        return loss.item() / SAMPLES, correct.item() / SAMPLES

    def test_steps() -> dict:
        model.reset_metrics()
        with torch.no_grad():
            for i in range(0, SAMPLES, BATCH):
                logs = model.test_step((x_tensor[i:i + BATCH], y_tensor[i:i + BATCH]))
        return {name: float(value) for name, value in logs.items()}

    if not evaluate_only:
        report(f"predict, {SAMPLES} samples, batch {BATCH} (MLP 784-128-10)",
               interleaved({"raw inference_mode loop": raw_predict,
                            "lamina predict": lambda: model.predict(x, batch_size=BATCH,
                                                                    verbose=0)},
                           rounds, 1),
               "lamina >= 0.95x raw throughput, i.e. <= 1.05x time")
    # The same model written with the functional API, as many Keras users write it.
    inputs = lamina.Input((28, 28))
    hidden = layers.Dense(128, activation="relu")(layers.Flatten()(inputs))
    functional = lamina.Model(inputs, layers.Dense(10)(hidden))
    functional.set_weights(model.get_weights())
    functional.compile(optimizer="adam",
                       loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True),
                       metrics=["accuracy"])
    # The contenders compute the same numbers (the same weights), or the ratios mean nothing.
    for compiled in (model, functional):
        np.testing.assert_allclose(compiled.evaluate(x, y, batch_size=BATCH, verbose=0),
                                   raw_evaluate(), rtol=1e-4)
    return report(f"evaluate, {SAMPLES} samples, batch {BATCH}",
           interleaved({"raw loss + accuracy loop": raw_evaluate,
                        "lamina evaluate": lambda: model.evaluate(x, y, batch_size=BATCH,
                                                                  verbose=0),
                        "lamina evaluate, functional model":
                            lambda: functional.evaluate(x, y, batch_size=BATCH, verbose=0),
                        # Where the time goes: the raw loop around Lamina's model call, and a
                        # loop of Lamina's test_step without evaluate's set-up and logs.
                        "(raw loop, Lamina's model call)": lambda: raw_evaluate(model),
                        "(a loop of model.test_step)": test_steps},
                       rounds, 1),
           "lamina evaluate <= 1.05x the raw time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the thread's CPU time instead of the wall clock")
    parser.add_argument("--processes", type=int, default=1,
                        help="repeat the batch-1024 evaluate measurement in this many fresh "
                             "processes and report the median of their medians")
    parser.add_argument("--evaluate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.cpu_time else time.perf_counter
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.evaluate_only:
        print(RATIOS_TAG + json.dumps(batch_1024(args.rounds, evaluate_only=True)))
    elif args.processes > 1:
        evaluate_over_processes(args)
    else:
        batch_one(args.rounds)
        batch_1024(args.rounds)


RATIOS_TAG = "ratios: "


def evaluate_over_processes(args: argparse.Namespace) -> None:
    """The evaluate ratios of several fresh processes, one after another. Within a process the
    interleaved rounds cancel the machine's drift, but each process also draws its own memory
    layout (where the heap puts the activations, which cache sets the weights share), which
    shifts every contender's ratio by a few percent for its whole life; the median over
    processes averages those draws out."""
    command = [sys.executable, __file__, "--rounds", str(args.rounds), "--evaluate-only"]
    if args.cpu_time:
        command.append("--cpu-time")
    runs: list[dict[str, float]] = []
    for index in range(args.processes):
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        line = next(l for l in output.splitlines() if l.startswith(RATIOS_TAG))
        runs.append(json.loads(line[len(RATIOS_TAG):]))
        print(f"process {index + 1}: " + ", ".join(f"{name} {ratio:.3f}x"
                                                  for name, ratio in runs[-1].items()))
    print(f"evaluate, {SAMPLES} samples, batch {BATCH}: median over {len(runs)} processes "
          f"of each process's median ratio (range)")
    for name in runs[0]:
        values = sorted(run[name] for run in runs)
        print(f"  {name:<38} {statistics.median(values):5.3f}x raw "
              f"({values[0]:.3f}-{values[-1]:.3f})")
    print("  target: lamina evaluate <= 1.05x the raw time")


if __name__ == "__main__":
    main()
