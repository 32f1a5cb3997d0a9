"""GRUCell and GRU (Cho et al., 2014), both of Keras's conventions: `reset_after=True` (the default,
torch's and cuDNN's) and `reset_after=False` (reset gate applied before the recurrent product).

Keras orders the gate blocks z, r, h; torch orders them r, z, n. The weights are stored with the
first two blocks swapped into torch's order, so `torch.gru` takes them as they are, and
`get_weights`/`set_weights`/saved files swap them back (`_to_keras_layout`). Regularizers and norm
constraints are unaffected by the swap (they act per element or per whole axis).
"""

from __future__ import annotations

from typing import Any

import torch

from lamina import activations
from lamina._registry import register
from lamina.layers.recurrent.base import (
    _BaseCell,
    _BaseRNN,
    is_activation,
)
from lamina.layers.recurrent.cell_layer import make_cell, with_cell_arguments

Tensor = torch.Tensor


@register("GRUCell")
class GRUCell(_BaseCell):
    """One GRU step. With `x_t @ kernel + b_in` split into blocks `x_z, x_r, x_h`:

        z = σ(x_z + h_{t-1} @ U_z + b_z)        r = σ(x_r + h_{t-1} @ U_r + b_r)
        reset_after=True:  hh = tanh(x_h + r * (h_{t-1} @ U_h + b_rec_h))
        reset_after=False: hh = tanh(x_h + (r * h_{t-1}) @ U_h)
        h_t = z * h_{t-1} + (1 - z) * hh

    (σ: recurrent_activation, tanh: activation). With `reset_after=True` the bias has an input
    row and a recurrent row, shape `(2, 3*units)`; otherwise it is `(3*units,)`.

    Args:
        units: dimensionality of the output and of the state.
        reset_after: apply the reset gate after the recurrent product (Keras 3's default, the
            cuDNN-compatible convention).
        dropout, recurrent_dropout: fractions of the inputs / recurrent state dropped, in [0, 1).
        seed: makes the dropout masks reproducible.

    Weights (Keras layout, gates z, r, h): `kernel (input_dim, 3*units)`,
    `recurrent_kernel (units, 3*units)`, `bias`.
    """

    _gates = 3

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
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
        reset_after: bool = True,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._configure(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                        bias_initializer, kernel_regularizer, recurrent_regularizer,
                        bias_regularizer, kernel_constraint, recurrent_constraint, bias_constraint,
                        dropout, recurrent_dropout, seed)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)
        self.state_size = self.units

    def build(self, input_shape):
        width = 3 * self.units
        bias_shape = (2, width) if self.reset_after else (width,)
        self._add_weights(input_shape, bias_shape, self.bias_initializer)
        if self.reset_after and is_activation(self.activation, "tanh") and \
                is_activation(self.recurrent_activation, "sigmoid"):
            self._fused_mode = "GRU"

    def _swap_update_and_reset(self, value: Tensor) -> Tensor:
        """Keras's (z, r, h) <-> torch's (r, z, n) blocks on the last axis (an involution)."""
        units = self.units
        return torch.cat([value[..., units:2 * units], value[..., :units], value[..., 2 * units:]],
                         dim=-1)

    def _from_keras_layout(self, name, value):
        return self._swap_update_and_reset(value)

    def _to_keras_layout(self, name, value):
        return self._swap_update_and_reset(value)

    def _input_bias(self):
        if self.bias is None:
            return None
        return self.bias[0] if self.reset_after else self.bias

    def _step(self, projected, states, recurrent_masks):
        # Blocks are in the stored (torch) order: r, z, h.
        h = states[0]
        units, kernel = self.units, self.recurrent_kernel
        x_r, x_z, x_h = projected.chunk(3, dim=1)
        gate = self.recurrent_activation
        if self.reset_after:
            inner = self._recurrent(h, kernel, recurrent_masks)
            if self.bias is not None:
                inner = inner + self.bias[1]
            h_r, h_z, h_h = inner.chunk(3, dim=1)
            r, z = gate(x_r + h_r), gate(x_z + h_z)
            candidate = self.activation(x_h + r * h_h)
        else:
            masks = None if recurrent_masks is None else recurrent_masks[:2]
            h_r, h_z = self._recurrent(h, kernel[:, :2 * units], masks).chunk(2, dim=1)
            r, z = gate(x_r + h_r), gate(x_z + h_z)
            h_for_candidate = h if recurrent_masks is None else h * recurrent_masks[2]
            candidate = self.activation(x_h + (r * h_for_candidate) @ kernel[:, 2 * units:])
        h = z * h + (1 - z) * candidate
        return h, [h]

    def _fused_params(self):
        weights = [self.kernel.t(), self.recurrent_kernel.t()]
        return weights + [self.bias[0], self.bias[1]] if self.use_bias else weights

    def get_config(self):
        return {**super().get_config(), **self._common_config(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "reset_after": self.reset_after}


@register("GRU")
@with_cell_arguments(GRUCell)
class GRU(_BaseRNN):
    """Gated Recurrent Unit layer (Cho et al., 2014); see `GRUCell` for the equations.

    Runs in torch's fused `torch.gru` kernel (cuDNN on a GPU) with `reset_after=True` and
    tanh/sigmoid activations when recurrent dropout is off (or not training). `reset_after=False`
    has no torch kernel and runs in the step loop.

    Args:
        units: dimensionality of the output space.
        activation, recurrent_activation: default tanh and sigmoid.
        dropout, recurrent_dropout: fractions of the inputs / recurrent state dropped, in [0, 1).
        seed: makes the dropout masks reproducible.
        return_sequences: return the output of every step, not only the last.
        return_state: also return the final state: `[output, h]`.
        go_backwards: process the sequence in reverse and return the reversed outputs.
        stateful: carry the final state of each batch into the next; needs a fixed batch size.
        unroll: accepted for Keras compatibility; changes nothing numerically.
        reset_after: the GRU convention (default True, as Keras 3).
        use_cudnn: 'auto' (fused kernel when possible), False (always the step loop) or True.
        zero_output_for_mask: (keyword-only) masked steps output zeros.

    Input shape: `(batch, timesteps, features)`. Output shape: `(batch, units)`, or
    `(batch, timesteps, units)` with `return_sequences`.

    >>> GRU(4, return_sequences=True)(torch.ones(2, 5, 3)).shape
    torch.Size([2, 5, 4])
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
        reset_after: bool = True,
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
        self._set_cell(make_cell(self, GRUCell, locals(), "gru_cell"))

    def get_config(self):
        return {**super().get_config(), **self._cell_config(), **self._rnn_config()}
