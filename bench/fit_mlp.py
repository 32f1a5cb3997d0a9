"""Does Lamina's `fit` keep up with a tuned raw PyTorch loop on a small MLP?

The sheet's MLP (784-128 relu, dropout 0.2, 10) on 60,000 synthetic 28x28 samples, batch 128,
Adam, trained one epoch at a time by each contender, in one process, interleaved over several
rounds (this machine is noisy); the median epoch time of each is compared with the tuned loop:

- tuned raw loop: tensors in memory, shuffled index slicing, no per-step host sync;
- Lamina fit (logits + from_logits loss, as the raw loop), and Lamina fit as a Keras user
  writes it (softmax output, 'sparse_categorical_crossentropy', metrics=['accuracy']);
- the sheet's textbook loop with a DataLoader;
- Keras 3 on its torch backend, when installed (KERAS_BACKEND=torch).

Usage: python bench/fit_mlp.py [--rounds 3] [--samples 60000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BATCH = 128


def data(samples: int):
    rng = np.random.default_rng(0)
    x = rng.random((samples, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, samples).astype(np.int64)
    return x, y


def torch_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(128, 10))


def tuned_raw_loop(x: np.ndarray, y: np.ndarray):
    model = torch_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def epoch():
        model.train()
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), BATCH):
            index = order[start:start + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xt[index]), yt[index])
            loss.backward()
            optimizer.step()

    return epoch


def dataloader_loop(x: np.ndarray, y: np.ndarray):
    model = torch_mlp()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True)

    def epoch():
        model.train()
        for data_batch, target in loader:
            optimizer.zero_grad()
            loss = criterion(model(data_batch), target)
            loss.backward()
            optimizer.step()

    return epoch


def lamina_fit(x: np.ndarray, y: np.ndarray, keras_style: bool):
    import lamina
    from lamina import layers

    model = lamina.Sequential([
        layers.Flatten(input_shape=(28, 28)),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax" if keras_style else None),
    ])
    if keras_style:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    else:
        model.compile(optimizer="adam",
                      loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, verbose=0)  # first-call checks

    def epoch():
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    return epoch


def keras3_fit(x: np.ndarray, y: np.ndarray):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "torch":
        return None
    model = keras.Sequential([
        keras.Input(shape=(28, 28)), keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, verbose=0)

    def epoch():
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=60_000)
    args = parser.parse_args()
    torch.manual_seed(0)
    x, y = data(args.samples)
    contenders = {
        "tuned raw PyTorch loop": tuned_raw_loop(x, y),
        "Lamina fit (logits)": lamina_fit(x, y, keras_style=False),
        "Lamina fit (softmax + accuracy)": lamina_fit(x, y, keras_style=True),
        "sheet's DataLoader loop": dataloader_loop(x, y),
    }
    keras_epoch = keras3_fit(x, y)
    if keras_epoch is not None:
        contenders["Keras 3 (torch backend)"] = keras_epoch
    for epoch in contenders.values():  # warm-up: allocator, thread pools, first-call checks
        epoch()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, epoch in contenders.items():
            start = time.perf_counter()
            epoch()
            times[name].append(time.perf_counter() - start)
    baseline = statistics.median(times["tuned raw PyTorch loop"])
    print(f"MLP 784-128-10, {args.samples} samples, batch {BATCH}, Adam, "
          f"median of {args.rounds} interleaved epochs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'contender':34s} {'samples/s':>12s} {'ratio':>7s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34s} {args.samples / median:12,.0f} {baseline / median:7.2f}")
    if keras_epoch is None:
        print("(Keras 3 not installed: `pip install keras` and KERAS_BACKEND=torch to compare)")


if __name__ == "__main__":
    main()
