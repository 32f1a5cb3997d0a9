"""Oracles for the recurrent layer tests (tests/support/layer_test.py runs their table).

The references below are Keras's equations written in numpy (float64) from the weights the layer
returns through `get_weights()`, i.e. in Keras's layouts and gate orders (LSTM i, f, c, o; GRU
z, r, h). `keras_recurrence` is Keras's backend loop: a masked step keeps the previous states and
repeats the previous output (zeros before the first real step, or zeros when
`zero_output_for_mask`), `go_backwards` processes (and returns) the reversed sequence.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

Array = np.ndarray

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
    "hard_sigmoid": lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "linear": lambda x: x,
}


def simple_rnn_step(weights: list[Array], activation: str = "tanh", **_: Any) -> Callable:
    kernel, recurrent, bias = (weights + [0.0])[:3]
    f = ACTIVATIONS[activation]

    def step(x: Array, states: list[Array]) -> tuple[Array, list[Array]]:
        h = f(x @ kernel + states[0] @ recurrent + bias)
        return h, [h]

    return step


def lstm_step(weights: list[Array], activation: str = "tanh",
              recurrent_activation: str = "sigmoid", **_: Any) -> Callable:
    kernel, recurrent, bias = (weights + [0.0])[:3]
    f, gate = ACTIVATIONS[activation], ACTIVATIONS[recurrent_activation]

    def step(x: Array, states: list[Array]) -> tuple[Array, list[Array]]:
        h, c = states
        z_i, z_f, z_c, z_o = np.split(x @ kernel + h @ recurrent + bias, 4, axis=-1)
        c = gate(z_f) * c + gate(z_i) * f(z_c)
        h = gate(z_o) * f(c)
        return h, [h, c]

    return step


def gru_step(weights: list[Array], activation: str = "tanh",
             recurrent_activation: str = "sigmoid", reset_after: bool = True, **_: Any) -> Callable:
    kernel, recurrent = weights[:2]
    units = recurrent.shape[0]
    bias = weights[2] if len(weights) > 2 else np.zeros((2, 3 * units) if reset_after
                                                         else (3 * units,))
    f, gate = ACTIVATIONS[activation], ACTIVATIONS[recurrent_activation]

    def step(x: Array, states: list[Array]) -> tuple[Array, list[Array]]:
        h = states[0]
        input_bias = bias[0] if reset_after else bias
        x_z, x_r, x_h = np.split(x @ kernel + input_bias, 3, axis=-1)
        if reset_after:
            h_z, h_r, h_h = np.split(h @ recurrent + bias[1], 3, axis=-1)
            z, r = gate(x_z + h_z), gate(x_r + h_r)
            candidate = f(x_h + r * h_h)
        else:
            h_z, h_r = np.split(h @ recurrent[:, :2 * units], 2, axis=-1)
            z, r = gate(x_z + h_z), gate(x_r + h_r)
            candidate = f(x_h + (r * h) @ recurrent[:, 2 * units:])
        h = z * h + (1.0 - z) * candidate
        return h, [h]

    return step


STEPS = {"SimpleRNN": simple_rnn_step, "LSTM": lstm_step, "GRU": gru_step}
STATE_COUNT = {"SimpleRNN": 1, "LSTM": 2, "GRU": 1}


def keras_recurrence(step: Callable, x: Array, states: list[Array], mask: Array | None = None,
                     go_backwards: bool = False, zero_output_for_mask: bool = False
                     ) -> tuple[Array, Array, list[Array]]:
    """Keras's RNN loop. Returns (outputs (batch, time, units), last output, final states)."""
    if go_backwards:
        x = x[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    outputs = []
    previous = None
    for t in range(x.shape[1]):
        output, new_states = step(x[:, t], states)
        if mask is not None:
            keep = mask[:, t, None]
            new_states = [np.where(keep, n, s) for n, s in zip(new_states, states)]
            fill = np.zeros_like(output) if previous is None or zero_output_for_mask else previous
            output = np.where(keep, output, fill)
        previous, states = output, new_states
        outputs.append(output)
    return np.stack(outputs, axis=1), previous, states


def reference_call(layer: Any, x: Array, mask: Array | None = None,
                   initial_states: list[Array] | None = None) -> Any:
    """What a built-in recurrent layer should return, from Keras's equations."""
    kind = type(layer).__name__
    config = layer.get_config()
    step = STEPS[kind](layer.get_weights(), **config)
    batch = x.shape[0]
    if initial_states is None:
        initial_states = [np.zeros((batch, layer.units))] * STATE_COUNT[kind]
    outputs, last, states = keras_recurrence(step, x, list(initial_states), mask,
                                             layer.go_backwards, layer.zero_output_for_mask)
    output = outputs if layer.return_sequences else last
    return [output, *states] if layer.return_state else output


def keras_reference(layer: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """`reference_call` as a layer table's reference: tensors in, tensors out."""
    expected = reference_call(layer, x.numpy())
    return [torch.from_numpy(np.ascontiguousarray(e)) for e in
            (expected if isinstance(expected, list) else [expected])]
