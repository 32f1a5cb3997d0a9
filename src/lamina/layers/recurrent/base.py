"""The recurrent base classes: `_BaseCell` (what the built-in cells share), `_BaseRNN` (a layer
that runs a cell over the time axis; see runner.py for how), `RNN` over any cell, and
`StackedRNNCells`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from lamina import activations
from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._load_budget import charge_weight
from lamina._symbolic import is_probing
from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.core import check_positive_int, serialize_argument
from lamina.layers.layer import Layer
from lamina.layers.recurrent.runner import flatten_states, pack_states, run_fused, run_loop

Tensor = torch.Tensor



def check_dropout(layer: Layer, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}): `{name}` must be a float in the range "
            f"[0, 1). Received: {name}={value!r}."
        )
    return float(value)


def is_activation(function: Callable, name: str) -> bool:
    """Whether `function` is the named activation as torch's fused kernels compute it."""
    return function is activations.get(name) or function is getattr(torch, name)


class _BaseCell(Layer):
    """Common parts of SimpleRNNCell, LSTMCell and GRUCell: config, weights, dropout masks.

    A cell is one step: `call(inputs, states)` returns `(output, new_states)`. Weights are
    `kernel (input_dim, gates*units)`, `recurrent_kernel (units, gates*units)` and `bias`, in
    Keras's layouts (GRU permutes its gate blocks internally, see gru.py). Subclasses set `_gates`
    and implement `_step` (one step from the projected input) and `_fused_params`.
    """

    _gates = 1

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._cached_masks: tuple[Tensor | None, Tensor | None] | None = None
        self._generator: torch.Generator | None = None

    def _configure(self, units: Any, activation: Any, use_bias: bool, kernel_initializer: Any,
                   recurrent_initializer: Any, bias_initializer: Any, kernel_regularizer: Any,
                   recurrent_regularizer: Any, bias_regularizer: Any, kernel_constraint: Any,
                   recurrent_constraint: Any, bias_constraint: Any, dropout: Any,
                   recurrent_dropout: Any, seed: int | None) -> None:
        self.units = check_positive_int("units", units, layer=self)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.recurrent_initializer = initializers_module.get(recurrent_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers_module.get(recurrent_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)
        self.recurrent_constraint = constraints_module.get(recurrent_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        self.dropout = check_dropout(self, "dropout", dropout)
        self.recurrent_dropout = check_dropout(self, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.output_size = self.units

    def _common_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": serialize_argument(self.kernel_initializer),
            "recurrent_initializer": serialize_argument(self.recurrent_initializer),
            "bias_initializer": serialize_argument(self.bias_initializer),
            "kernel_regularizer": serialize_argument(self.kernel_regularizer),
            "recurrent_regularizer": serialize_argument(self.recurrent_regularizer),
            "bias_regularizer": serialize_argument(self.bias_regularizer),
            "kernel_constraint": serialize_argument(self.kernel_constraint),
            "recurrent_constraint": serialize_argument(self.recurrent_constraint),
            "bias_constraint": serialize_argument(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }

    # ----------------------------------------------------------------- weights

    def _add_weights(self, input_shape: Sequence[int | None], bias_shape: tuple[int, ...],
                     bias_initializer: Any) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ShapeError(
                f"Layer {self.name!r} ({type(self).__name__}) needs the feature axis of its input "
                f"to be known. Received a step input of shape {tuple(input_shape)}."
            )
        width = self._gates * self.units
        self.input_dim = input_dim
        self.kernel = self.add_weight(
            shape=(input_dim, width), initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint, name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width), initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer, constraint=self.recurrent_constraint,
            name="recurrent_kernel",
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=bias_shape, initializer=bias_initializer, regularizer=self.bias_regularizer,
                constraint=self.bias_constraint, name="bias",
            )

    def _add_zero_recurrent_bias(self) -> None:
        # torch's kernels add an input and a recurrent bias; Keras's LSTM and SimpleRNN have one.
        # A zero buffer (never saved, moved by .to()) stands in for the second.
        charge_weight(self._gates * self.units, f"{self.name}._zero_bias")
        self.register_buffer("_zero_bias", torch.zeros(self._gates * self.units,
                                                       dtype=self.kernel.dtype), persistent=False)

    def _input_bias(self) -> Tensor | None:
        return self.bias

    # ----------------------------------------------------------------- dropout

    def _dropout_masks(self, batch_size: int, training: Any) -> tuple[Tensor | None, Tensor | None]:
        """Per-sequence masks `(input (n, batch, input_dim), recurrent (n, batch, units))`.

        As Keras: one input mask shared by all gates, unless recurrent dropout is on, in which case
        each gate gets its own input and recurrent masks.
        """
        if not training or (self.dropout == 0.0 and self.recurrent_dropout == 0.0):
            return None, None
        count = self._gates if self.recurrent_dropout > 0 else 1
        input_masks = recurrent_masks = None
        if self.dropout > 0:
            input_masks = self._sample_mask((count, batch_size, self.input_dim), self.dropout)
        if self.recurrent_dropout > 0:
            recurrent_masks = self._sample_mask((count, batch_size, self.units),
                                                self.recurrent_dropout)
        return input_masks, recurrent_masks

    def _sample_mask(self, shape: tuple[int, ...], rate: float) -> Tensor:
        device = self.kernel.device
        keep = torch.empty(shape, dtype=self.kernel.dtype, device=device)
        if self.seed is not None and (self._generator is None or self._generator.device != device):
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        keep.bernoulli_(1.0 - rate, generator=self._generator)
        return keep.div_(1.0 - rate)

    # ----------------------------------------------------------------- math

    def _project(self, inputs: Tensor, masks: Tensor | None) -> Tensor:
        """`inputs (batch, time, input_dim) @ kernel + input bias` -> (batch, time, gates*units)."""
        kernel, bias = self.kernel, self._input_bias()
        if masks is None or masks.shape[0] == 1:
            if masks is not None:
                inputs = inputs * masks[0].unsqueeze(1)
            return torch.nn.functional.linear(inputs, kernel.t(), bias)
        count = masks.shape[0]
        # (gates, batch, time, input_dim) @ (gates, 1, input_dim, units)
        #   -> (gates, batch, time, units)
        per_gate = (inputs.unsqueeze(0) * masks.unsqueeze(2)) @ \
            kernel.view(kernel.shape[0], count, -1).transpose(0, 1).unsqueeze(1)
        projected = per_gate.permute(1, 2, 0, 3).flatten(2)
        return projected if bias is None else projected + bias

    @staticmethod
    def _recurrent(state: Tensor, kernel: Tensor, masks: Tensor | None) -> Tensor:
        """`state (batch, units) @ kernel`, each gate's block with its own dropout mask if any."""
        if masks is None:
            return state @ kernel
        count = masks.shape[0]
        # (gates, batch, units) @ (gates, units, units) -> (gates, batch, units)
        per_gate = torch.bmm(state.unsqueeze(0) * masks,
                             kernel.view(kernel.shape[0], count, -1).transpose(0, 1))
        return per_gate.transpose(0, 1).flatten(1)

    def _step(self, projected: Tensor, states: list[Tensor],
              recurrent_masks: Tensor | None) -> tuple[Tensor, list[Tensor]]:
        raise NotImplementedError

    def _fused_params(self) -> list[Tensor]:
        raise NotImplementedError

    # Set in build: the name of torch's fused kernel computing this cell's math, or None.
    _fused_mode: str | None = None

    # ----------------------------------------------------------------- the Keras cell API

    def get_initial_state(self, batch_size: int | None = None) -> list[Tensor]:
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        return [self.kernel.new_zeros(batch_size, size) for size in sizes]

    def call(self, inputs, states, training=None):
        single = not isinstance(states, (list, tuple))
        states = [states] if single else list(states)
        masks = self._cached_masks or self._dropout_masks(inputs.shape[0], training)
        projected = self._project(inputs.unsqueeze(1), masks[0])[:, 0]
        output, new_states = self._step(projected, states, masks[1])
        return output, (new_states[0] if single else new_states)

    def compute_output_shape(self, input_shape):
        """The shape of the step output; the states have shapes `(batch, state_size)`."""
        return (input_shape[0], self.units)


class _BaseRNN(Layer):
    """A recurrent layer: runs `self.cell` over the time axis of `(batch, timesteps, ...)` inputs.

    `call(sequences, initial_state=None, mask=None, training=None)` returns the last output
    `(batch, units)`, or all outputs `(batch, timesteps, units)` with `return_sequences`, followed
    by the final states when `return_state` (a list `[output, *states]`).
    """

    # The built-in layers (LSTM, GRU, SimpleRNN) take exactly (batch, timesteps, features).
    _exact_rank = True

    def __init__(self, *, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, use_cudnn: Any = "auto", **kwargs: Any):
        super().__init__(**kwargs)
        if use_cudnn not in ("auto", True, False):
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}): `use_cudnn` must be 'auto', True or "
                f"False. Received: use_cudnn={use_cudnn!r}."
            )
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.use_cudnn = use_cudnn
        self.supports_masking = True
        self._state_names: list[str] = []

    def _set_cell(self, cell: Any) -> None:
        if not callable(getattr(cell, "call", None)):
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}): the cell must have a `call(inputs, "
                f"states)` method. Received: cell={cell!r}."
            )
        state_size = getattr(cell, "state_size", None)
        if not isinstance(state_size, (int, list, tuple)):
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}): the cell must have a `state_size` "
                "attribute (an integer, or a list with one size per state). Received: "
                f"state_size={state_size!r} on cell {cell!r}."
            )
        self.cell = cell
        self.state_size = [state_size] if isinstance(state_size, int) else list(state_size)

    # ----------------------------------------------------------------- build

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        rank_ok = len(input_shape) == 3 if self._exact_rank else len(input_shape) >= 3
        if not rank_ok:
            raise ShapeError(
                f"Input 0 of layer {self.name!r} ({type(self).__name__}) is incompatible: expected "
                f"a sequence of rank {'3' if self._exact_rank else '>= 3'} (batch, timesteps, "
                f"features), but received an input of shape {input_shape}. A recurrent layer "
                "needs a time axis: for a single step use x[:, None, :] or Reshape((1, features))."
            )
        if input_shape[-1] is None:
            raise ShapeError(
                f"Layer {self.name!r} ({type(self).__name__}) needs the feature axis of its input "
                f"to be known. Received an input of shape {input_shape}."
            )
        step_shape = (input_shape[0],) + input_shape[2:]
        if isinstance(self.cell, Layer):
            self.cell._maybe_build(step_shape)
        self._input_rank, self._input_dim = len(input_shape), input_shape[-1]
        cells = self.cell.cells if isinstance(self.cell, StackedRNNCells) else [self.cell]
        builtin = all(isinstance(c, _BaseCell) for c in cells)
        self._builtin_cells = list(cells) if builtin else None
        self._stacked = isinstance(self.cell, StackedRNNCells)
        self._fused = [builtin and self.use_cudnn is not False and c._fused_mode is not None
                       for c in cells]
        if self.use_cudnn is True and not all(self._fused):
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}) was given use_cudnn=True, but its "
                "configuration has no fused kernel (it needs tanh/sigmoid activations and, for "
                "GRU, reset_after=True). Pass use_cudnn='auto' to fall back to the step loop."
            )
        if self.stateful:
            self._create_state_buffers(input_shape)

    def _create_state_buffers(self, input_shape: tuple) -> None:
        batch_size = input_shape[0]
        if batch_size is None:
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}) is stateful, so it needs a fixed "
                f"batch size, but received an input of shape {input_shape}. Give the model a "
                "fixed batch size: Input(shape, batch_size=...) or batch_input_shape=(batch, ...) "
                "on the first layer."
            )
        self._state_batch_size = batch_size
        initial = self.get_initial_state(batch_size)
        flat = flatten_states(initial)
        # The nesting of the states (a stack of cells nests them); the tensors live in buffers,
        # which follow .to() and stay out of the weights and the state_dict.
        self._state_structure = pack_states(initial, iter([None] * len(flat)))
        self._state_names = []
        for index, state in enumerate(flat):
            name = f"_state_{index}"
            self.register_buffer(name, state, persistent=False)
            self._state_names.append(name)

    def get_initial_state(self, batch_size: int) -> list[Any]:
        """Zero states for a batch (or the cell's own `get_initial_state`), as Keras's."""
        return self._zero_states(batch_size, None)

    def _zero_states(self, batch_size: int, like: Tensor | None) -> list[Any]:
        get_initial_state = getattr(self.cell, "get_initial_state", None)
        if get_initial_state is not None:
            states = get_initial_state(batch_size=batch_size)
            return list(states) if isinstance(states, (list, tuple)) else [states]
        dtype = like.dtype if like is not None else self._dtype
        device = like.device if like is not None else None
        return [torch.zeros(batch_size, size, dtype=dtype, device=device)
                for size in flatten_states(self.state_size)]

    # ----------------------------------------------------------------- call

    def call(self, sequences, initial_state=None, mask=None, training=None):
        inputs = sequences
        if inputs.ndim != self._input_rank or inputs.shape[-1] != self._input_dim:
            raise ShapeError(
                f"Input 0 of layer {self.name!r} ({type(self).__name__}) is incompatible: expected "
                f"shape (batch, timesteps, ..., {self._input_dim}) of rank {self._input_rank}, "
                f"but received an input of shape {tuple(inputs.shape)}."
            )
        if self.stateful and inputs.shape[0] != self._state_batch_size:
            raise ShapeError(
                f"Layer {self.name!r} ({type(self).__name__}) is stateful with batch size "
                f"{self._state_batch_size}, but received an input of shape "
                f"{tuple(inputs.shape)}. Feed batches of exactly {self._state_batch_size} samples."
            )
        if initial_state is not None:
            states = self._check_initial_state(initial_state, inputs.shape[0])
        elif self.stateful:
            states = pack_states(self._state_structure,
                                 iter(getattr(self, n) for n in self._state_names))
        else:
            states = self._zero_states(inputs.shape[0], inputs)
        if mask is not None:
            if tuple(mask.shape[:2]) != tuple(inputs.shape[:2]):
                raise ShapeError(
                    f"Layer {self.name!r} ({type(self).__name__}) received a mask of shape "
                    f"{tuple(mask.shape)} for an input of shape {tuple(inputs.shape)}; the mask "
                    "must be (batch, timesteps)."
                )
            mask = mask.bool()
        if inputs.is_meta and is_probing() and self._shapes_follow(inputs):
            # A shape probe (functional API, Sequential): the shapes follow from the config
            # alone. Running the recurrence on meta is no option: torch's fused kernels refuse
            # real weights with a meta input before the meta mode sees the call.
            return self._meta_outputs(inputs)
        if self.go_backwards:
            inputs = inputs.flip(1)
            mask = None if mask is None else mask.flip(1)
        outputs, last, states = self._run(inputs, states, mask, training)
        # A shape probe (functional API, Sequential) leaves no state behind.
        if self.stateful and not is_probing():
            for name, state in zip(self._state_names, flatten_states(states)):
                setattr(self, name, state.detach())
        output = outputs if self.return_sequences else last
        return [output, *states] if self.return_state else output

    def _check_initial_state(self, initial_state: Any, batch_size: int) -> list[Any]:
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) \
            else [initial_state]
        if len(states) != len(self.state_size):
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}) has {len(self.state_size)} "
                f"state(s) of sizes {self.state_size}, but received {len(states)} initial "
                "state(s). Pass one tensor of shape (batch, size) per state."
            )
        if self._builtin_cells is not None:
            # torch's fused LSTM kernel takes states of another size without a word and
            # returns outputs of that size; a custom cell's states may have any shape.
            expected = [(batch_size, size) for size in flatten_states(self.state_size)]
            received = [tuple(s.shape) for s in flatten_states(states)]
            if received != expected:
                # A probe's batch size is the symbolic batch axis (the states' shapes are
                # renamed so in the message).
                shown = [(None if is_probing() else batch_size, size) for _, size in expected]
                raise ShapeError(
                    f"Layer {self.name!r} ({type(self).__name__}) has state(s) of sizes "
                    f"{self.state_size}, so its initial states must have shapes {shown}, "
                    f"but received shapes {received}. Pass one tensor of shape (batch, size) "
                    "per state."
                )
        return states

    def _run(self, inputs: Tensor, states: list[Any], mask: Tensor | None,
             training: Any) -> tuple[Tensor | None, Tensor, Any]:
        """(all outputs or None, last output, final states). The states may be None when
        neither `return_state` nor `stateful` asks for them."""
        if self._builtin_cells is None:
            return self._run_generic(inputs, states, mask, training)
        need_states = self.return_state or self.stateful
        if not self._stacked:
            return self._run_builtin(0, inputs, states, mask, training, self.return_sequences,
                                     need_states, self.zero_output_for_mask)
        # Stacked built-in cells run one cell over the whole sequence at a time: the same
        # recurrence (no cell sees a later cell's output), each cell in its fused kernel.
        last_index = len(self._builtin_cells) - 1
        new_states = []
        for index, cell_states in enumerate(states):
            is_list = isinstance(cell_states, (list, tuple))
            final = index == last_index
            inputs, last, cell_new = self._run_builtin(
                index, inputs, list(cell_states) if is_list else [cell_states], mask, training,
                not final or self.return_sequences, need_states,
                final and self.zero_output_for_mask,
            )
            new_states.append(cell_new if is_list or cell_new is None else cell_new[0])
        return inputs, last, new_states

    def _run_builtin(self, index: int, inputs: Tensor, states: list[Tensor], mask: Tensor | None,
                     training: Any, need_sequences: bool, need_states: bool,
                     zero_output_for_mask: bool) -> tuple[Tensor | None, Tensor, Any]:
        cell = self._builtin_cells[index]
        input_masks, recurrent_masks = cell._dropout_masks(inputs.shape[0], training)
        if self._fused[index] and recurrent_masks is None:
            if input_masks is not None:
                inputs = inputs * input_masks[0].unsqueeze(1)
            return run_fused(cell, inputs, states, mask, need_sequences, need_states,
                             zero_output_for_mask)
        projected = cell._project(inputs, input_masks)
        return run_loop(lambda t, s: cell._step(projected[:, t], s, recurrent_masks),
                        inputs.shape[1], states, mask, need_sequences, zero_output_for_mask)

    def _run_generic(self, inputs: Tensor, states: list[Any], mask: Tensor | None,
                     training: Any) -> tuple[Tensor | None, Tensor, list[Any]]:
        cell = self.cell
        kwargs = {"training": training} if getattr(cell, "_call_takes_training", False) else {}
        members = cell.cells if isinstance(cell, StackedRNNCells) else [cell]
        builtin = [c for c in members if isinstance(c, _BaseCell)]
        for member in builtin:
            member._cached_masks = member._dropout_masks(inputs.shape[0], training)

        def step(t: int, step_states: list[Any]) -> tuple[Tensor, list[Any]]:
            output, new_states = cell(inputs[:, t], step_states, **kwargs)
            return output, list(new_states) if isinstance(new_states, (list, tuple)) \
                else [new_states]

        try:
            return run_loop(step, inputs.shape[1], states, mask, self.return_sequences,
                            self.zero_output_for_mask)
        finally:
            for member in builtin:
                member._cached_masks = None

    # ----------------------------------------------------------------- state, shapes, masks

    @property
    def states(self) -> list[Any] | None:
        """The kept states of a stateful layer (None otherwise)."""
        if not self._state_names:
            return None
        return pack_states(self._state_structure, iter(getattr(self, n) for n in self._state_names))

    def reset_states(self, states: Any = None) -> None:
        """Reset a stateful layer's states to zeros, or to `states` (arrays, one per state)."""
        if not self._state_names:
            return
        if states is None:
            for name in self._state_names:
                getattr(self, name).zero_()
            return
        values = flatten_states(list(states) if isinstance(states, (list, tuple)) else [states])
        if len(values) != len(self._state_names):
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}) has {len(self._state_names)} "
                f"state(s), but reset_states received {len(values)}."
            )
        for name, value in zip(self._state_names, values):
            current = getattr(self, name)
            value = torch.as_tensor(value, dtype=current.dtype)
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(
                    f"Layer {self.name!r} ({type(self).__name__}): state {name[1:]!r} has shape "
                    f"{tuple(current.shape)}, but reset_states received shape "
                    f"{tuple(value.shape)}."
                )
            current.copy_(value.to(current.device))

    def reset_state(self) -> None:
        """Keras 3's name for `reset_states()`."""
        self.reset_states()

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        output_size = getattr(self.cell, "output_size", None)
        if output_size is None:
            output_size = flatten_states(self.state_size)[0]
        if self.return_sequences:
            output_shape = (batch, input_shape[1], output_size)
        else:
            output_shape = (batch, output_size)
        if not self.return_state:
            return output_shape

        def state_shapes(size: Any) -> Any:
            if isinstance(size, (list, tuple)):
                return [state_shapes(s) for s in size]
            return (batch, size)

        return [output_shape] + [state_shapes(s) for s in self.state_size]

    def _shapes_follow(self, inputs: Tensor) -> bool:
        """Whether the outputs' shapes follow from the config (the inputs, mask and initial
        states are checked by then): built-in cells (a custom cell runs on meta as it is) given
        inputs of their dtype. Anything else runs, so a probe reports the error a real call
        would."""
        return self._builtin_cells is not None and \
            inputs.dtype == self._builtin_cells[0].kernel.dtype

    def _meta_outputs(self, inputs: Tensor) -> Any:
        """Empty meta tensors shaped as `call` would return for `inputs` (meta, concrete)."""
        def empty(shape: Any) -> Any:
            if isinstance(shape, list):
                return [empty(s) for s in shape]
            return inputs.new_empty(shape)

        return empty(self.compute_output_shape(tuple(inputs.shape)))

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    def _cell_config(self) -> dict[str, Any]:
        """The built-in cell's arguments, which the built-in layers take as their own."""
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        return cell_config

    def _rnn_config(self) -> dict[str, Any]:
        return {
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask, "use_cudnn": self.use_cudnn,
        }


def cell_property(name: str, doc: str = "") -> property:
    """A read-only attribute of a built-in layer that lives on its cell (as in Keras)."""
    return property(lambda self: getattr(self.cell, name), doc=doc or f"The cell's `{name}`.")


@register("RNN")
class RNN(_BaseRNN):
    """Runs any RNN cell over a sequence: `layers.RNN(cell, return_sequences=False, ...)`.

    A cell has `call(inputs_t, states) -> (output_t, new_states)` and a `state_size` (an integer
    or a list, one size per state); optionally `output_size` and `get_initial_state(batch_size)`.
    A list of cells is stacked (`StackedRNNCells`). Built-in cells (`LSTMCell`, `GRUCell`,
    `SimpleRNNCell`) run in torch's fused kernels when their configuration allows it.

    Args:
        cell: an RNN cell, or a list of cells to stack.
        return_sequences: return the output of every step, not only the last.
        return_state: also return the final states: `[output, *states]`.
        go_backwards: process the sequence in reverse and return the reversed outputs.
        stateful: keep the final states of each batch as the initial states of the next (sample
            `i` continues sample `i`); needs a fixed batch size; `reset_states()` clears them.
        unroll: accepted for Keras compatibility; it changes nothing numerically here (torch runs
            the same steps either way).
        zero_output_for_mask: masked steps output zeros instead of repeating the last output.
        use_cudnn: (keyword-only) 'auto' uses torch's fused kernel for built-in cells when
            possible, False always steps in Python, True requires the fused kernel.

    Input shape: `(batch, timesteps, ...)`. Masks: `(batch, timesteps)`, from
    `Embedding(mask_zero=True)` or `Masking`, or passed as `mask=`.

    >>> from lamina import layers
    >>> layer = layers.RNN(layers.LSTMCell(4), return_sequences=True)
    >>> layer(torch.ones(2, 5, 3)).shape
    torch.Size([2, 5, 4])
    """

    _exact_rank = False

    def __init__(self, cell: Any, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, *, use_cudnn: Any = "auto", **kwargs: Any):
        super().__init__(return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask, use_cudnn=use_cudnn, **kwargs)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        self._set_cell(cell)

    def get_config(self):
        from lamina.saving.serialization import serialize

        return {**super().get_config(), "cell": serialize(self.cell), **self._rnn_config()}

    @classmethod
    def from_config(cls, config_dict, custom_objects=None, safe_mode=True):
        from lamina.saving.serialization import deserialize

        config_dict = dict(config_dict)
        cell = deserialize(config_dict.pop("cell"), custom_objects, safe_mode=safe_mode)
        return cls(cell, **config_dict)


@register("StackedRNNCells")
class StackedRNNCells(Layer):
    """A stack of RNN cells that behaves as one cell: each step feeds cell `k`'s output to cell
    `k + 1`. Its states are the list of the cells' states.

    >>> from lamina import layers
    >>> cells = layers.StackedRNNCells([layers.LSTMCell(8), layers.GRUCell(4)])
    >>> layers.RNN(cells)(torch.ones(2, 5, 3)).shape
    torch.Size([2, 4])
    """

    def __init__(self, cells: Sequence[Any], **kwargs: Any):
        super().__init__(**kwargs)
        cells = list(cells)
        if not cells:
            raise ValueError("StackedRNNCells needs at least one cell. Received: cells=[].")
        for cell in cells:
            if not callable(getattr(cell, "call", None)) or not hasattr(cell, "state_size"):
                raise ValueError(
                    "Every cell of StackedRNNCells must have a `call(inputs, states)` method and a "
                    f"`state_size` attribute. Received: {cell!r}."
                )
        self.cells = cells

    @property
    def state_size(self) -> list[Any]:
        return [cell.state_size for cell in self.cells]

    @property
    def output_size(self) -> int:
        return _output_size(self.cells[-1])

    def get_initial_state(self, batch_size: int | None = None) -> list[Any]:
        states = []
        for cell in self.cells:
            get_initial_state = getattr(cell, "get_initial_state", None)
            if get_initial_state is not None:
                states.append(get_initial_state(batch_size=batch_size))
            else:
                sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) \
                    else [cell.state_size]
                dtype = getattr(cell, "_dtype", self._dtype)
                states.append([torch.zeros(batch_size, s, dtype=dtype) for s in sizes])
        return states

    def build(self, input_shape):
        shape = tuple(input_shape)
        for cell in self.cells:
            if isinstance(cell, Layer):
                cell._maybe_build(shape)
            shape = (shape[0], _output_size(cell))

    def call(self, inputs, states, training=None):
        new_states = []
        for cell, cell_states in zip(self.cells, states):
            is_list = isinstance(cell_states, (list, tuple))
            kwargs = {"training": training} if getattr(cell, "_call_takes_training", False) \
                else {}
            inputs, cell_new = cell(inputs, list(cell_states) if is_list else [cell_states],
                                    **kwargs)
            if not isinstance(cell_new, (list, tuple)):
                cell_new = [cell_new]
            new_states.append(list(cell_new) if is_list else cell_new[0])
        return inputs, new_states

    def compute_output_shape(self, input_shape):
        """The shape of the last cell's step output."""
        return (input_shape[0], self.output_size)

    def get_config(self):
        from lamina.saving.serialization import serialize

        return {**super().get_config(), "cells": [serialize(cell) for cell in self.cells]}

    @classmethod
    def from_config(cls, config_dict, custom_objects=None, safe_mode=True):
        from lamina.saving.serialization import deserialize

        config_dict = dict(config_dict)
        cells = [deserialize(c, custom_objects, safe_mode=safe_mode)
                 for c in config_dict.pop("cells")]
        return cls(cells, **config_dict)


def _output_size(cell: Any) -> int:
    size = getattr(cell, "output_size", None)
    if size is not None:
        return size
    return flatten_states(cell.state_size)[0]
