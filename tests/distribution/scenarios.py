"""Training runs that the distribution tests do once in one process and once over several.

Each scenario builds its model and data from fixed seeds, trains, and returns what the test
compares (history, evaluate, predict, weights); `run_ranks` forks one process per rank from
an already-imported interpreter (no second import of torch) and collects their results.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import socket
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import lamina
from lamina import callbacks, distribution, layers, losses, optimizers
from lamina.errors import DataError
from lamina.utils import PyDataset


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 3))).argmax(axis=1).astype("int64")
    return x, y


class CustomStep(lamina.Sequential):
    """Keras's "customizing fit() with PyTorch" train_step."""

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def mlp(module: bool = False, seed: int = 0, custom: bool = False):
    lamina.set_random_seed(seed)
    if custom:
        model = CustomStep([lamina.Input((8,)), layers.Dense(16, activation="relu"),
                            layers.Dense(3)])
    elif module:
        model = lamina.wrap(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                                torch.nn.Linear(16, 3)))
    else:
        model = lamina.Sequential([lamina.Input((8,)), layers.Dense(16, activation="relu"),
                                   layers.Dense(3)])
    model.compile(optimizer=optimizers.Adam(0.02),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def fit_custom(out: Path, tag: str) -> dict[str, Any]:
    """A custom train_step on 64 samples in global batches of 16."""
    model = mlp(custom=True)
    x, y = data(64)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return {"history": history.history, "weights": model.get_weights()}


def fit_arrays(out: Path, tag: str, module: bool = False) -> dict[str, Any]:
    """69 samples in global batches of 16: the last batch (5) splits 2/3 over two processes.
    ReduceLROnPlateau halves the rate after epoch 2 and EarlyStopping stops after epoch 3, so
    processes that decided differently would part ways."""
    model = mlp(module)
    x, y = data(69)
    xv, yv = data(23, seed=1)
    history = model.fit(
        x, y, batch_size=16, epochs=4, validation_data=(xv, yv), verbose=0,
        callbacks=[callbacks.CSVLogger(str(out / f"{tag}.csv")),
                   # A wrapped torch module has no Keras config: its checkpoints hold weights.
                   callbacks.ModelCheckpoint(str(out / (f"{tag}.weights.h5" if module else f"{tag}.keras")),
                                             save_weights_only=module),
                   callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0,
                                               min_delta=10.0),
                   callbacks.EarlyStopping(monitor="val_loss", patience=2, min_delta=10.0)])
    return {"history": history.history,
            "evaluate": model.evaluate(xv, yv, batch_size=5, verbose=0, return_dict=True),
            "predict": model.predict(xv, batch_size=4, verbose=0),
            "weights": [w for w in model.get_weights()]}


def fit_sharded(out: Path, tag: str) -> dict[str, Any]:
    """The same training with the parameters sharded (FSDP, ModelParallel), saved to a .keras
    file; also the shape of each weight as this process stores it. Each process is seeded
    differently (rank 0 as one process is): all must train rank 0's weights."""
    model = mlp(seed=100 * distribution.process_index())
    x, y = data(69)
    xv, yv = data(23, seed=1)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    model.save(str(out / f"{tag}.keras"))
    stored = [list(getattr(p, "to_local", lambda: p)().shape) for p in model.parameters()]
    return {"history": history.history, "stored_shapes": stored,
            "evaluate": model.evaluate(xv, yv, batch_size=5, verbose=0, return_dict=True),
            "predict": model.predict(xv, batch_size=4, verbose=0)}


class RecordingDataset(torch.utils.data.Dataset):
    """Records which samples this process read."""

    def __init__(self, n: int):
        self.x, self.y = data(n)
        self.seen: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        self.seen.append(int(index))
        return self.x[index], self.y[index]


def fit_loader(out: Path, tag: str) -> dict[str, Any]:
    """A shuffling DataLoader: per epoch, the samples each process read."""
    model = mlp()
    dataset = RecordingDataset(32)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True)
    epochs = []

    class Epochs(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs.append(list(dataset.seen))
            dataset.seen.clear()

    model.fit(loader, epochs=2, verbose=0, callbacks=[Epochs()])
    return {"epochs": epochs, "predict": model.predict(loader, verbose=0),
            "predict_arrays": model.predict(dataset.x, batch_size=5, verbose=0)}


def model_parallel() -> distribution.ModelParallel:
    mesh = distribution.DeviceMesh((1, 2), ["batch", "model"])
    layout_map = distribution.LayoutMap(mesh)
    layout_map["dense/kernel"] = (None, "model")
    layout_map["dense/bias"] = ("model",)
    return distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")


def fit_generator(out: Path, tag: str) -> dict[str, Any]:
    """A generator of global batches (the last of each pass holds 5 samples)."""
    model = mlp()
    x, y = data(69)

    def batches(repeat: bool):
        while True:
            for start in range(0, 69, 16):
                yield x[start:start + 16], y[start:start + 16]
            if not repeat:
                return

    history = model.fit(batches(True), steps_per_epoch=5, epochs=2, verbose=0)
    return {"history": history.history, "weights": model.get_weights(),
            "evaluate": model.evaluate(batches(False), verbose=0, return_dict=True),
            "predict": model.predict((b[0] for b in batches(False)), verbose=0)}


class Lazy(lamina.Model):
    """A subclassed model: its weights are made by its first call."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = layers.Dense(16, activation="relu"), layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))


def first_use(out: Path, tag: str) -> dict[str, Any]:
    """evaluate and predict before any fit, each process seeded differently (rank 0 as the one
    process is seeded), then one epoch with a verbose ModelCheckpoint whose output is kept."""
    seed = 7 + 100 * distribution.process_index()
    x, y = data(23, seed=1)
    model = mlp(seed=seed)
    evaluated = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    predicted = model.predict(x, batch_size=4, verbose=0)
    lamina.set_random_seed(seed)
    lazy = Lazy()
    lazy.compile(loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    lazy_predicted = lazy.predict(x, batch_size=4, verbose=0)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model.fit(*data(32), batch_size=16, epochs=1, verbose=0,
                  callbacks=[callbacks.ModelCheckpoint(str(out / f"{tag}.keras"), verbose=1)])
    return {"evaluate": evaluated, "predict": predicted, "lazy_predict": lazy_predicted,
            "lazy_evaluate": lazy.evaluate(x, y, batch_size=5, verbose=0),
            "printed": printed.getvalue()}


class Batches(PyDataset):
    """Global batches of 16 by index; the last holds the remaining 6."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self) -> int:
        return -(-len(self.x) // 16)

    def __getitem__(self, index: int):
        return self.x[index * 16:index * 16 + 16], self.y[index * 16:index * 16 + 16]


def stream_inference(out: Path, tag: str) -> dict[str, Any]:
    """evaluate and predict on a generator (batches of 16, 1, 16, 5: the batch of 1 leaves
    rank 0 nothing) and a PyDataset, counting the rows this process's model ran."""
    model = mlp()
    x, y = data(38, seed=2)
    ran = []
    model.register_forward_hook(lambda module, args, output: ran.append(len(args[0])))

    def batches(labels: bool):
        for start, stop in ((0, 16), (16, 17), (17, 33), (33, 38)):
            yield (x[start:stop], y[start:stop]) if labels else x[start:stop]

    result = {"evaluate": model.evaluate(batches(True), verbose=0, return_dict=True),
              "predict": model.predict(batches(False), verbose=0),
              "pydataset_evaluate": model.evaluate(Batches(x, y), verbose=0, return_dict=True),
              "pydataset_predict": model.predict(Batches(x, y), verbose=0)}
    result["rows_run"] = sum(ran)
    try:
        model.predict((x[i:i + 1] for i in range(3)), verbose=0)
    except DataError as error:
        result["single_rows"] = str(error)
    return result


def uneven_layout(out: Path, tag: str) -> dict[str, Any]:
    """A LayoutMap that splits 3 units over 2 devices: the error fit raises."""
    model = mlp()
    try:
        model.fit(*data(32), batch_size=16, epochs=1, verbose=0)
    except ValueError as error:
        return {"error": str(error)}
    return {"error": None}


def conv_unit_axes(out: Path, tag: str) -> dict[str, Any]:
    """Convolution kernels with unit axes (1 input channel, depthwise, 1x1) in channels_last:
    the strides of each kernel and of the gradient torch's convolution hands it (one backward
    outside DDP), then a fit with every warning recorded."""
    lamina.set_random_seed(0)
    model = lamina.Sequential([lamina.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                               layers.DepthwiseConv2D(3), layers.Conv2D(3, 1),
                               layers.GlobalAveragePooling2D()])
    model.compile(optimizer=optimizers.Adam(0.02),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.RandomState(0)
    x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    y = rng.randint(0, 3, 32).astype("int64")
    kernels = [p for p in model.parameters() if p.dim() == 4]
    arrived: list[list[int]] = []
    hooks = [k.register_hook(lambda g: arrived.append(list(g.stride()))) for k in kernels]
    model(torch.from_numpy(x[:4])).sum().backward()
    for hook in hooks:
        hook.remove()
    model.zero_grad()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return {"kernel_strides": [list(k.stride()) for k in kernels],
            # Autograd reaches the last layer first.
            "gradient_strides": arrived[::-1],
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
            "history": history.history, "weights": model.get_weights()}


def load_on_chief(out: Path, tag: str) -> dict[str, Any]:
    """Weights loaded by rank 0 alone: between two fits (then evaluate and predict), and by a
    callback at the end of the first of two epochs."""
    x, y = data(48)
    xv, yv = data(23, seed=1)
    path = str(out / f"{tag}-other.weights.h5")
    mlp(seed=5).save_weights(path)
    model = mlp()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    if distribution.process_index() == 0:
        model.load_weights(path)
    evaluated = model.evaluate(xv, yv, batch_size=5, verbose=0, return_dict=True)
    predicted = model.predict(xv, batch_size=4, verbose=0)

    class LoadOnChief(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0 and distribution.process_index() == 0:
                self.model.load_weights(path)

    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[LoadOnChief()])
    return {"evaluate": evaluated, "predict": predicted, "history": history.history,
            "weights": model.get_weights()}


def mixed_tensors(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(30, generator=generator), torch.randn(7, 3, generator=generator),
            torch.randint(0, 1000, (5,), generator=generator),
            torch.randn(4, dtype=torch.float64, generator=generator),
            torch.randn(2, 3, generator=generator).t()]


def broadcast_chunks(out: Path, tag: str) -> dict[str, Any]:
    """Tensors of several dtypes and a transposed view, different on each process, broadcast in
    chunks of 64 bytes (several per dtype)."""
    from lamina.distribution import sharding

    tensors = mixed_tensors(distribution.process_index())
    sharding.broadcast_all(tensors, chunk_bytes=64)
    return {f"tensor{i}": t.numpy() for i, t in enumerate(tensors)}


def uneven_model_parallel() -> distribution.ModelParallel:
    mesh = distribution.DeviceMesh((1, 2), ["batch", "model"])
    layout_map = distribution.LayoutMap(mesh)
    layout_map["dense_1/kernel"] = (None, "model")
    return distribution.ModelParallel(layout_map=layout_map)


SCENARIOS: dict[str, tuple[Callable[[Path, str], dict], Callable[[], Any]]] = {
    "arrays": (fit_arrays, distribution.DataParallel),
    "module": (lambda out, tag: fit_arrays(out, tag, module=True), distribution.DataParallel),
    "fsdp": (fit_sharded, distribution.FSDP),
    "model_parallel": (fit_sharded, model_parallel),
    "uneven_layout": (uneven_layout, uneven_model_parallel),
    "loader": (fit_loader, distribution.DataParallel),
    "generator": (fit_generator, distribution.DataParallel),
    "custom": (fit_custom, distribution.DataParallel),
    "first_use": (first_use, distribution.DataParallel),
    "stream_inference": (stream_inference, distribution.DataParallel),
    "conv_unit_axes": (conv_unit_axes, distribution.DataParallel),
    "load_on_chief": (load_on_chief, distribution.DataParallel),
    "broadcast_chunks": (broadcast_chunks, distribution.DataParallel),
}


def run(name: str, out: Path, tag: str, distributed: bool) -> dict[str, Any]:
    function, strategy = SCENARIOS[name]
    if not distributed:
        return function(out, tag)
    with strategy().scope():
        return function(out, tag)


def save(result: dict[str, Any], path: Path) -> None:
    arrays = {}
    plain = {}
    for key, value in result.items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
        elif key == "weights":
            arrays.update({f"weight{i}": w for i, w in enumerate(value)})
        else:
            plain[key] = value
    np.savez(path.with_suffix(".npz"), **arrays)
    path.with_suffix(".json").write_text(json.dumps(plain))


def load(path: Path) -> dict[str, Any]:
    result = json.loads(path.with_suffix(".json").read_text())
    with np.load(path.with_suffix(".npz")) as arrays:
        weights = sorted((k for k in arrays if k.startswith("weight")), key=lambda k: int(k[6:]))
        result.update({k: arrays[k] for k in arrays if not k.startswith("weight")})
        if weights:
            result["weights"] = [arrays[k] for k in weights]
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, out: Path, names: list[str]) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        distribution.initialize(timeout=60)
        for name in names:
            save(run(name, out, f"{name}.dist", True), out / f"{name}-rank{rank}")
    except BaseException:
        (out / f"error.rank{rank}").write_text(traceback.format_exc())
        raise
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def run_ranks(names: list[str], out: Path, world: int = 2, timeout: float = 120) -> list[dict]:
    """Fork `world` processes that run the scenarios `names` together; their results by rank."""
    context = multiprocessing.get_context("fork")
    port = free_port()
    processes = [context.Process(target=_rank_main, args=(rank, world, port, out, names))
                 for rank in range(world)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    errors = sorted(out.glob("error.rank*"))
    if errors or any(p.exitcode != 0 for p in processes):
        details = "\n".join(e.read_text() for e in errors)
        raise AssertionError(f"rank processes failed (exit codes "
                             f"{[p.exitcode for p in processes]}):\n{details}")
    return [{name: load(out / f"{name}-rank{rank}") for name in names} for rank in range(world)]
