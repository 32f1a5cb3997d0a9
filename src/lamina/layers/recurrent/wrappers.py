"""Layer wrappers for sequences: Bidirectional (an RNN run both ways) and TimeDistributed (a layer
applied to every time step)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.layer import Layer

Tensor = torch.Tensor

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _renamed_copy(layer: Layer, name: str, **changes: Any) -> Layer:
    """A fresh layer from `layer`'s config (no weights carried over), renamed."""
    config_dict = {**layer.get_config(), "name": name, **changes}
    return type(layer).from_config(config_dict)


@register("Bidirectional")
class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards over the sequence and merges
    the two outputs: `concat` (default), `sum`, `mul`, `ave`, or None (a list of both).

    The backward outputs are flipped back into input order before merging when
    `return_sequences`. With `return_state`, the result is `[output, *forward_states,
    *backward_states]`. As in Keras, the wrapped layer is re-created from its config (fresh
    weights, named `forward_<name>`), and with `return_sequences` masked steps output zeros.

    Args:
        layer: a recurrent layer (`LSTM`, `GRU`, `SimpleRNN`, `RNN`, or any layer with
            `go_backwards`, `return_sequences` and `return_state`).
        merge_mode: how to combine the two directions.
        weights: initial weights, forward layer's then backward layer's.
        backward_layer: the layer for the backward direction (default: a copy of `layer` with
            `go_backwards=True`). It must match `layer` in `stateful`, `return_sequences` and
            `return_state`, and differ in `go_backwards`.

    >>> from lamina import layers
    >>> layers.Bidirectional(layers.LSTM(4))(torch.ones(2, 5, 3)).shape
    torch.Size([2, 8])
    """

    def __init__(self, layer: Layer, merge_mode: str | None = "concat", weights: Any = None,
                 backward_layer: Layer | None = None, **kwargs: Any):
        super().__init__(weights=weights, **kwargs)
        recurrent_attributes = ("go_backwards", "return_sequences", "return_state")
        for argument, value in (("layer", layer), ("backward_layer", backward_layer)):
            if value is None and argument == "backward_layer":
                continue
            if not isinstance(value, Layer) or \
                    not all(hasattr(value, a) for a in recurrent_attributes):
                raise ValueError(
                    f"Bidirectional `{argument}` must be a recurrent lamina layer (LSTM, GRU, "
                    "SimpleRNN, RNN, or a Layer with go_backwards, return_sequences and "
                    f"return_state). Received: {argument}={value!r}."
                )
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Bidirectional `merge_mode` must be one of 'concat', 'sum', 'mul', 'ave' or "
                f"None. Received: merge_mode={merge_mode!r}."
            )
        base_name = layer.name.removeprefix("forward_")
        self.forward_layer = _renamed_copy(layer, f"forward_{base_name}")
        if backward_layer is None:
            self.backward_layer = _renamed_copy(
                layer, f"backward_{layer.name.removeprefix('backward_')}", go_backwards=True
            )
        else:
            self.backward_layer = backward_layer
        self._check_directions()
        for direction in (self.forward_layer, self.backward_layer):
            if hasattr(direction, "zero_output_for_mask"):
                direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        if self._batch_input_shape is None:
            # Keras 2 code gives the input shape to the wrapped layer; the wrapper is what a
            # Sequential model sees first.
            self._batch_input_shape = getattr(layer, "_batch_input_shape", None)
        self.stateful = layer.stateful if hasattr(layer, "stateful") else False
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True

    def _check_directions(self) -> None:
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(
                "Bidirectional needs a forward and a backward layer with different `go_backwards` "
                f"values. Received: forward go_backwards={forward.go_backwards}, backward "
                f"go_backwards={backward.go_backwards}."
            )
        for attribute in ("stateful", "return_sequences", "return_state"):
            forward_value = getattr(forward, attribute, None)
            backward_value = getattr(backward, attribute, None)
            if forward_value != backward_value:
                raise ValueError(
                    f"Bidirectional's forward and backward layers must have the same "
                    f"`{attribute}`. Received: {forward_value} (forward) and {backward_value} "
                    "(backward)."
                )

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.forward_layer._maybe_build(input_shape)
        self.backward_layer._maybe_build(input_shape)
        self._takes_training = self.forward_layer._call_takes_training
        self._takes_mask = self.forward_layer._call_takes_mask

    def call(self, sequences, initial_state=None, mask=None, training=None):
        kwargs: dict[str, Any] = {}
        if self._takes_training:
            kwargs["training"] = training
        if self._takes_mask and mask is not None:
            kwargs["mask"] = mask
        forward_kwargs, backward_kwargs = dict(kwargs), dict(kwargs)
        if initial_state is not None:
            # The forward layer's states come first; Keras splits the list in halves, which is
            # the same when both directions have the same states.
            split = len(getattr(self.forward_layer, "state_size", ())) or len(initial_state) // 2
            forward_kwargs["initial_state"] = list(initial_state[:split])
            backward_kwargs["initial_state"] = list(initial_state[split:])
        y = self.forward_layer(sequences, **forward_kwargs)
        y_reverse = self.backward_layer(sequences, **backward_kwargs)
        states: list[Any] = []
        if self.return_state:
            states = list(y[1:]) + list(y_reverse[1:])
            y, y_reverse = y[0], y_reverse[0]
        if self.return_sequences:
            y_reverse = y_reverse.flip(1)
        if self.merge_mode == "concat":
            output: Any = torch.cat([y, y_reverse], dim=-1)
        elif self.merge_mode == "sum":
            output = y + y_reverse
        elif self.merge_mode == "ave":
            output = (y + y_reverse) / 2
        elif self.merge_mode == "mul":
            output = y * y_reverse
        else:
            output = [y, y_reverse]
        if self.return_state:
            return (output if self.merge_mode is None else [output]) + states
        return output

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(tuple(input_shape))
        states: list[Any] = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            shape = tuple(shape[:-1]) + (shape[-1] * 2,)
        outputs: list[Any] = [shape, shape] if self.merge_mode is None else [tuple(shape)]
        if self.return_state:
            return outputs + states + states
        return outputs if self.merge_mode is None else tuple(shape)

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        masks = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            state_count = len(getattr(self.forward_layer, "state_size", [])) * 2
            return masks + [None] * state_count
        return masks if self.merge_mode is None else output_mask

    @property
    def states(self) -> list[Any] | None:
        forward_states = getattr(self.forward_layer, "states", None)
        backward_states = getattr(self.backward_layer, "states", None)
        if forward_states and backward_states:
            return list(forward_states) + list(backward_states)
        return None

    def reset_states(self, states: Any = None) -> None:
        """Reset both directions' states (zeros, or `states`: forward's then backward's)."""
        if not self.stateful:
            raise AttributeError(
                f"Layer {self.name!r} (Bidirectional) is not stateful, so it has no states to "
                "reset. Wrap a layer created with stateful=True."
            )
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        states = list(states)
        half = len(states) // 2
        self.forward_layer.reset_states(states[:half])
        self.backward_layer.reset_states(states[half:])

    def reset_state(self) -> None:
        """Keras 3's name for `reset_states()`."""
        self.reset_states()

    def get_config(self):
        from lamina.saving.serialization import serialize

        return {**super().get_config(), "layer": serialize(self.forward_layer),
                "merge_mode": self.merge_mode, "backward_layer": serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config_dict, custom_objects=None, safe_mode=True):
        from lamina.saving.serialization import deserialize

        config_dict = dict(config_dict)
        layer = deserialize(config_dict.pop("layer"), custom_objects, safe_mode=safe_mode)
        backward = config_dict.pop("backward_layer", None)
        if backward is not None:
            backward = deserialize(backward, custom_objects, safe_mode=safe_mode)
        return cls(layer, backward_layer=backward, **config_dict)


@register("TimeDistributed")
class TimeDistributed(Layer):
    """Applies a layer to every time step of `(batch, timesteps, ...)` inputs, with the same
    weights at every step: `outputs[:, t] = layer(inputs[:, t])`.

    The time axis is folded into the batch (`(batch * timesteps, ...)`, a view for contiguous
    inputs), so the wrapped layer runs once per call, not once per step. A `(batch, timesteps)`
    mask is folded the same way for layers that take one, and passed through to the output.

    >>> from lamina import layers
    >>> layers.TimeDistributed(layers.Dense(4))(torch.ones(2, 5, 3)).shape
    torch.Size([2, 5, 4])
    """

    def __init__(self, layer: nn.Module, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(layer, nn.Module):
            raise ValueError(
                "TimeDistributed `layer` must be a lamina layer (or a torch.nn.Module). "
                f"Received: layer={layer!r}."
            )
        self.layer = layer
        self.supports_masking = True

    def _child_shape(self, input_shape: Any) -> tuple:
        input_shape = tuple(input_shape)
        if len(input_shape) < 3:
            raise ShapeError(
                f"Input 0 of layer {self.name!r} (TimeDistributed) is incompatible: expected rank "
                f">= 3 (batch, timesteps, ...), but received an input of shape {input_shape}. "
                "TimeDistributed applies its layer along axis 1, the time axis."
            )
        return (input_shape[0],) + input_shape[2:]

    def build(self, input_shape):
        child_shape = self._child_shape(input_shape)
        if isinstance(self.layer, Layer):
            self.layer._maybe_build(child_shape)
        self._takes_training = bool(getattr(self.layer, "_call_takes_training", False))
        self._takes_mask = bool(getattr(self.layer, "_call_takes_mask", False))

    def call(self, inputs, training=None, mask=None):
        if inputs.ndim < 3:
            raise ShapeError(
                f"Input 0 of layer {self.name!r} (TimeDistributed) is incompatible: expected rank "
                f">= 3 (batch, timesteps, ...), but received an input of shape "
                f"{tuple(inputs.shape)}."
            )
        batch, steps = inputs.shape[:2]
        kwargs: dict[str, Any] = {}
        if self._takes_training:
            kwargs["training"] = training
        if self._takes_mask and mask is not None:
            kwargs["mask"] = mask.flatten(0, 1)
        outputs = self.layer(inputs.flatten(0, 1), **kwargs)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(o.unflatten(0, (batch, steps)) for o in outputs)
        return outputs.unflatten(0, (batch, steps))

    def compute_output_shape(self, input_shape):
        child_shape = self._child_shape(input_shape)
        compute = getattr(self.layer, "compute_output_shape", None)
        if compute is None:
            from lamina._symbolic import output_shape_by_probe

            return output_shape_by_probe(self, input_shape)
        child_output = tuple(compute(child_shape))
        return (child_output[0], tuple(input_shape)[1]) + child_output[1:]

    def get_config(self):
        from lamina.saving.serialization import serialize

        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config_dict, custom_objects=None, safe_mode=True):
        from lamina.saving.serialization import deserialize

        config_dict = dict(config_dict)
        layer = deserialize(config_dict.pop("layer"), custom_objects, safe_mode=safe_mode)
        return cls(layer, **config_dict)
