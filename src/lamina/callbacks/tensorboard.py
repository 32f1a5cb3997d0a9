"""TensorBoard: real event files (scalars, learning rate, optional weight histograms)."""

from __future__ import annotations

import os

from lamina._registry import register
from lamina.callbacks.callback import Callback


@register("TensorBoard")
class TensorBoard(Callback):
    """Write logs for TensorBoard under `log_dir/train` and `log_dir/validation`, as Keras does:
    `epoch_loss`, `epoch_accuracy`, ... per epoch, `epoch_learning_rate`, histograms of the
    weights every `histogram_freq` epochs, and batch-level scalars with `update_freq=N`.

    `tensorboard --logdir ./logs` shows them.
    """

    _chief_only = True  # in a distributed run only rank 0 writes the event files

    def __init__(self, log_dir: str = "logs", histogram_freq: int = 0, write_graph: bool = True,
                 write_images: bool = False, write_steps_per_second: bool = False,
                 update_freq: str | int = "epoch", profile_batch: int = 0,
                 embeddings_freq: int = 0, embeddings_metadata=None):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq, self.update_freq = histogram_freq, update_freq
        self.write_graph = write_graph
        self._writers: dict[str, object] = {}
        self._step = 0

    def _writer(self, name: str):
        if name not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            self._writers[name] = SummaryWriter(os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_train_begin(self, logs=None):
        self._step = 0

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if isinstance(self.update_freq, int) and self._step % self.update_freq == 0 and logs:
            from lamina.training.trainer import logs_to_floats

            for key, value in logs_to_floats(logs).items():
                self._writer("train").add_scalar(f"batch_{key}", value, self._step)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in logs:
            logs["learning_rate"] = optimizer.learning_rate
        for key, value in logs.items():
            split = "validation" if key.startswith("val_") else "train"
            self._writer(split).add_scalar(f"epoch_{key.removeprefix('val_')}", float(value), epoch)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            for name, tensor in self.model.state_dict().items():
                if tensor.is_floating_point():
                    self._writer("train").add_histogram(name, tensor.detach().cpu(), epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
