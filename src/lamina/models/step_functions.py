"""`Model.make_train_function` and its test and predict twins: one step as a callable.

Keras's torch trainer hands its step function a list holding one batch (`train_function([batch])`
inside `fit`); its TensorFlow and JAX trainers hand it an iterator. Both are taken here. The
step itself is the model's `train_step` / `test_step` / `predict_step`, run on the engine's
device, precision and optimizer exactly as `fit`, `evaluate` and `predict` run them; the
metrics accumulate across calls until `model.reset_metrics()`, as in Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lamina.training import concurrency
from lamina.training.logs import trainer_of

_KINDS = ("train", "test", "predict")


class StepFunction:
    """One `kind` step per call on `[batch]` or on the next batch of an iterator; returns the
    step's logs as a dict (train, test) or the outputs as tensors (predict)."""

    def __init__(self, model: Any, kind: str) -> None:
        if kind not in _KINDS:
            raise ValueError(f"`kind` must be one of {_KINDS}. Received: kind={kind!r}.")
        # A compiled model's engine (NotCompiledError before compile for train and test, as
        # Keras's train and test steps need the compiled loss); predict runs uncompiled too.
        self.trainer = model.__dict__.get("_lamina_trainer") if kind == "predict" \
            else trainer_of(model)
        self.model = model
        self.kind = kind
        self._device: torch.device | None = None

    def __repr__(self) -> str:
        return f"<{self.kind}_function of model {self.model.name!r}>"

    def __call__(self, data: Any) -> Any:
        from lamina.training.data_adapters import batch_to_device

        batch = _one_batch(data, self.kind)
        if self._device is None:
            self._device = self._prepare(batch)
        batch = batch_to_device(batch, self._device)
        model = self.model
        if self.kind == "train":
            with concurrency.one_training_step(model):
                return _as_dict(model.train_step(batch))
        with concurrency.inference(model), torch.no_grad():
            if self.kind == "test":
                return _as_dict(model.test_step(batch))
            return model.predict_step(batch)

    def _prepare(self, batch: Any) -> torch.device:
        """The engine's set-up before a first step (device, precision, layers built on first
        call, the optimizer bound to the weights), as fit, evaluate and predict do it."""
        from lamina.training.data_adapters import batch_to_device
        from lamina.training.trainer import _device_of

        if self.trainer is None:
            return _device_of(self.model)
        device = self.trainer._place()
        self.trainer._prepare_for(batch_to_device(batch, device), training=self.kind == "train")
        return device


def _one_batch(data: Any, kind: str) -> Any:
    if isinstance(data, (list, tuple)):
        if len(data) != 1:
            raise ValueError(
                f"{kind}_function takes a list holding one batch, `[batch]` (as Keras's torch "
                f"trainer passes it), or an iterator of batches. Received a {type(data).__name__} "
                f"of {len(data)} items: wrap a single batch as [(x, y)]."
            )
        return data[0]
    if hasattr(data, "__next__"):
        return next(data)
    raise TypeError(
        f"{kind}_function takes a list holding one batch, `[batch]`, or an iterator of batches. "
        f"Received: {type(data).__name__}. Wrap a single batch as [(x, y)], or pass "
        "iter(dataset)."
    )


def _as_dict(logs: Any) -> Any:
    # The engine's logs are computed on access; Keras returns a dict of tensors.
    return dict(logs.items()) if isinstance(logs, Mapping) else logs
