"""SimpleRNNCell and SimpleRNN: the fully connected recurrence `h_t = f(x_t W + h_{t-1} U + b)`."""

from __future__ import annotations

from typing import Any

import torch

from lamina._registry import register
from lamina.layers.recurrent.base import (
    _BaseCell,
    _BaseRNN,
    is_activation,
)
from lamina.layers.recurrent.cell_layer import make_cell, with_cell_arguments



@register("SimpleRNNCell")
class SimpleRNNCell(_BaseCell):
    """One step of a fully connected RNN: `h_t = activation(x_t @ kernel + h_{t-1} @
    recurrent_kernel + bias)`; the output is `h_t`.

    Args:
        units: dimensionality of the output and of the state.
        activation: activation function or its name (default tanh; None: linear).
        use_bias: whether to add a bias vector.
        dropout: fraction of the inputs dropped (one mask per sequence), in [0, 1).
        recurrent_dropout: fraction of the recurrent state dropped, in [0, 1).
        seed: makes the dropout masks reproducible.

    Weights (Keras layout): `kernel (input_dim, units)`, `recurrent_kernel (units, units)`,
    `bias (units,)`.
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._configure(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                        bias_initializer, kernel_regularizer, recurrent_regularizer,
                        bias_regularizer, kernel_constraint, recurrent_constraint, bias_constraint,
                        dropout, recurrent_dropout, seed)
        self.state_size = self.units

    def build(self, input_shape):
        self._add_weights(input_shape, (self.units,), self.bias_initializer)
        if self.use_bias:
            self._add_zero_recurrent_bias()
        if is_activation(self.activation, "tanh"):
            self._fused_mode = "RNN_TANH"
        elif is_activation(self.activation, "relu"):
            self._fused_mode = "RNN_RELU"

    def _step(self, projected, states, recurrent_masks):
        output = self.activation(projected + self._recurrent(states[0], self.recurrent_kernel,
                                                             recurrent_masks))
        return output, [output]

    def _fused_params(self):
        weights = [self.kernel.t(), self.recurrent_kernel.t()]
        return weights + [self.bias, self._zero_bias] if self.use_bias else weights

    def get_config(self):
        return {**super().get_config(), **self._common_config()}


@register("SimpleRNN")
@with_cell_arguments(SimpleRNNCell)
class SimpleRNN(_BaseRNN):
    """Fully connected RNN whose output is fed back as the next state:
    `h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)`.

    Runs in torch's fused `rnn_tanh`/`rnn_relu` kernel when the activation is tanh or relu and
    recurrent dropout is off (or not training); otherwise in a step loop with the same result.

    Args:
        units: dimensionality of the output space.
        activation: activation function (default tanh).
        dropout, recurrent_dropout: fractions of the inputs / recurrent state dropped, in [0, 1).
        return_sequences: return the output of every step, not only the last.
        return_state: also return the final state: `[output, state]`.
        go_backwards: process the sequence in reverse and return the reversed outputs.
        stateful: carry the final state of each batch into the next; needs a fixed batch size.
        unroll: accepted for Keras compatibility; changes nothing numerically.
        seed: makes the dropout masks reproducible.
        zero_output_for_mask, use_cudnn: (keyword-only) see `RNN`.

    Input shape: `(batch, timesteps, features)`. Output shape: `(batch, units)`, or
    `(batch, timesteps, units)` with `return_sequences`.

    >>> SimpleRNN(4)(torch.ones(2, 5, 3)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        *,
        zero_output_for_mask: bool = False,
        use_cudnn: Any = "auto",
        **kwargs: Any,
    ):
        super().__init__(return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask, use_cudnn=use_cudnn,
                         activity_regularizer=activity_regularizer, **kwargs)
        # Every constructor argument the cell takes goes to it (see cell_layer.py).
        self._set_cell(make_cell(self, SimpleRNNCell, locals(), "simple_rnn_cell"))

    def get_config(self):
        return {**super().get_config(), **self._cell_config(), **self._rnn_config()}
