"""Recurrent sequence models of the reference PyTorch code (docs/provenance.md): a recurrent
stack over `(batch, steps, features)` whose output at the last step goes through a dense layer
(`out = fc(out[:, -1, :])`).

Signatures are the reference's (`LSTMModel(input_size, hidden_size, num_layers, output_size)`);
its `SimpleRNN` module is `SimpleRNNModel` here, since `SimpleRNN` is the layer. Like the
reference modules, the models return the dense layer's raw outputs (logits for classification:
compile with `from_logits=True`, or pass `output_activation='softmax'`).
"""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.layers.core import Dense, check_positive_int
from lamina.layers.recurrent import GRU, LSTM, SimpleRNN
from lamina.models.functional import Input
from lamina.models.model import Model

_LAYERS = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def _recurrent_model(kind: str, input_size: int, hidden_size: int, num_layers: int,
                     output_size: int, sequence_length: int | None, output_activation: Any,
                     name: str) -> Model:
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    check_positive_int("num_layers", num_layers)
    check_positive_int("output_size", output_size)
    if sequence_length is not None:
        check_positive_int("sequence_length", sequence_length)
    inputs = Input(shape=(sequence_length, input_size), name="sequence")
    x = inputs
    layer = _LAYERS[kind]
    for index in range(num_layers):
        # Every layer but the last hands its whole sequence to the next, as torch's stacked
        # nn.LSTM(num_layers=...) does; the last returns its final step (out[:, -1, :]).
        x = layer(hidden_size, return_sequences=index < num_layers - 1,
                  name=f"{kind}_{index}")(x)
    outputs = Dense(output_size, activation=output_activation, name="fc")(x)
    return Model(inputs, outputs, name=name)


_ARGS = """

    Args:
        input_size: features per step.
        hidden_size: units of each recurrent layer.
        num_layers: recurrent layers stacked.
        output_size: outputs of the final dense layer (`fc`).
        sequence_length: (keyword-only) fixed number of steps, or None for any length.
        output_activation: (keyword-only) activation of `fc` (None: raw outputs, as the reference).
        name: (keyword-only) the model's name.

    Input shape `(batch, steps, input_size)`; output shape `(batch, output_size)`.
    """


@register("SimpleRNNModel", kind="model")
def SimpleRNNModel(input_size: int, hidden_size: int, output_size: int, *, num_layers: int = 1,
                   sequence_length: int | None = None, output_activation: Any = None,
                   name: str = "simple_rnn_model") -> Model:
    return _recurrent_model("simple_rnn", input_size, hidden_size, num_layers, output_size,
                            sequence_length, output_activation, name)


@register("LSTMModel", kind="model")
def LSTMModel(input_size: int, hidden_size: int, num_layers: int = 1, output_size: int = 1, *,
              sequence_length: int | None = None, output_activation: Any = None,
              name: str = "lstm_model") -> Model:
    return _recurrent_model("lstm", input_size, hidden_size, num_layers, output_size,
                            sequence_length, output_activation, name)


@register("GRUModel", kind="model")
def GRUModel(input_size: int, hidden_size: int, num_layers: int = 1, output_size: int = 1, *,
             sequence_length: int | None = None, output_activation: Any = None,
             name: str = "gru_model") -> Model:
    return _recurrent_model("gru", input_size, hidden_size, num_layers, output_size,
                            sequence_length, output_activation, name)


SimpleRNNModel.__doc__ = ("The reference `SimpleRNN` module: SimpleRNN layers (tanh), then a "
                          "dense layer on the last step.\n\n    >>> SimpleRNNModel(8, 16, 3)"
                          ".output_shape\n    (None, 3)" + _ARGS)
LSTMModel.__doc__ = ("The reference `LSTMModel`: stacked LSTM layers, then a dense layer on the "
                     "last step.\n\n    >>> LSTMModel(8, 16, 2, 3).count_params()\n    3763"
                     + _ARGS)
GRUModel.__doc__ = ("The reference `GRUModel`: stacked GRU layers (Keras 3's reset_after=True), "
                    "then a dense layer on the last step.\n\n    >>> GRUModel(8, 16, 2, 3)"
                    ".output_shape\n    (None, 3)" + _ARGS)
