"""`lamina.wrap(module)`: any plain `nn.Module` (a hand-written `Net`) as a lamina Model, with
compile/fit/evaluate/predict/save_weights, sharing the module's parameters."""

from __future__ import annotations

from typing import Any

from torch import nn

from lamina.models.model import Model


class WrappedModule(Model):
    """A Model whose forward pass is a plain torch module's `forward`.

    The module is registered as the model's only layer, so its parameters *are* the model's:
    training through `fit` updates the module you passed. Train/eval mode follows the model's
    (fit switches to training mode; direct calls and predict run in eval mode).
    """

    def __init__(self, module: nn.Module, name: str | None = None):
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"lamina.wrap expects a torch.nn.Module. Received: {module!r} of type "
                f"{type(module).__name__}."
            )
        super().__init__(name=name or type(module).__name__.lower())
        self.module = module
        module.train(False)
        self.built = True

    def call(self, inputs: Any, training: Any = None) -> Any:
        if isinstance(inputs, (list, tuple)):
            return self.module(*inputs)
        if isinstance(inputs, dict):
            return self.module(**inputs)
        return self.module(inputs)

    def get_config(self):
        raise ValueError(
            f"A wrapped {type(self.module).__name__} has no Keras config: its architecture is "
            "Python code. Save its weights with model.save_weights('w.weights.h5') (or "
            "torch.save(model.state_dict(), path)) and rebuild the module in code to load them."
        )


def wrap(module: nn.Module, name: str | None = None) -> WrappedModule:
    """Turn a plain `nn.Module` into a lamina Model that can `compile`, `fit`, `evaluate`,
    `predict` and `save_weights`, sharing the module's parameters.

    >>> import torch.nn as nn
    >>> model = wrap(nn.Linear(4, 2))
    >>> model.compile(optimizer="sgd", loss="mse")
    """
    return WrappedModule(module, name=name)
