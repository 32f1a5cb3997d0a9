"""LSTMCell and LSTM (Hochreiter & Schmidhuber, 1997), in Keras's gate order i, f, c, o, which is
also torch's (i, f, g, o): the Keras weights feed `torch.lstm` unchanged."""

from __future__ import annotations

from typing import Any

import torch

from lamina import activations
from lamina import config
from lamina._registry import register
from lamina.layers.recurrent.base import (
    _BaseCell,
    _BaseRNN,
    is_activation,
)
from lamina.layers.recurrent.cell_layer import make_cell, with_cell_arguments



@register("LSTMCell")
class LSTMCell(_BaseCell):
    """One LSTM step. With `z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias` split into four
    blocks of `units`:

        i = σ(z_i)    f = σ(z_f)    o = σ(z_o)          (σ: recurrent_activation)
        c_t = f * c_{t-1} + i * tanh(z_c)              (tanh: activation)
        h_t = o * tanh(c_t)

    The output is `h_t`; the states are `[h_t, c_t]`.

    Args:
        units: dimensionality of the output and of each state.
        activation: for the candidate and the output (default tanh).
        recurrent_activation: for the gates (default sigmoid).
        unit_forget_bias: initialise the forget-gate bias to 1 (Jozefowicz et al., 2015); the
            other blocks use `bias_initializer`.
        dropout, recurrent_dropout: fractions of the inputs / recurrent state dropped, in [0, 1).
        seed: makes the dropout masks reproducible.

    Weights (Keras layout): `kernel (input_dim, 4*units)`, `recurrent_kernel (units, 4*units)`,
    `bias (4*units,)`.
    """

    _gates = 4

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
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
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def build(self, input_shape):
        bias_initializer = self.bias_initializer
        if self.unit_forget_bias:
            units, base = self.units, self.bias_initializer

            def bias_initializer(shape, dtype=None):
                dtype = config.torch_dtype(dtype)
                return torch.cat([base((units,), dtype=dtype), torch.ones(units, dtype=dtype),
                                  base((2 * units,), dtype=dtype)])

        self._add_weights(input_shape, (4 * self.units,), bias_initializer)
        if self.use_bias:
            self._add_zero_recurrent_bias()
        if is_activation(self.activation, "tanh") and \
                is_activation(self.recurrent_activation, "sigmoid"):
            self._fused_mode = "LSTM"

    def _step(self, projected, states, recurrent_masks):
        h, c = states
        if recurrent_masks is None:
            z = torch.addmm(projected, h, self.recurrent_kernel)
        else:
            z = projected + self._recurrent(h, self.recurrent_kernel, recurrent_masks)
        z_i, z_f, z_c, z_o = z.chunk(4, dim=1)
        gate = self.recurrent_activation
        c = gate(z_f) * c + gate(z_i) * self.activation(z_c)
        h = gate(z_o) * self.activation(c)
        return h, [h, c]

    def _fused_params(self):
        weights = [self.kernel.t(), self.recurrent_kernel.t()]
        return weights + [self.bias, self._zero_bias] if self.use_bias else weights

    def get_config(self):
        return {**super().get_config(), **self._common_config(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


@register("LSTM")
@with_cell_arguments(LSTMCell)
class LSTM(_BaseRNN):
    """Long Short-Term Memory layer (Hochreiter & Schmidhuber, 1997); see `LSTMCell` for the
    equations.

    Runs in torch's fused `torch.lstm` kernel (cuDNN on a GPU) with tanh/sigmoid activations when
    recurrent dropout is off (or not training); otherwise in a step loop with the same result.

    Args:
        units: dimensionality of the output space.
        activation, recurrent_activation: default tanh and sigmoid.
        unit_forget_bias: forget-gate bias initialised to 1.
        dropout, recurrent_dropout: fractions of the inputs / recurrent state dropped, in [0, 1).
        seed: makes the dropout masks reproducible.
        return_sequences: return the output of every step, not only the last.
        return_state: also return the final states: `[output, h, c]`.
        go_backwards: process the sequence in reverse and return the reversed outputs.
        stateful: carry the final states of each batch into the next; needs a fixed batch size.
        unroll: accepted for Keras compatibility; changes nothing numerically.
        use_cudnn: 'auto' (fused kernel when possible), False (always the step loop) or True.
        zero_output_for_mask: (keyword-only) masked steps output zeros.

    Input shape: `(batch, timesteps, features)`. Output shape: `(batch, units)`, or
    `(batch, timesteps, units)` with `return_sequences`.

    >>> output, h, c = LSTM(4, return_state=True)(torch.ones(2, 5, 3))
    >>> output.shape, c.shape
    (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        use_cudnn: Any = "auto",
        *,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ):
        super().__init__(return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask, use_cudnn=use_cudnn,
                         activity_regularizer=activity_regularizer, **kwargs)
        # Every constructor argument the cell takes goes to it (see cell_layer.py).
        self._set_cell(make_cell(self, LSTMCell, locals(), "lstm_cell"))

    def get_config(self):
        return {**super().get_config(), **self._cell_config(), **self._rnn_config()}
