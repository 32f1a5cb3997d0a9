"""What does the training doctor cost? `fit` with and without `Doctor()` side by side.

The sheet's MLP (784-128 relu, dropout 0.2, 10; 60,000 synthetic 28x28 samples) and CNN
(Conv2D 32 3x3 relu, MaxPool 2, Conv2D 64 3x3 relu, MaxPool 2, Flatten, Dense 10; 4,096
28x28x1 images), batch 128, Adam. Each contender trains one epoch at a time, interleaved over
several rounds in one process (this machine is noisy); the median epoch times are compared.
Target: the doctor costs <= 5% (ratio <= 1.05) with its default sampling.

Usage: python bench/doctor_overhead.py [--rounds 5] [--mlp-samples 60000] [--cnn-samples 4096]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import lamina as keras
from lamina import layers

BATCH = 128


def mlp():
    return keras.Sequential([keras.Input((28, 28)), layers.Flatten(),
                             layers.Dense(128, activation="relu"), layers.Dropout(0.2),
                             layers.Dense(10, activation="softmax")])


def cnn():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu", padding="same"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu", padding="same"), layers.MaxPooling2D((2, 2)),
        layers.Flatten(), layers.Dense(10, activation="softmax")])


def contender(build, x, y, doctor: bool):
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:BATCH * 4], y[:BATCH * 4], batch_size=BATCH, epochs=1, verbose=0)  # warm-up

    def epoch() -> float:
        callbacks = [keras.callbacks.Doctor()] if doctor else []
        started = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
        return time.perf_counter() - started

    return epoch


def compare(name: str, build, x, y, rounds: int) -> float:
    plain, doctored = contender(build, x, y, False), contender(build, x, y, True)
    times: dict[str, list[float]] = {"fit": [], "fit + Doctor": []}
    for _ in range(rounds):
        times["fit"].append(plain())
        times["fit + Doctor"].append(doctored())
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["fit + Doctor"] / medians["fit"]
    print(f"{name}: fit {medians['fit']:.3f} s/epoch, fit + Doctor "
          f"{medians['fit + Doctor']:.3f} s/epoch: ratio {ratio:.3f} "
          f"({'within' if ratio <= 1.05 else 'OVER'} the 1.05 target)")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mlp-samples", type=int, default=60000)
    parser.add_argument("--cnn-samples", type=int, default=4096)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device "
          f"{keras.config.default_device()}")
    x = rng.random((args.mlp_samples, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, args.mlp_samples)
    compare("MLP", mlp, x, y, args.rounds)
    x = rng.random((args.cnn_samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.cnn_samples)
    compare("CNN", cnn, x, y, args.rounds)


if __name__ == "__main__":
    main()
