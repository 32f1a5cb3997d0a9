"""Bidirectional, TimeDistributed, `RNN` over built-in and custom cells, StackedRNNCells and the
cells on their own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import ShapeError

from support.layer_test import as_list, padded_batch, random_input, randomize, to_numpy

from .recurrent_references import (
    gru_step,
    keras_recurrence,
    lstm_step,
    reference_call,
    simple_rnn_step,
)

X_SHAPE = (3, 5, 4)


def built(layer, shape=X_SHAPE, seed=0):
    layer(random_input(shape))
    randomize(layer, seed)
    return layer


# ----------------------------------------------------------------- Bidirectional


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("inner", [
    lambda: layers.LSTM(3, return_sequences=True, dtype="float64"),
    lambda: layers.GRU(3, return_state=True, dtype="float64"),
    lambda: layers.SimpleRNN(3, return_sequences=True, return_state=True, dtype="float64"),
], ids=["lstm_sequences", "gru_state", "simple_rnn_sequences_state"])
def test_bidirectional_merges_forward_and_flipped_backward(inner, merge_mode) -> None:
    layer = built(layers.Bidirectional(inner(), merge_mode=merge_mode, dtype="float64"))
    x = random_input(X_SHAPE, seed=1)
    forward = as_list(reference_call(layer.forward_layer, x.numpy()))
    backward = as_list(reference_call(layer.backward_layer, x.numpy()))
    y, y_reverse = forward[0], backward[0]
    if layer.return_sequences:
        y_reverse = y_reverse[:, ::-1]
    merged = {"concat": lambda: [np.concatenate([y, y_reverse], -1)],
              "sum": lambda: [y + y_reverse], "mul": lambda: [y * y_reverse],
              "ave": lambda: [(y + y_reverse) / 2], None: lambda: [y, y_reverse]}[merge_mode]()
    want = merged + forward[1:] + backward[1:]
    got = to_numpy(as_list(layer(x)))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    declared = layer.compute_output_shape((None,) + X_SHAPE[1:])
    declared = declared if isinstance(declared, list) else [declared]
    assert [tuple(s) for s in declared] == [(None,) + g.shape[1:] for g in got]


def test_bidirectional_recreates_layers_with_keras_names() -> None:
    inner = layers.LSTM(2, name="encoder")
    layer = layers.Bidirectional(inner)
    assert layer.forward_layer is not inner
    assert layer.forward_layer.name == "forward_encoder"
    assert layer.backward_layer.name == "backward_encoder"
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    layer(torch.randn(2, 3, 4))
    assert [w.shape for w in layer.get_weights()] == [(4, 8), (2, 8), (8,)] * 2


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_bidirectional_padded_batch_equals_each_sequence_alone(padding) -> None:
    layer = built(layers.Bidirectional(layers.GRU(3, return_sequences=True, dtype="float64"),
                                       dtype="float64"), shape=(1, 6, 4))
    lengths = [6, 3, 1]
    batch, mask, sequences = padded_batch(lengths, 6, 4, padding)
    batch._keras_mask = mask
    out = layer(batch)
    assert torch.equal(out._keras_mask, mask)
    for i, sequence in enumerate(sequences):
        torch.testing.assert_close(out[i, mask[i]], layer(sequence)[0], rtol=1e-10, atol=1e-12)
        # Keras forces zero outputs at masked steps when the directions return sequences.
        assert torch.count_nonzero(out[i, ~mask[i]]) == 0


def test_bidirectional_custom_backward_layer_initial_state_and_weights() -> None:
    forward = layers.LSTM(3, return_sequences=True)
    backward = layers.GRU(3, return_sequences=True, go_backwards=True)
    layer = layers.Bidirectional(forward, backward_layer=backward)
    x = torch.randn(2, 4, 5)
    assert layer(x).shape == (2, 4, 6)
    assert layer.backward_layer is backward
    assert layer.count_params() == 4 * 3 * 9 + 3 * 3 * 10
    states = [torch.randn(2, 3) for _ in range(3)]
    y = layer(x, initial_state=states)
    torch.testing.assert_close(y[..., :3], layer.forward_layer(x, initial_state=states[:2]))
    torch.testing.assert_close(y[..., 3:],
                               layer.backward_layer(x, initial_state=states[2:]).flip(1))
    copy = layers.Bidirectional(layers.LSTM(3, return_sequences=True),
                                backward_layer=layers.GRU(3, return_sequences=True,
                                                          go_backwards=True),
                                weights=layer.get_weights())
    torch.testing.assert_close(copy(x), layer(x))


def test_bidirectional_config_round_trip_and_gradcheck() -> None:
    layer = built(layers.Bidirectional(layers.LSTM(2, return_sequences=True, dtype="float64"),
                                       merge_mode="ave", dtype="float64"), shape=(2, 3, 2))
    copy = layers.Bidirectional.from_config(layer.get_config())
    assert copy.get_config() == layer.get_config()
    x = random_input((2, 3, 2), seed=3)
    copy(x)
    copy.set_weights(layer.get_weights())
    torch.testing.assert_close(copy(x), layer(x))
    assert torch.autograd.gradcheck(lambda v: layer(v), (x.clone().requires_grad_(),))


def test_bidirectional_stateful_and_input_shape_on_the_inner_layer() -> None:
    model = lamina.Sequential([
        layers.Bidirectional(layers.LSTM(3, stateful=True), batch_input_shape=(2, 4, 5)),
        layers.Dense(1),
    ])
    bidirectional = model.layers[0]
    assert all(torch.count_nonzero(s) == 0 for s in bidirectional.states)
    model(torch.randn(2, 4, 5))
    assert len(bidirectional.states) == 4
    assert all(torch.count_nonzero(s) > 0 for s in bidirectional.states)
    bidirectional.reset_states()
    assert all(torch.count_nonzero(s) == 0 for s in bidirectional.states)
    keras2_style = lamina.Sequential([
        layers.Bidirectional(layers.LSTM(3, return_sequences=True, input_shape=(4, 5))),
        layers.Dense(1),
    ])
    assert keras2_style.output_shape == (None, 4, 1)
    with pytest.raises(AttributeError, match=r"not stateful"):
        layers.Bidirectional(layers.LSTM(2)).reset_states()


@pytest.mark.parametrize("make, message", [
    (lambda: layers.Bidirectional(layers.LSTM(2), merge_mode="max"),
     r"`merge_mode` must be one of 'concat', 'sum', 'mul', 'ave' or None. Received: "
     r"merge_mode='max'"),
    (lambda: layers.Bidirectional(layers.Dense(2)), r"`layer` must be a recurrent lamina layer"),
    (lambda: layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(2)),
     r"different `go_backwards`.*forward go_backwards=False, backward go_backwards=False"),
    (lambda: layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(
        2, go_backwards=True, return_sequences=True)),
     r"same `return_sequences`. Received: False \(forward\) and True \(backward\)"),
], ids=["merge_mode", "not_recurrent", "same_direction", "mismatch"])
def test_bidirectional_errors(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# ----------------------------------------------------------------- TimeDistributed


def test_time_distributed_dense_per_step() -> None:
    dense = layers.Dense(3, dtype="float64")
    layer = layers.TimeDistributed(dense, dtype="float64")
    x = random_input((2, 4, 5))
    y = layer(x)
    assert y.shape == (2, 4, 3)
    for t in range(4):
        torch.testing.assert_close(y[:, t], dense(x[:, t]))
    assert layer.count_params() == 5 * 3 + 3
    assert layer.compute_output_shape((None, 4, 5)) == (None, 4, 3)
    symbolic = lamina.Sequential([lamina.Input((None, 5)), layers.TimeDistributed(layers.Dense(3))])
    assert symbolic.output_shape == (None, None, 3)
    assert torch.autograd.gradcheck(lambda v: layer(v), (x.clone().requires_grad_(),))


def test_time_distributed_higher_rank_and_training_flag() -> None:
    flatten = layers.TimeDistributed(layers.Flatten())
    assert flatten(torch.randn(2, 3, 4, 5)).shape == (2, 3, 20)
    assert flatten.compute_output_shape((None, 3, 4, 5)) == (None, 3, 20)
    dropout = layers.TimeDistributed(layers.Dropout(0.5))
    x = torch.ones(4, 3, 10)
    torch.testing.assert_close(dropout(x), x)
    assert set(dropout(x, training=True).unique().tolist()) == {0.0, 2.0}


def test_time_distributed_passes_the_mask_through() -> None:
    tokens = torch.tensor([[1, 2, 0], [3, 0, 0]])
    embedded = layers.Embedding(5, 4, mask_zero=True)(tokens)
    out = layers.TimeDistributed(layers.Dense(2))(embedded)
    assert torch.equal(out._keras_mask, tokens != 0)


def test_time_distributed_config_and_errors() -> None:
    layer = layers.TimeDistributed(layers.Dense(2))
    layer(torch.randn(1, 2, 3))
    copy = layers.TimeDistributed.from_config(layer.get_config())
    assert copy.get_config() == layer.get_config()
    with pytest.raises(ShapeError, match=r"'time_distributed\w*' \(TimeDistributed\).*rank >= 3 "
                                         r"\(batch, timesteps, \.\.\.\).*shape \(4, 3\)"):
        layers.TimeDistributed(layers.Dense(2))(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"`layer` must be a lamina layer.*Received: layer=3"):
        layers.TimeDistributed(3)


# ----------------------------------------------------------------- RNN and cells


class MinimalRNNCell(lamina.layers.Layer):
    """The custom cell of Keras's RNN documentation: `h_t = x_t @ W + h_{t-1} @ U`."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                initializer="orthogonal", name="recurrent_kernel")

    def call(self, inputs, states):
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]


@pytest.mark.parametrize("go_backwards", [False, True])
def test_rnn_with_a_custom_cell_follows_keras(go_backwards) -> None:
    layer = built(layers.RNN(MinimalRNNCell(3, dtype="float64"), return_sequences=True,
                             return_state=True, go_backwards=go_backwards, dtype="float64"))
    x = random_input(X_SHAPE, seed=2)
    mask = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [1, 0, 1, 0, 1]], dtype=bool)
    kernel, recurrent = layer.get_weights()

    def step(x_t, states):
        h = x_t @ kernel + states[0] @ recurrent
        return h, [h]

    for m in (None, mask):
        outputs, _, states = keras_recurrence(step, x.numpy(), [np.zeros((3, 3))], m,
                                              go_backwards)
        got = to_numpy(layer(x, mask=None if m is None else torch.from_numpy(m)))
        np.testing.assert_allclose(got[0], outputs, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[1], states[0], rtol=1e-10, atol=1e-12)
    config = layer.get_config()
    copy = layers.RNN.from_config(config, custom_objects={"MinimalRNNCell": MinimalRNNCell})
    copy(x)
    copy.set_weights(layer.get_weights())
    torch.testing.assert_close(copy(x)[0], layer(x)[0])


@pytest.mark.parametrize("cell, whole", [
    (lambda: layers.LSTMCell(3, dtype="float64"), lambda: layers.LSTM(3, dtype="float64")),
    (lambda: layers.GRUCell(3, reset_after=False, dtype="float64"),
     lambda: layers.GRU(3, reset_after=False, dtype="float64")),
    (lambda: layers.SimpleRNNCell(3, dtype="float64"),
     lambda: layers.SimpleRNN(3, dtype="float64")),
], ids=["lstm", "gru", "simple_rnn"])
def test_rnn_over_a_builtin_cell_equals_the_layer(cell, whole) -> None:
    rnn = built(layers.RNN(cell(), dtype="float64"))
    layer = whole()
    layer(random_input(X_SHAPE))
    layer.set_weights(rnn.get_weights())
    x = random_input(X_SHAPE, seed=4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    torch.testing.assert_close(rnn(x), layer(x))
    torch.testing.assert_close(rnn(x, mask=mask), layer(x, mask=mask))


def test_cells_alone_follow_their_equations() -> None:
    x = random_input((2, 4), seed=5)
    for cell, step, count in [
        (layers.LSTMCell(3, dtype="float64"), lstm_step, 2),
        (layers.GRUCell(3, dtype="float64"), gru_step, 1),
        (layers.GRUCell(3, reset_after=False, recurrent_activation="hard_sigmoid",
                        dtype="float64"), gru_step, 1),
        (layers.SimpleRNNCell(3, activation="relu", dtype="float64"), simple_rnn_step, 1),
    ]:
        states = [random_input((2, 3), seed=6 + i) for i in range(count)]
        cell(x, states)
        randomize(cell)
        output, new_states = cell(x, states)
        want_output, want_states = step(cell.get_weights(), **cell.get_config())(
            x.numpy(), [s.numpy() for s in states])
        np.testing.assert_allclose(to_numpy(output), want_output, rtol=1e-10, atol=1e-12)
        for g, w in zip(new_states, want_states):
            np.testing.assert_allclose(to_numpy(g), w, rtol=1e-10, atol=1e-12)
        copy = type(cell).from_config(cell.get_config())
        assert copy.get_config() == cell.get_config()
    gru = layers.GRUCell(2)
    h = torch.zeros(1, 2)
    output, state = gru(torch.randn(1, 3), h)
    assert isinstance(state, torch.Tensor) and torch.equal(output, state)


def test_stacked_cells_equal_stacked_layers() -> None:
    stacked = built(layers.RNN([layers.LSTMCell(4, dtype="float64"),
                                layers.GRUCell(3, dtype="float64")], return_state=True,
                               dtype="float64"))
    first = layers.LSTM(4, return_sequences=True, dtype="float64")
    second = layers.GRU(3, return_state=True, dtype="float64")
    x = random_input(X_SHAPE, seed=7)
    second(first(x))
    weights = stacked.get_weights()
    first.set_weights(weights[:3])
    second.set_weights(weights[3:])
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 1]], dtype=torch.bool)
    for m in (None, mask):
        # As in Keras, each cell's states are a list: [output, [h1, c1], [h2]].
        output, (h1, c1), (h2,) = stacked(x, mask=m)
        want_output, want_h2 = second(first(x, mask=m), mask=m)
        torch.testing.assert_close(output, want_output)
        torch.testing.assert_close(h2, want_h2)
        _, want_h1, want_c1 = layers.LSTM(4, return_state=True, weights=weights[:3],
                                          dtype="float64")(x, mask=m)
        torch.testing.assert_close(h1, want_h1)
        torch.testing.assert_close(c1, want_c1)


def test_stacked_cells_with_a_custom_cell_use_the_step_loop() -> None:
    cells = layers.StackedRNNCells([layers.GRUCell(4, dtype="float64"),
                                    MinimalRNNCell(2, dtype="float64")])
    stacked = built(layers.RNN(cells, return_sequences=True, dtype="float64"))
    assert stacked._builtin_cells is None
    gru = layers.GRU(4, return_sequences=True, dtype="float64")
    minimal = layers.RNN(MinimalRNNCell(2, dtype="float64"), return_sequences=True,
                         dtype="float64")
    x = random_input(X_SHAPE, seed=8)
    minimal(gru(x))
    weights = stacked.get_weights()
    gru.set_weights(weights[:3])
    minimal.set_weights(weights[3:])
    torch.testing.assert_close(stacked(x), minimal(gru(x)))
    copy = layers.StackedRNNCells.from_config(
        cells.get_config(), custom_objects={"MinimalRNNCell": MinimalRNNCell})
    assert len(copy.cells) == 2 and copy.output_size == 2
    with pytest.raises(ValueError, match=r"StackedRNNCells needs at least one cell"):
        layers.StackedRNNCells([])
    with pytest.raises(ValueError, match=r"must have a `call\(inputs, states\)` method and a "
                                         r"`state_size`.*Dense"):
        layers.StackedRNNCells([layers.Dense(2)])
