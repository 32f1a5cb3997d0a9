"""Training on logits when the model ends in a softmax or sigmoid that the loss can absorb.

The usual (every tutorial's) classifier ends in `Dense(n, activation="softmax")` and
compiles `'sparse_categorical_crossentropy'` on probabilities: a softmax, a clip and a log, each
with its backward, where torch's `cross_entropy` on the logits is one fused kernel and exact.
When the rule of `lamina.losses.logits_equivalent` applies, the default `train_step` runs the
final layer without its activation and computes the loss's `from_logits=True` twin on the
pre-activation values; `predict`, `evaluate` and any direct call still apply the activation.
The loss value is the same wherever the probabilities lie in `[epsilon, 1 - epsilon]`, and its
gradient is the exact one everywhere (see `lamina.losses.probabilistic`).

Fused only when every condition holds (`plan` returns None otherwise):
- the model is a `Sequential` or functional model with one output, produced by one call of a
  `Dense`, `Activation` or convolution layer whose `activation` is `softmax` (last axis) or
  `sigmoid`, with no activity regularizer on that layer (its penalty reads the probabilities);
- one compiled loss that has a logits twin for that activation (a softmax loss over the last
  axis), and no overridden `compute_loss`;
- no `jit_compile` (the compiled graph would see the activation change between calls).

A step during which the final layer has a forward hook (the training doctor watching sigmoid
outputs for saturation, a user's probe) runs unfused: an observer of that layer sees its
activation's output, as it would without the fusion.

Metrics that only compare class scores (the accuracies, top-k) are monotone in the softmax and
read the logits directly; any other metric gets the probabilities, computed without autograd.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from lamina import activations
from lamina import losses as losses_module
from lamina import metrics as metrics_module
from lamina.layers.convolutional._base import _BaseConvolution
from lamina.layers.core import Activation, Dense
from lamina.models.functional import Functional
from lamina.models.sequential import Sequential
from lamina.training.precision import _exit_float32

Tensor = torch.Tensor

# Metrics whose value depends only on the order of the class scores, which softmax keeps.
_ORDER_ONLY = (metrics_module.SparseCategoricalAccuracy, metrics_module.CategoricalAccuracy,
               metrics_module.TopKCategoricalAccuracy)
_ACTIVATIONS = {activations.softmax: "softmax", activations.sigmoid: "sigmoid"}


class FusedOutput:
    """The final layer whose activation the loss absorbs, and the loss on logits."""

    def __init__(self, layer: torch.nn.Module, activation: str, loss: Any) -> None:
        self.layer = layer
        self.activation = activation
        self.loss = loss
        self._original = layer.activation
        self._metrics_take_logits: bool | None = None

    def observed(self) -> bool:
        """Whether a forward hook watches the final layer's output (bf16's float32 fallback
        hooks aside: they do not read it)."""
        hooks = self.layer._forward_hooks
        return bool(hooks) and any(getattr(hook, "func", hook) is not _exit_float32
                                   for hook in hooks.values())

    def forward(self, forward: Callable[[Any], Any], x: Any) -> Tensor:
        """The model's output before the final activation. The layer's activation is linear
        only during this call: `fit` holds the model (concurrency.training), so no predict
        from another thread runs meanwhile."""
        layer = self.layer.__dict__
        layer["activation"] = activations.linear
        try:
            return forward(x)
        finally:
            layer["activation"] = self._original

    def metric_outputs(self, logits: Tensor, metrics: list) -> Tensor:
        """What the compiled metrics read: the logits when every metric only compares class
        scores under a softmax, else the probabilities."""
        if self._metrics_take_logits is None:
            self._metrics_take_logits = self.activation == "softmax" and all(
                isinstance(m, _ORDER_ONLY) and not getattr(m, "_fn_kwargs", {}).get(
                    "from_sorted_ids", False) for m in metrics)
        if self._metrics_take_logits:
            return logits
        if self.activation == "softmax":
            return activations.softmax(logits)
        return torch.sigmoid(logits)


def plan(trainer: Any) -> FusedOutput | None:
    """The fusion `trainer`'s model and loss allow, or None (see the module docstring)."""
    if trainer.jit_compile or trainer._model_compute_loss is not None:
        return None
    loss = _single_loss(trainer.loss_argument)
    if loss is None:
        return None
    layer = final_layer(trainer.model)
    if layer is None or any(getattr(m, "activity_regularizer", None) is not None
                            for m in (layer, trainer.model)):
        return None
    activation = _ACTIVATIONS.get(getattr(layer, "activation", None))
    if activation is None:
        return None
    if activation == "softmax" and getattr(loss, "axis", -1) != -1:
        return None
    twin = losses_module.logits_equivalent(loss, activation)
    if twin is None:
        return None
    return FusedOutput(layer, activation, twin)


def _single_loss(argument: Any) -> Any:
    if isinstance(argument, (list, tuple)) and len(argument) == 1:
        argument = argument[0]
    if not isinstance(argument, (str, losses_module.Loss)):
        return None
    return losses_module.get(argument)


def final_layer(model: torch.nn.Module) -> torch.nn.Module | None:
    """The layer whose single call produces the model's single output, when it is one whose
    `activation` is applied last (Dense, Activation, convolutions); else None."""
    if type(model).call not in (Sequential.call, Functional.call):
        return None
    if isinstance(model, Sequential):
        stack = model.layers
        if not stack:
            return None
        layer = stack[-1]
        calls = sum(1 for other in stack if other is layer)
    elif isinstance(model, Functional):
        outputs = model._flat_outputs
        if len(outputs) != 1 or isinstance(model._outputs_struct, (list, tuple, dict)):
            return None
        layer = outputs[0].node.layer
        calls = sum(1 for node in model._nodes if node.layer is layer)
    else:
        return None
    if isinstance(layer, (Sequential, Functional)):
        return final_layer(layer) if calls == 1 else None
    if calls != 1 or not isinstance(layer, (Dense, Activation, _BaseConvolution)):
        return None
    return layer
