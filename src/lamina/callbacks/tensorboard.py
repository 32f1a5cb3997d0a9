"""TensorBoard: real event files (scalars, learning rate, weight histograms and images, the
model graph, embeddings for the projector, and torch.profiler traces)."""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import torch

from lamina import config, tree
from lamina._registry import register
from lamina.callbacks.callback import Callback
from lamina.layers.core import Embedding
from lamina.training.logs import logs_to_floats


@register("TensorBoard")
class TensorBoard(Callback):
    """Write logs for TensorBoard under `log_dir/train` and `log_dir/validation`, as Keras does:
    `epoch_loss`, `epoch_accuracy`, ... per epoch, `epoch_learning_rate`, histograms of the
    weights every `histogram_freq` epochs, and batch-level scalars with `update_freq=N`.

    `tensorboard --logdir ./logs` shows them.

    Args:
        write_graph: trace the model on the first training batch (one sample) and write its
            graph (`SummaryWriter.add_graph`); a model that torch.jit cannot trace gets a
            warning instead.
        write_images: with `histogram_freq`, also write each 1-D to 3-D weight as an image,
            laid out as Keras does.
        write_steps_per_second: log `batch_steps_per_second` and `epoch_steps_per_second`
            (host time, so on an accelerator it is the rate at which steps are queued).
        profile_batch: a batch number (from 1) or a `(start, stop)` pair: profile those
            training batches with `torch.profiler` and write the trace to `log_dir/train` (the
            TensorBoard profiler plugin reads it). Keras's torch backend refuses this argument.
        embeddings_freq: every this many epochs, write the weights of each `Embedding` layer
            for TensorBoard's projector (`SummaryWriter.add_embedding`).
        embeddings_metadata: a file of labels (one per line, for every layer) or a dict of
            layer name -> file; a file with a tab in its first line has a header row.
    """

    _chief_only = True  # in a distributed run only rank 0 writes the event files

    def __init__(self, log_dir: str = "logs", histogram_freq: int = 0, write_graph: bool = True,
                 write_images: bool = False, write_steps_per_second: bool = False,
                 update_freq: str | int = "epoch", profile_batch: Any = 0,
                 embeddings_freq: int = 0, embeddings_metadata: Any = None):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph, self.write_images = write_graph, write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = 1 if update_freq == "batch" else update_freq
        if not (self.update_freq == "epoch" or (isinstance(self.update_freq, int)
                                                 and self.update_freq > 0)):
            raise ValueError("`update_freq` must be 'epoch', 'batch' or a positive integer. "
                             f"Received: update_freq={update_freq!r}.")
        self.profile_batch = profile_batch
        self._profile_range = _profile_range(profile_batch)
        self.embeddings_freq, self.embeddings_metadata = embeddings_freq, embeddings_metadata
        self._writers: dict[str, Any] = {}
        self._step = 0
        self._graph_input: Any = None
        self._graph_hook: Any = None
        self._profiler: Any = None
        self._batch_start = self._epoch_start = 0.0

    def _writer(self, name: str):
        if name not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            self._writers[name] = SummaryWriter(os.path.join(self.log_dir, name))
        return self._writers[name]

    # ------------------------------------------------------------------------ hooks

    def on_train_begin(self, logs=None):
        self._step = 0
        if self.write_graph and self._graph_hook is None:
            self._graph_hook = self.model.register_forward_pre_hook(self._keep_graph_input)

    def on_train_batch_begin(self, batch, logs=None):
        if self.write_steps_per_second:
            self._batch_start = time.perf_counter()
        if self._profile_range is not None and self._step + 1 == self._profile_range[0]:
            self._start_profiler()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._graph_input is not None:
            self._write_graph()
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._batch_start
            self._writer("train").add_scalar("batch_steps_per_second", 1.0 / max(elapsed, 1e-9),
                                             self._step)
        if self.update_freq != "epoch" and self._step % self.update_freq == 0 and logs:
            for key, value in logs_to_floats(logs).items():
                self._writer("train").add_scalar(f"batch_{key}", value, self._step)
        if self._profiler is not None:
            self._profiler.step()
            if self._step >= self._profile_range[1]:
                self._stop_profiler()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_first_step = self._step

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in logs:
            logs["learning_rate"] = optimizer.learning_rate
        if self.write_steps_per_second:
            elapsed = max(time.perf_counter() - self._epoch_start, 1e-9)
            logs["steps_per_second"] = (self._step - self._epoch_first_step) / elapsed
        for key, value in logs.items():
            split = "validation" if key.startswith("val_") else "train"
            self._writer(split).add_scalar(f"epoch_{key.removeprefix('val_')}", float(value), epoch)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            self._log_weights(epoch)
        if self.embeddings_freq and (epoch + 1) % self.embeddings_freq == 0:
            self._log_embeddings(epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        self._stop_profiler()
        if self._graph_hook is not None:
            self._graph_hook.remove()
            self._graph_hook = None
        self._graph_input = None
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # ------------------------------------------------------------------------ graph

    def _keep_graph_input(self, module, args):
        # The first training forward's input, cut to one sample: the trace needs a real input
        # and the callback sees no data otherwise.
        self._graph_hook.remove()
        self._graph_hook = None
        self._graph_input = tree.map_structure(
            lambda t: t[:1].detach() if isinstance(t, torch.Tensor) else t, args)

    def _write_graph(self) -> None:
        inputs, self._graph_input = self._graph_input, None
        was_training = self.model.training
        self.model.eval()
        try:
            with warnings.catch_warnings():
                # torch.jit's tracer warns about every Python branch it freezes.
                warnings.simplefilter("ignore")
                self._writer("train").add_graph(self.model, inputs, use_strict_trace=False)
        except Exception as error:  # a model torch.jit cannot trace: no graph, training goes on
            warnings.warn(f"TensorBoard(write_graph=True) could not trace the model, so no graph "
                          f"was written ({type(error).__name__}: {error}). Pass "
                          "write_graph=False to skip it.", stacklevel=2)
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------------ weights

    def _log_weights(self, epoch: int) -> None:
        writer = self._writer("train")
        channels_last = config.image_data_format() == "channels_last"
        for layer in self.model.layers if hasattr(self.model, "layers") else [self.model]:
            for weight in getattr(layer, "weights", ()):
                name = str(getattr(weight, "path", None) or getattr(weight, "name", "weight"))
                name = name.replace(":", "_")
                value = weight.detach().float().cpu()
                writer.add_histogram(f"{name}/histogram", value, epoch)
                if self.write_images:
                    image = _weight_image(value, channels_last)
                    if image is not None:
                        writer.add_image(f"{name}/image", image, epoch, dataformats="NHWC")

    def _log_embeddings(self, epoch: int) -> None:
        metadata = self.embeddings_metadata
        for layer in self.model.modules():
            if not isinstance(layer, Embedding) or not layer.built:
                continue
            path = metadata if isinstance(metadata, (str, os.PathLike)) else (
                (metadata or {}).get(layer.name))
            labels, header = _read_metadata(path) if path is not None else (None, None)
            self._writer("train").add_embedding(
                layer.embeddings.detach().float().cpu(), metadata=labels,
                metadata_header=header, global_step=epoch, tag=layer.name)

    # ------------------------------------------------------------------------ profiler

    def _start_profiler(self) -> None:
        from torch import profiler

        activities = [profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(profiler.ProfilerActivity.CUDA)
        self._profiler = profiler.profile(
            activities=activities,
            on_trace_ready=profiler.tensorboard_trace_handler(os.path.join(self.log_dir, "train")))
        self._profiler.start()

    def _stop_profiler(self) -> None:
        if self._profiler is not None:
            self._profiler.stop()
            self._profiler = None


def _profile_range(profile_batch: Any) -> tuple[int, int] | None:
    """Keras's forms: 0 (off), a batch number, a (start, stop) pair, or "start,stop"."""
    value = profile_batch
    if isinstance(value, str):
        try:
            value = [int(part) for part in value.split(",")]
        except ValueError:
            value = None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return (value, value) if value else None
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            and 0 < value[0] <= value[1]):
        return value[0], value[1]
    raise ValueError(
        "profile_batch must be a non-negative integer or 2-tuple of positive integers. A pair "
        "of positive integers signifies a range of batches to profile. "
        f"Found: {profile_batch!r}")


def _weight_image(value: torch.Tensor, channels_last: bool) -> torch.Tensor | None:
    """Keras's picture of a weight, (images, height, width, 1), or None for other ranks."""
    value = value.squeeze()
    if value.ndim == 1:  # a bias: one row
        image = value.reshape(1, 1, -1, 1)
    elif value.ndim == 2:  # a dense kernel, the longer side horizontal
        if value.shape[0] > value.shape[1]:
            value = value.T
        image = value.reshape(1, *value.shape, 1)
    elif value.ndim == 3:  # a 1-D convolution kernel: one image per channel
        if channels_last:
            value = value.permute(2, 0, 1)
        image = value.unsqueeze(-1)
    else:
        return None
    low, high = image.min(), image.max()
    # add_image reads floats as [0, 1]: min-max scaling keeps the weights' structure visible.
    return (image - low) / (high - low) if high > low else torch.zeros_like(image)


def _read_metadata(path: Any) -> tuple[list, list | None]:
    with open(path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    if lines and "\t" in lines[0]:
        return [line.split("\t") for line in lines[1:]], lines[0].split("\t")
    return lines, None
