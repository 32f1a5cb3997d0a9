"""Oracles and the case table shared by the recurrent layer tests.

The references below are Keras's equations written in numpy (float64) from the weights the layer
returns through `get_weights()`, i.e. in Keras's layouts and gate orders (LSTM i, f, c, o; GRU
z, r, h). `keras_recurrence` is Keras's backend loop: a masked step keeps the previous states and
repeats the previous output (zeros before the first real step, or zeros when
`zero_output_for_mask`), `go_backwards` processes (and returns) the reversed sequence.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import torch

from lamina import layers

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


def random_input(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float64
                 ) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def randomize_weights(layer: Any, seed: int = 0, scale: float = 0.5) -> None:
    """Random weights everywhere, biases included, so a reference that drops a term fails."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0.0, scale, w.shape) for w in layer.get_weights()])


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def to_numpy(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [to_numpy(v) for v in value]
    return value.detach().cpu().numpy()


@dataclasses.dataclass
class RecurrentCase:
    """One configuration of a built-in recurrent layer (input `(batch, time, features)`)."""

    id: str
    cls: type
    kwargs: dict[str, Any]
    fused: bool = True

    def make(self, **overrides: Any) -> Any:
        return self.cls(**{**self.kwargs, **overrides})


CASES = [
    RecurrentCase("simple_rnn", layers.SimpleRNN, {"units": 5}),
    RecurrentCase("simple_rnn_relu_sequences", layers.SimpleRNN,
                  {"units": 5, "activation": "relu", "return_sequences": True}),
    RecurrentCase("simple_rnn_softsign_state_backwards", layers.SimpleRNN,
                  {"units": 4, "activation": "softsign", "return_state": True,
                   "go_backwards": True}, fused=False),
    RecurrentCase("simple_rnn_no_bias", layers.SimpleRNN,
                  {"units": 3, "use_bias": False, "return_sequences": True}),
    RecurrentCase("lstm", layers.LSTM, {"units": 5}),
    RecurrentCase("lstm_sequences_state", layers.LSTM,
                  {"units": 4, "return_sequences": True, "return_state": True}),
    RecurrentCase("lstm_backwards_state", layers.LSTM,
                  {"units": 4, "go_backwards": True, "return_state": True}),
    RecurrentCase("lstm_backwards_sequences", layers.LSTM,
                  {"units": 3, "go_backwards": True, "return_sequences": True}),
    RecurrentCase("lstm_hard_sigmoid", layers.LSTM,
                  {"units": 4, "recurrent_activation": "hard_sigmoid", "return_sequences": True},
                  fused=False),
    RecurrentCase("lstm_no_bias", layers.LSTM, {"units": 3, "use_bias": False}),
    RecurrentCase("gru", layers.GRU, {"units": 5}),
    RecurrentCase("gru_sequences_state_backwards", layers.GRU,
                  {"units": 4, "return_sequences": True, "return_state": True,
                   "go_backwards": True}),
    RecurrentCase("gru_reset_before", layers.GRU, {"units": 4, "reset_after": False}, fused=False),
    RecurrentCase("gru_reset_before_sequences_state", layers.GRU,
                  {"units": 3, "reset_after": False, "return_sequences": True,
                   "return_state": True, "go_backwards": True}, fused=False),
    RecurrentCase("gru_no_bias", layers.GRU, {"units": 3, "use_bias": False,
                                              "return_sequences": True}),
    RecurrentCase("gru_linear", layers.GRU, {"units": 3, "activation": "linear"}, fused=False),
]

INPUT_SHAPE = (3, 6, 4)


def built_case(case: RecurrentCase, seed: int = 0, **overrides: Any) -> Any:
    """A float64 layer of the case, built on INPUT_SHAPE, with random weights."""
    layer = case.make(dtype="float64", **overrides)
    layer(random_input(INPUT_SHAPE))
    randomize_weights(layer, seed)
    return layer


def step_loop_twin(layer: Any) -> Any:
    """The same layer with the same weights, forced onto the Python step loop."""
    twin = type(layer).from_config({**layer.get_config(), "use_cudnn": False})
    twin(random_input((1, 2, layer._input_dim), dtype=layer.cell.kernel.dtype))
    twin.set_weights(layer.get_weights())
    return twin


def padded_batch(lengths: list[int], steps: int, features: int, padding: str, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Sequences of the given lengths, padded with zeros 'pre' or 'post' to `steps`.
    Returns (batch, mask, the unpadded sequences)."""
    sequences = [random_input((1, n, features), seed=seed + i) for i, n in enumerate(lengths)]
    batch = torch.zeros(len(lengths), steps, features, dtype=torch.float64)
    mask = torch.zeros(len(lengths), steps, dtype=torch.bool)
    for i, (sequence, n) in enumerate(zip(sequences, lengths)):
        where = slice(0, n) if padding == "post" else slice(steps - n, steps)
        batch[i, where] = sequence[0]
        mask[i, where] = True
    return batch, mask, sequences
