"""Does Lamina's `fit` keep up with a tuned raw PyTorch loop on a small CNN and an LSTM?

Each workload is trained one epoch at a time by a tuned raw loop (tensors in memory, shuffled
index slicing, no per-step sync) and by Lamina's `fit`, interleaved over several rounds in one
process; the ratio of median epoch times is printed (target >= 0.9).

- CNN: Conv2D 32 3x3 same relu, MaxPool 2, Conv2D 64 3x3 same relu, MaxPool 2, Flatten, Dense 10
  on 28x28x1 images. Lamina takes channels_last (Keras's default) input; the raw loop takes NCHW
  (the sheet's layout), so the ratio includes what channels_last costs.
- LSTM: LSTM(128) over 50 steps of 32 features, last step -> Dense 10.

Usage: python bench/fit_cnn_lstm.py [--rounds 3] [--samples 4096]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BATCH = 128


def raw_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def epoch():
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), BATCH):
            index = order[start:start + BATCH]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()

    return epoch


def lamina_epoch(model, x: np.ndarray, y: np.ndarray):
    import lamina

    model.compile(optimizer="adam",
                  loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, verbose=0)

    def epoch():
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    return epoch


class RawCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Linear(64 * 7 * 7, 10)

    def forward(self, x):
        return self.classifier(self.features(x))


class RawLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1, :])


def workloads(samples: int):
    import lamina
    from lamina import layers

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, samples).astype(np.int64)
    images = rng.random((samples, 28, 28, 1), dtype=np.float32)
    sequences = rng.random((samples, 50, 32), dtype=np.float32)
    cnn = lamina.Sequential([
        lamina.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu", padding="same"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu", padding="same"), layers.MaxPooling2D((2, 2)),
        layers.Flatten(), layers.Dense(10),
    ])
    lstm = lamina.Sequential([lamina.Input(shape=(50, 32)), layers.LSTM(128), layers.Dense(10)])
    yield ("small CNN", raw_epoch(RawCNN(), torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                                  torch.from_numpy(labels)),
           lamina_epoch(cnn, images, labels))
    yield ("LSTM", raw_epoch(RawLSTM(), torch.from_numpy(sequences), torch.from_numpy(labels)),
           lamina_epoch(lstm, sequences, labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=4096)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{args.samples} samples, batch {BATCH}, Adam, median of {args.rounds} interleaved "
          f"epochs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'workload':12s} {'raw samples/s':>14s} {'Lamina samples/s':>17s} {'ratio':>7s}")
    for name, raw, ours in workloads(args.samples):
        raw(), ours()  # warm-up
        times = {"raw": [], "lamina": []}
        for _ in range(args.rounds):
            for key, epoch in (("raw", raw), ("lamina", ours)):
                start = time.perf_counter()
                epoch()
                times[key].append(time.perf_counter() - start)
        raw_time, our_time = statistics.median(times["raw"]), statistics.median(times["lamina"])
        print(f"{name:12s} {args.samples / raw_time:14,.0f} {args.samples / our_time:17,.0f} "
              f"{raw_time / our_time:7.2f}")


if __name__ == "__main__":
    main()
