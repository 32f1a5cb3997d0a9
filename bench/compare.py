"""How does Lamina's `fit` compare with a tuned raw loop, the sheet's loop, Keras 3 and Lightning?

One invocation; for each workload (MLP, CNN, LSTM) every contender trains one epoch at a time,
interleaved over several rounds in one process (this machine is noisy), and the median epoch
time of each is compared with the tuned raw loop's (= 1.00):

- tuned raw loop: tensors in memory, shuffled index slicing, fused cross-entropy on logits,
  Adam(foreach), no per-step host sync;
- the sheet's DataLoader loop (`DataLoader(TensorDataset, shuffle=True)`, `nn.CrossEntropyLoss`);
- Lamina in the sheet's form: softmax output, 'sparse_categorical_crossentropy',
  metrics=['accuracy'];
- Lamina in the logits form: no output activation, `from_logits=True`, no metric;
- Lamina `mixed_bfloat16`, the sheet's form (ratio still to the float32 raw loop);
- Keras 3 on its torch backend (the sheet's form) and Lightning (the raw module in a
  LightningModule, fed by the sheet's DataLoader), when installed.

Workloads: the sheet's MLP (784-128 relu, dropout 0.2, 10) on 28x28 inputs; a small CNN (Conv2D
32 and 64 3x3 same relu, each followed by MaxPool 2, Dense 10) on 28x28x1 images, channels_last
for Lamina and Keras, NCHW for torch; LSTM(128) over 50 steps of 32 features, Dense 10. Batch
128, Adam 1e-3, synthetic data.

Usage: python bench/compare.py [--rounds 5] [--quick] [--no-write] [--clock cpu]
    [--only raw,Lamina]
The full run rewrites the table in docs/benchmarks.md; --quick (small data, 2 rounds) only
prints. `--clock cpu` times each epoch in this process's CPU seconds instead of wall seconds:
on a machine shared with other jobs it measures the work, not the waiting (the 2-core machine of
this project ran 100x slower in wall time under load). `--only` keeps the contenders whose names
contain one of the comma-separated words (the raw loop always runs).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import re
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

BATCH = 128
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/compare.py: begin -->", "<!-- bench/compare.py: end -->"


# ------------------------------------------------------------------ the workloads

class RawCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Linear(64 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class RawLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(32, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.lstm(x)[0][:, -1, :])


def raw_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(128, 10))


def keras_layers(module, workload: str, softmax: bool) -> list:
    """The workload's layers in Keras's API (lamina or keras: the same code)."""
    layers = module.layers
    head = layers.Dense(10, activation="softmax" if softmax else None)
    if workload == "MLP":
        return [module.Input(shape=(28, 28)), layers.Flatten(),
                layers.Dense(128, activation="relu"), layers.Dropout(0.2), head]
    if workload == "CNN":
        return [module.Input(shape=(28, 28, 1)),
                layers.Conv2D(32, (3, 3), activation="relu", padding="same"),
                layers.MaxPooling2D((2, 2)),
                layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
                layers.MaxPooling2D((2, 2)), layers.Flatten(), head]
    return [module.Input(shape=(50, 32)), layers.LSTM(128), head]


WORKLOADS = {"MLP": (raw_mlp, (28, 28)), "CNN": (RawCNN, (28, 28, 1)), "LSTM": (RawLSTM, (50, 32))}


def data(workload: str, samples: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Keras-layout inputs, labels, and the torch-layout input tensor."""
    rng = np.random.default_rng(0)
    x = rng.random((samples, *WORKLOADS[workload][1]), dtype=np.float32)
    y = rng.integers(0, 10, samples).astype(np.int64)
    xt = torch.from_numpy(x)
    if workload == "CNN":
        xt = xt.permute(0, 3, 1, 2).contiguous()
    return x, y, xt


# ------------------------------------------------------------------ the contenders

def tuned_raw_loop(workload, x, y, xt):
    model = WORKLOADS[workload][0]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    yt = torch.from_numpy(y)

    def epoch():
        model.train()
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), BATCH):
            index = order[start:start + BATCH]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(xt[index]), yt[index]).backward()
            optimizer.step()

    return epoch


def sheet_dataloader_loop(workload, x, y, xt):
    model = WORKLOADS[workload][0]()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xt, torch.from_numpy(y)), batch_size=BATCH, shuffle=True)

    def epoch():
        model.train()
        for batch, target in loader:
            optimizer.zero_grad()
            loss = criterion(model(batch), target)
            loss.backward()
            optimizer.step()

    return epoch


def lamina_fit(form: str):
    def make(workload, x, y, xt):
        import lamina

        model = lamina.Sequential(keras_layers(lamina, workload, softmax=form != "logits"))
        if form == "logits":
            model.compile(optimizer="adam",
                          loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True))
        else:
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"],
                          mixed_precision="bfloat16" if form == "bf16" else None)
        model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, verbose=0)
        return lambda: model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    return make


def keras3_fit(workload, x, y, xt):
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "torch":
        return None
    model = keras.Sequential(keras_layers(keras, workload, softmax=True))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, verbose=0)
    return lambda: model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)


def lightning_fit(workload, x, y, xt):
    try:
        import lightning
    except ImportError:
        return None
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = WORKLOADS[workload][0]()

        def training_step(self, batch, batch_index):
            inputs, target = batch
            return F.cross_entropy(self.model(inputs), target)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    module = Module()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xt, torch.from_numpy(y)), batch_size=BATCH, shuffle=True)

    def epoch():
        trainer = lightning.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                                    enable_checkpointing=False, enable_progress_bar=False,
                                    enable_model_summary=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(module, loader)

    return epoch


CONTENDERS = {
    "tuned raw loop": tuned_raw_loop,
    "sheet's DataLoader loop": sheet_dataloader_loop,
    "Lamina, sheet's form": lamina_fit("sheet"),
    "Lamina, logits form": lamina_fit("logits"),
    "Lamina, mixed_bfloat16": lamina_fit("bf16"),
    "Keras 3 (torch backend)": keras3_fit,
    "Lightning": lightning_fit,
}


# ------------------------------------------------------------------ running and reporting

def run(workload: str, samples: int, rounds: int, clock=time.perf_counter,
        only: list[str] | None = None) -> dict[str, float]:
    """Samples per second of each installed contender (median of interleaved epochs)."""
    x, y, xt = data(workload, samples)
    torch.manual_seed(0)
    epochs = {name: make(workload, x, y, xt) for name, make in CONTENDERS.items()
              if name == "tuned raw loop" or not only or any(w in name for w in only)}
    epochs = {name: epoch for name, epoch in epochs.items() if epoch is not None}
    for epoch in epochs.values():  # warm-up: allocator, thread pools, first-call checks
        epoch()
    times: dict[str, list[float]] = {name: [] for name in epochs}
    for _ in range(rounds):
        for name, epoch in epochs.items():
            start = clock()
            epoch()
            times[name].append(clock() - start)
    return {name: samples / statistics.median(values) for name, values in times.items()}


def cpu_description() -> str:
    model = platform.processor() or "unknown CPU"
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        model = found.group(1).strip() if found else model
        found = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
        flags = set(found.group(1).split()) if found else set()
    except OSError:
        pass
    units = [name for name in ("avx512_bf16", "amx_bf16", "amx_tile") if name in flags]
    bf16 = ", ".join(units) if units else "no bf16 units"
    return f"{model}, {os.cpu_count()} cores ({bf16}), torch {torch.__version__}"


def table(results: dict[str, dict[str, float]]) -> str:
    names = [n for n in CONTENDERS if any(n in r for r in results.values())]
    header = "| contender | " + " | ".join(f"{w} samples/s | {w} ratio" for w in results) + " |"
    lines = [header, "| --- |" + " ---: | ---: |" * len(results)]
    for name in names:
        cells = []
        for workload, found in results.items():
            if name in found:
                ratio = found[name] / found["tuned raw loop"]
                cells += [f"{found[name]:,.0f}", f"{ratio:.2f}"]
            else:
                cells += ["-", "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_docs(text: str) -> None:
    document = DOCS.read_text()
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        document = head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1]
    else:
        document = document.rstrip("\n") + "\n\n" + BEGIN + "\n" + text + "\n" + END + "\n"
    DOCS.write_text(document)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small data, 2 rounds, no docs")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--only", default="", help="comma-separated words of contender names")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    only = [w for w in args.only.split(",") if w]
    rounds = 2 if args.quick else args.rounds
    sizes = {"MLP": 6_000, "CNN": 512, "LSTM": 512} if args.quick else \
        {"MLP": 60_000, "CNN": 4_096, "LSTM": 4_096}
    results = {}
    for workload, samples in sizes.items():
        results[workload] = run(workload, samples, rounds, clock, only)
        print(f"{workload}: " + ", ".join(
            f"{name} {value / results[workload]['tuned raw loop']:.2f}"
            for name, value in results[workload].items()), flush=True)
    header = (f"{cpu_description()}; {datetime.date.today().isoformat()}; batch {BATCH}, "
              f"median of {rounds} interleaved epochs "
              f"({', '.join(f'{w} {n:,}' for w, n in sizes.items())} samples), {args.clock} "
              f"time, {torch.get_num_threads()} threads; ratio = samples/s over the tuned raw "
              "loop's (float32).")
    text = header + "\n\n" + table(results)
    print("\n" + text)
    if not (args.quick or args.no_write or only):
        write_docs(text)
        print(f"\nwrote the table into {DOCS}")


if __name__ == "__main__":
    main()
