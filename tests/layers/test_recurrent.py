"""SimpleRNN, LSTM, GRU: the sheet's snippets, Keras shapes and parameter counts, numerics against
Keras's equations, fused kernel == step loop, masks, dropout, state, gradients, config, saving,
and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import ShapeError

from support.layer_test import (
    LayerCase,
    as_list,
    built_layer,
    check_output_shape,
    check_params,
    check_reference,
    class_case,
    ids,
    padded_batch,
    random_input,
    randomize,
    to_numpy,
)

from .recurrent_references import STATE_COUNT, keras_reference, reference_call

INPUT_SHAPE = (3, 6, 4)  # (batch, timesteps, features)
BATCH, TIME, FEATURES = INPUT_SHAPE


def rnn_case(id: str, cls: type, kwargs: dict, params: int) -> LayerCase:
    """A row for a built-in recurrent layer on INPUT_SHAPE: its Keras output shapes follow from
    `units`, `return_sequences` and `return_state`; the reference is Keras's equations."""
    units = kwargs["units"]
    output = (BATCH, TIME, units) if kwargs.get("return_sequences") else (BATCH, units)
    states = [(BATCH, units)] * STATE_COUNT[cls.__name__]
    shape = [output, *states] if kwargs.get("return_state") else output
    return class_case(id, cls, kwargs, INPUT_SHAPE, shape, keras_reference, params,
                      random_weights=True)


# Keras's parameter counts, for input features f and units u: SimpleRNN u(f + u) + u, LSTM
# 4u(f + u) + 4u, GRU 3u(f + u) + 6u (reset_after: two biases) or + 3u; no bias, no bias terms.
CASES = [
    rnn_case("simple_rnn", layers.SimpleRNN, {"units": 5}, 5 * 9 + 5),
    rnn_case("simple_rnn_relu_sequences", layers.SimpleRNN,
             {"units": 5, "activation": "relu", "return_sequences": True}, 5 * 9 + 5),
    rnn_case("simple_rnn_softsign_state_backwards", layers.SimpleRNN,
             {"units": 4, "activation": "softsign", "return_state": True, "go_backwards": True},
             4 * 8 + 4),
    rnn_case("simple_rnn_no_bias", layers.SimpleRNN,
             {"units": 3, "use_bias": False, "return_sequences": True}, 3 * 7),
    rnn_case("lstm", layers.LSTM, {"units": 5}, 4 * 5 * 9 + 4 * 5),
    rnn_case("lstm_sequences_state", layers.LSTM,
             {"units": 4, "return_sequences": True, "return_state": True}, 4 * 4 * 8 + 4 * 4),
    rnn_case("lstm_backwards_state", layers.LSTM,
             {"units": 4, "go_backwards": True, "return_state": True}, 4 * 4 * 8 + 4 * 4),
    rnn_case("lstm_backwards_sequences", layers.LSTM,
             {"units": 3, "go_backwards": True, "return_sequences": True}, 4 * 3 * 7 + 4 * 3),
    rnn_case("lstm_hard_sigmoid", layers.LSTM,
             {"units": 4, "recurrent_activation": "hard_sigmoid", "return_sequences": True},
             4 * 4 * 8 + 4 * 4),
    rnn_case("lstm_no_bias", layers.LSTM, {"units": 3, "use_bias": False}, 4 * 3 * 7),
    rnn_case("gru", layers.GRU, {"units": 5}, 3 * 5 * 9 + 6 * 5),
    rnn_case("gru_sequences_state_backwards", layers.GRU,
             {"units": 4, "return_sequences": True, "return_state": True, "go_backwards": True},
             3 * 4 * 8 + 6 * 4),
    rnn_case("gru_reset_before", layers.GRU, {"units": 4, "reset_after": False},
             3 * 4 * 8 + 3 * 4),
    rnn_case("gru_reset_before_sequences_state", layers.GRU,
             {"units": 3, "reset_after": False, "return_sequences": True, "return_state": True,
              "go_backwards": True}, 3 * 3 * 7 + 3 * 3),
    rnn_case("gru_no_bias", layers.GRU, {"units": 3, "use_bias": False, "return_sequences": True},
             3 * 3 * 7),
    rnn_case("gru_linear", layers.GRU, {"units": 3, "activation": "linear"}, 3 * 3 * 7 + 6 * 3),
]
# The configurations torch has no fused kernel for: they run the Python step loop.
STEP_LOOP = {"simple_rnn_softsign_state_backwards", "lstm_hard_sigmoid", "gru_reset_before",
             "gru_reset_before_sequences_state", "gru_linear"}
FUSED = [case for case in CASES if case.id not in STEP_LOOP]


def step_loop_twin(layer):
    """The same layer with the same weights, forced onto the Python step loop."""
    twin = type(layer).from_config({**layer.get_config(), "use_cudnn": False})
    twin(random_input((1, 2, layer._input_dim), dtype=layer.cell.kernel.dtype))
    twin.set_weights(layer.get_weights())
    return twin


# ----------------------------------------------------------------- the sheet's snippets


@pytest.mark.parametrize("make, expected", [
    (lambda: layers.LSTM(128, return_sequences=True, return_state=False), [(None, 10, 128)]),
    (lambda: layers.LSTM(128, return_sequences=False, return_state=True),
     [(None, 128), (None, 128), (None, 128)]),
    (lambda: layers.GRU(128, return_sequences=True), [(None, 10, 128)]),
    (lambda: layers.Bidirectional(layers.LSTM(64)), [(None, 128)]),
], ids=["lstm_sequences", "lstm_state", "gru_sequences", "bidirectional_lstm"])
def test_sheet_snippets_give_keras_shapes(make, expected) -> None:
    eager = as_list(make()(torch.randn(4, 10, 64)))
    assert [tuple(t.shape) for t in eager] == [(4,) + s[1:] for s in expected]
    inputs = lamina.Input((10, 64))
    symbolic = as_list(make()(inputs))
    assert [t.shape for t in symbolic] == expected
    declared = make().compute_output_shape((None, 10, 64))
    assert [tuple(s) for s in (declared if isinstance(declared, list) else [declared])] == expected


def test_functional_and_sequential_builds_run_no_recurrence(monkeypatch) -> None:
    """Shapes come from the configuration (`compute_output_shape`), not from running the
    layers: with the recurrence made to fail, models still build, masks and states included."""
    from lamina.layers.recurrent import base

    def refuse(*args, **kwargs):
        raise AssertionError("a shape probe ran the recurrence")

    with monkeypatch.context() as patch:
        patch.setattr(base, "run_fused", refuse)
        patch.setattr(base, "run_loop", refuse)
        tokens = lamina.Input((None,), dtype="int64")
        embedded = layers.Embedding(10, 4, mask_zero=True)(tokens)
        sequences, h, c = layers.LSTM(3, return_sequences=True, return_state=True,
                                      go_backwards=True)(embedded)
        merged = layers.Bidirectional(layers.GRU(3, reset_after=False),
                                      merge_mode="ave")(sequences, initial_state=[h, h])
        stacked = layers.RNN([layers.LSTMCell(2), layers.SimpleRNNCell(5)])(embedded)
        model = lamina.Model(tokens, [merged, stacked, c])
        sequential = lamina.Sequential([lamina.Input((7, 4)),
                                        layers.SimpleRNN(3, return_sequences=True),
                                        layers.LSTM(2)])
        wide = layers.GRU(2, return_state=True, dtype="float64")(
            lamina.Input((4, 3), dtype="float64"))
    assert [t.dtype for t in wide] == [torch.float64, torch.float64]
    assert [t.shape for t in model.outputs] == [(None, 3), (None, 5), (None, 3)]
    assert sequential.output_shape == (None, 2)
    outputs = model(torch.tensor([[3, 1, 0], [2, 0, 0]]))
    assert [tuple(o.shape) for o in outputs] == [(2, 3), (2, 5), (2, 3)]
    assert tuple(sequential(torch.randn(2, 7, 4)).shape) == (2, 2)


def test_lstm_state_output_is_output_h_c() -> None:
    output, h, c = layers.LSTM(8, return_state=True)(torch.randn(2, 5, 3))
    torch.testing.assert_close(output, h)
    assert not torch.equal(h, c)


@pytest.mark.parametrize("make, params", [
    (lambda: layers.LSTM(128), 98_816),
    (lambda: layers.GRU(128), 74_496),
    (lambda: layers.GRU(128, reset_after=False), 74_112),
    (lambda: layers.SimpleRNN(128), 24_704),
    (lambda: layers.Bidirectional(layers.LSTM(64)), 66_048),
    (lambda: layers.RNN([layers.LSTMCell(16), layers.GRUCell(8)]), 4 * 16 * 81 + 3 * 8 * 26),
], ids=["lstm", "gru", "gru_reset_before", "simple_rnn", "bidirectional", "stacked"])
def test_parameter_counts_match_keras(make, params) -> None:
    layer = make()
    layer(torch.randn(2, 3, 64))
    assert layer.count_params() == params


def test_in_a_sequential_model_with_summary() -> None:
    model = lamina.Sequential([
        lamina.Input((10, 64)),
        layers.LSTM(128, return_sequences=True),
        layers.GRU(32),
        layers.Dense(1),
    ])
    assert model.output_shape == (None, 1)
    assert model.count_params() == 98_816 + 3 * 32 * (128 + 32 + 2) + 33


# ----------------------------------------------------------------- numerics


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_output_shapes_eager_symbolic_and_declared(case: LayerCase) -> None:
    check_output_shape(case)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_parameter_count(case: LayerCase) -> None:
    check_params(case)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_matches_keras_equations(case: LayerCase) -> None:
    check_reference(case, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_initial_state_is_used(case: LayerCase) -> None:
    layer = built_layer(case)
    x = random_input(INPUT_SHAPE, seed=2)
    count = STATE_COUNT[type(layer).__name__]
    initial = [random_input((INPUT_SHAPE[0], layer.units), seed=10 + i) for i in range(count)]
    got = to_numpy(as_list(layer(x, initial_state=initial)))
    want = as_list(reference_call(layer, x.numpy(), initial_states=[s.numpy() for s in initial]))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", FUSED, ids=[c.id for c in FUSED])
def test_fused_kernel_equals_step_loop_with_gradients(case: LayerCase) -> None:
    layer = built_layer(case)
    twin = step_loop_twin(layer)
    assert layer._fused == [True] and twin._fused == [False]
    x = random_input(INPUT_SHAPE, seed=3)
    x_fused, x_loop = x.clone().requires_grad_(), x.clone().requires_grad_()
    fused, loop = as_list(layer(x_fused)), as_list(twin(x_loop))
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    sum(t.sum() for t in fused).backward()
    sum(t.sum() for t in loop).backward()
    torch.testing.assert_close(x_fused.grad, x_loop.grad, rtol=1e-9, atol=1e-12)
    for p, q in zip(layer.trainable_weights, twin.trainable_weights):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[10], CASES[12]],
                         ids=["simple_rnn", "lstm", "gru", "gru_reset_before"])
def test_gradcheck_float64(case: LayerCase) -> None:
    layer = case.make(units=2, return_sequences=True, dtype="float64")
    x = random_input((2, 3, 2)).requires_grad_()
    layer(x)
    randomize(layer)
    mask = torch.tensor([[True, True, False], [False, True, True]])
    twin = step_loop_twin(layer)
    for candidate in (layer, twin):
        assert torch.autograd.gradcheck(lambda v: candidate(v), (x,))
        assert torch.autograd.gradcheck(lambda v: candidate(v, mask=mask), (x,))
    names = [name for name, _ in layer.named_parameters()]
    weights = tuple(w.detach().clone().requires_grad_() for w in layer.parameters())

    def with_weights(*values):
        return torch.func.functional_call(layer, dict(zip(names, values)), (x.detach(),))

    assert torch.autograd.gradcheck(with_weights, weights)


def test_get_weights_are_keras_layouts_and_gate_orders() -> None:
    lstm = layers.LSTM(3)
    lstm(torch.randn(1, 2, 5))
    assert [w.shape for w in lstm.get_weights()] == [(5, 12), (3, 12), (12,)]
    np.testing.assert_array_equal(lstm.get_weights()[2], [0, 0, 0, 1, 1, 1] + [0] * 6)
    recurrent = lstm.get_weights()[1]
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(3), atol=1e-5)
    gru = layers.GRU(3)
    gru(torch.randn(1, 2, 5))
    assert [w.shape for w in gru.get_weights()] == [(5, 9), (3, 9), (2, 9)]
    # A bias only on Keras's first block (z) must act as the update gate: with z -> 1 the state
    # never moves from zero, whatever the input.
    kernel, recurrent, bias = gru.get_weights()
    bias[:] = 0.0
    bias[0, :3] = 50.0
    gru.set_weights([kernel, recurrent, bias])
    torch.testing.assert_close(gru(torch.randn(2, 4, 5)), torch.zeros(2, 3), atol=1e-6, rtol=0)
    reset_before = layers.GRU(3, reset_after=False)
    reset_before(torch.randn(1, 2, 5))
    assert [w.shape for w in reset_before.get_weights()] == [(5, 9), (3, 9), (9,)]


def test_gru_stored_layout_round_trips_through_set_weights() -> None:
    gru = layers.GRU(4, reset_after=False)
    gru(torch.randn(1, 2, 3))
    weights = [np.random.default_rng(0).normal(size=w.shape) for w in gru.get_weights()]
    gru.set_weights(weights)
    for got, want in zip(gru.get_weights(), weights):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_unroll_changes_nothing() -> None:
    x = torch.randn(2, 5, 3)
    rolled = layers.LSTM(4, return_sequences=True)
    unrolled = layers.LSTM(4, return_sequences=True, unroll=True)
    rolled(x)
    unrolled(x)
    unrolled.set_weights(rolled.get_weights())
    torch.testing.assert_close(rolled(x), unrolled(x))


# ----------------------------------------------------------------- masks


@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[6], CASES[11], CASES[12], CASES[8]],
                         ids=["simple_rnn", "lstm", "lstm_backwards", "gru_backwards",
                              "gru_reset_before", "lstm_step_loop"])
def test_padded_batch_equals_each_sequence_alone(case: LayerCase, padding: str) -> None:
    layer = built_layer(case)
    lengths = [6, 2, 4, 1]
    batch, mask, sequences = padded_batch(lengths, 6, INPUT_SHAPE[-1], padding)
    outputs = as_list(layer(batch, mask=mask))
    for i, (sequence, n) in enumerate(zip(sequences, lengths)):
        alone = as_list(layer(sequence))
        for index, (padded, single) in enumerate(zip(outputs, alone)):
            if index == 0 and layer.return_sequences:
                real = mask[i].flip(0) if layer.go_backwards else mask[i]
                torch.testing.assert_close(padded[i, real], single[0], rtol=1e-10, atol=1e-12)
            else:
                torch.testing.assert_close(padded[i], single[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("case", [CASES[5], CASES[7], CASES[11], CASES[3], CASES[13]],
                         ids=["lstm", "lstm_backwards", "gru_backwards", "simple_rnn",
                              "gru_step_loop"])
def test_masked_outputs_follow_keras(case: LayerCase, zero_output: bool) -> None:
    layer = built_layer(case, zero_output_for_mask=zero_output)
    x = random_input(INPUT_SHAPE, seed=4)
    # right-padded, left-padded, holes in the middle, fully masked
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 0, 1],
                         [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    x = torch.cat([x, random_input((1,) + INPUT_SHAPE[1:], seed=5)])
    initial = [random_input((4, layer.units), seed=20 + i)
               for i in range(STATE_COUNT[type(layer).__name__])]
    want = as_list(reference_call(layer, x.numpy(), mask.numpy(), [s.numpy() for s in initial]))
    twin = step_loop_twin(layer)
    for candidate in (layer, twin):
        got = to_numpy(as_list(candidate(x, mask=mask, initial_state=initial)))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_masks_from_embedding_and_masking_layers() -> None:
    tokens = torch.tensor([[3, 1, 4, 0, 0], [5, 9, 0, 0, 0], [2, 6, 5, 3, 5]])
    model = lamina.Sequential([
        lamina.Input((5,), dtype="int64"),
        layers.Embedding(10, 4, mask_zero=True),
        layers.LSTM(3),
    ])
    batched = model(tokens)
    for i, row in enumerate(tokens):
        alone = model(row[row != 0][None])
        torch.testing.assert_close(batched[i], alone[0])

    features = torch.randn(2, 5, 4)
    features[0, 3:] = 0.0
    masked = lamina.Sequential([lamina.Input((5, 4)), layers.Masking(0.0),
                                layers.GRU(3, return_sequences=True)])
    out = masked(features)
    alone = masked(features[:1, :3])
    torch.testing.assert_close(out[0, :3], alone[0])
    # Keras repeats the last real output over the padded steps.
    torch.testing.assert_close(out[0, 3:], alone[0, -1:].expand(2, 3))
    assert out._keras_mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]


def test_output_mask_follows_return_sequences() -> None:
    x = torch.randn(2, 4, 3)
    x._keras_mask = torch.tensor([[True, True, False, False], [True] * 4])
    sequences = layers.LSTM(2, return_sequences=True)(x)
    assert torch.equal(sequences._keras_mask, x._keras_mask)
    output, h, c = layers.LSTM(2, return_sequences=True, return_state=True)(x)
    assert torch.equal(output._keras_mask, x._keras_mask)
    assert getattr(h, "_keras_mask", None) is None and getattr(c, "_keras_mask", None) is None
    last = layers.LSTM(2)(x)
    assert getattr(last, "_keras_mask", None) is None


# ----------------------------------------------------------------- dropout


def _identity_rnn(**kwargs) -> layers.SimpleRNN:
    """A relu SimpleRNN (torch's fused rnn_relu) fed positive values: with an identity kernel or
    recurrent kernel the outputs show the dropout masks."""
    layer = layers.SimpleRNN(64, activation="relu", use_bias=False, return_sequences=True,
                             **kwargs)
    layer(torch.zeros(1, 1, 64))
    return layer


@pytest.mark.parametrize("use_cudnn", ["auto", False])
def test_input_dropout_is_one_mask_per_sequence(use_cudnn) -> None:
    layer = _identity_rnn(dropout=0.5, seed=7, use_cudnn=use_cudnn)
    layer.set_weights([np.eye(64), np.zeros((64, 64))])
    x = torch.ones(8, 6, 64)
    out = layer(x, training=True)
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert 0.3 < (out[:, 0] == 0).float().mean().item() < 0.7
    torch.testing.assert_close(layer(x), x)


def test_recurrent_dropout_is_one_mask_per_sequence() -> None:
    layer = _identity_rnn(recurrent_dropout=0.5, seed=3)
    layer.set_weights([np.zeros((64, 64)), np.eye(64)])
    h0 = torch.ones(8, 64)
    out = layer(torch.zeros(8, 4, 64), initial_state=[h0], training=True)
    kept = out[:, 0] != 0
    for t in range(4):
        # h_t = (h_{t-1} * m) @ I with one mask m for the sequence: 2 ** (t + 1) where kept.
        torch.testing.assert_close(out[:, t], kept * 2.0 ** (t + 1))
    torch.testing.assert_close(layer(torch.zeros(8, 4, 64), initial_state=[h0])[:, -1], h0)


@pytest.mark.parametrize("make", [
    lambda: layers.LSTM(4, dropout=0.3, recurrent_dropout=0.3, seed=1),
    lambda: layers.GRU(4, dropout=0.3, recurrent_dropout=0.3, seed=1),
    lambda: layers.GRU(4, dropout=0.3, recurrent_dropout=0.3, reset_after=False, seed=1),
    lambda: layers.SimpleRNN(4, dropout=0.3, recurrent_dropout=0.3, seed=1),
], ids=["lstm", "gru", "gru_reset_before", "simple_rnn"])
def test_dropout_trains_and_is_off_in_inference(make) -> None:
    layer = make()
    x = torch.randn(3, 5, 6)
    inference = layer(x)
    torch.testing.assert_close(layer(x), inference)
    trained = layer(x, training=True)
    assert not torch.allclose(trained, inference)
    trained.sum().backward()
    assert all(w.grad is not None and torch.isfinite(w.grad).all() for w in layer.trainable_weights)
    again = make()
    again(x)
    again.set_weights(layer.get_weights())
    torch.testing.assert_close(again(x, training=True), trained)


# ----------------------------------------------------------------- state


@pytest.mark.parametrize("make", [
    lambda: layers.LSTM(4, stateful=True, return_sequences=True),
    lambda: layers.GRU(4, stateful=True, return_sequences=True, reset_after=False),
    lambda: layers.SimpleRNN(4, stateful=True, return_sequences=True),
], ids=["lstm", "gru_step_loop", "simple_rnn"])
def test_stateful_carries_state_across_batches(make) -> None:
    x = torch.randn(2, 6, 3)
    stateful, whole = make(), make()
    stateful(x[:, :3])
    whole(x)
    stateful.reset_states()
    whole.reset_states()
    whole.set_weights(stateful.get_weights())
    first, second = stateful(x[:, :3]), stateful(x[:, 3:])
    torch.testing.assert_close(torch.cat([first, second], 1), whole(x))
    assert all(not s.requires_grad for s in stateful.states)
    stateful.reset_states()
    torch.testing.assert_close(stateful(x[:, :3]), first)
    values = [np.full((2, 4), 0.5)] * len(stateful.states)
    stateful.reset_states(values)
    assert all(np.allclose(s.numpy(), 0.5) for s in stateful.states)


def test_stateful_in_functional_model_needs_fixed_batch_and_probes_keep_no_state() -> None:
    inputs = lamina.Input((5, 3), batch_size=2)
    layer = layers.LSTM(4, stateful=True, bias_initializer="ones")
    model = lamina.Model(inputs, layer(inputs))
    assert all(torch.count_nonzero(s) == 0 for s in layer.states)
    model(torch.randn(2, 5, 3))
    assert all(torch.count_nonzero(s) > 0 for s in layer.states)
    with pytest.raises(ValueError,
                       match=r"stateful, so it needs a fixed batch size.*\(None, 5, 3\)"):
        layers.GRU(4, stateful=True)(lamina.Input((5, 3)))
    with pytest.raises(ShapeError, match=r"stateful with batch size 2.*\(3, 5, 3\)"):
        layer(torch.randn(3, 5, 3))


# ----------------------------------------------------------------- config and saving


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_config_round_trip(case: LayerCase) -> None:
    layer = built_layer(case, kernel_regularizer="l2", recurrent_constraint="non_neg")
    copy = type(layer).from_config(layer.get_config())
    assert copy.get_config() == layer.get_config()
    x = random_input(INPUT_SHAPE, seed=6)
    copy(x)
    copy.set_weights(layer.get_weights())
    for a, b in zip(as_list(layer(x)), as_list(copy(x))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("make", [
    lambda: layers.LSTM(4, return_sequences=True, dropout=0.1),
    lambda: layers.GRU(4, reset_after=False, go_backwards=True),
    lambda: layers.SimpleRNN(4, activation="relu"),
    lambda: layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode="sum"),
    lambda: layers.RNN(layers.LSTMCell(4), go_backwards=True),
    lambda: layers.RNN([layers.LSTMCell(4), layers.SimpleRNNCell(2)]),
    lambda: layers.TimeDistributed(layers.Dense(2)),
], ids=["lstm", "gru", "simple_rnn", "bidirectional", "rnn_cell", "stacked", "time_distributed"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_load_in_sequential(make, suffix, tmp_path) -> None:
    model = lamina.Sequential([lamina.Input((5, 3)), make(), layers.Flatten(), layers.Dense(1)])
    x = torch.randn(2, 5, 3)
    expected = model(x)
    model.save(tmp_path / f"m{suffix}")
    loaded = lamina.models.load_model(tmp_path / f"m{suffix}")
    torch.testing.assert_close(loaded(x), expected)


def test_trains_in_fit() -> None:
    # Seeded: how fast 15 epochs converge depends on the initial weights, which would otherwise
    # depend on how many layers the tests before this one made.
    lamina.config.set_random_seed(0)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, 2, generator=generator)
    y = (x[:, :, 0].sum(1, keepdim=True) > 0).float()
    model = lamina.Sequential([lamina.Input((8, 2)), layers.GRU(8), layers.Dense(1, "sigmoid")])
    model.compile(optimizer=lamina.optimizers.Adam(0.05), loss="binary_crossentropy")
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


# ----------------------------------------------------------------- errors


def test_sequence_without_time_axis_is_a_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"'lstm\w*' \(LSTM\).*rank 3 \(batch, timesteps, "
                                         r"features\).*shape \(4, 8\).*time axis"):
        layers.LSTM(3)(torch.randn(4, 8))
    layer = layers.GRU(3)
    layer(torch.randn(2, 5, 8))
    with pytest.raises(ShapeError, match=r"\(GRU\).*\(batch, timesteps, \.\.\., 8\).*\(2, 5\)"):
        layer(torch.randn(2, 5))
    with pytest.raises(ShapeError, match=r"\(GRU\).*8\).*\(2, 5, 7\)"):
        layer(torch.randn(2, 5, 7))
    with pytest.raises(ShapeError, match=r"mask of shape \(2, 4\).*\(2, 5, 8\)"):
        layer(torch.randn(2, 5, 8), mask=torch.ones(2, 4, dtype=torch.bool))


@pytest.mark.parametrize("make, message", [
    (lambda: layers.LSTM(0), r"\(LSTM\): `units` must be a positive integer. Received: units=0"),
    (lambda: layers.GRU(-3), r"\(GRU\): `units` must be a positive integer. Received: units=-3"),
    (lambda: layers.SimpleRNN(2.5), r"`units` must be a positive integer. Received: units=2.5"),
    (lambda: layers.LSTMCell(0), r"\(LSTMCell\): `units` must be"),
    (lambda: layers.LSTM(4, dropout=1.5),
     r"\(LSTM\): `dropout` must be a float in the range \[0, 1\). Received: dropout=1.5"),
    (lambda: layers.GRU(4, recurrent_dropout=-0.1), r"`recurrent_dropout` must be .*=-0.1"),
    (lambda: layers.SimpleRNN(4, dropout=1.0), r"`dropout` must be .*Received: dropout=1.0"),
    (lambda: layers.LSTM(4, use_cudnn="yes"), r"`use_cudnn` must be 'auto', True or False"),
    (lambda: layers.RNN(object()), r"cell must have a `call\(inputs, states\)` method"),
], ids=["lstm_units", "gru_units", "float_units", "cell_units", "dropout", "recurrent_dropout",
        "dropout_one", "use_cudnn", "not_a_cell"])
def test_bad_arguments(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_use_cudnn_true_needs_a_fused_configuration() -> None:
    with pytest.raises(ValueError, match=r"use_cudnn=True.*reset_after=True"):
        layers.GRU(4, reset_after=False, use_cudnn=True)(torch.randn(1, 2, 3))
    layers.GRU(4, use_cudnn=True)(torch.randn(1, 2, 3))


def test_wrong_number_of_initial_states() -> None:
    with pytest.raises(ValueError,
                       match=r"\(LSTM\) has 2 state\(s\) of sizes \[4, 4\].*received 1"):
        layers.LSTM(4)(torch.randn(2, 3, 5), initial_state=[torch.zeros(2, 4)])


def test_initial_states_of_the_wrong_size_are_a_shape_error() -> None:
    wrong = [torch.zeros(2, 3), torch.zeros(2, 3)]
    with pytest.raises(ShapeError, match=r"\(LSTM\) has state\(s\) of sizes \[4, 4\].*"
                                         r"\[\(2, 4\), \(2, 4\)\].*\[\(2, 3\), \(2, 3\)\]"):
        layers.LSTM(4)(torch.randn(2, 3, 5), initial_state=wrong)
    with pytest.raises(ShapeError, match=r"\(GRU\).*\[\(3, 4\)\].*\[\(2, 4\)\]"):
        layers.GRU(4)(torch.randn(3, 3, 5), initial_state=[torch.zeros(2, 4)])
    # In a functional model too, where the shapes are found without running the layer.
    sequences, state = lamina.Input((3, 5)), lamina.Input((3,))
    with pytest.raises(ShapeError, match=r"\(SimpleRNN\).*\[\(None, 4\)\].*\[\(None, 3\)\]"):
        layers.SimpleRNN(4)(sequences, initial_state=[state])


def test_masked_fused_calls_pack_only_for_an_lstm_carry(monkeypatch) -> None:
    from lamina.layers.recurrent import runner

    packed_calls = []
    real_pack = runner.pack_padded_sequence

    def counting_pack(*args, **kwargs):
        packed_calls.append(1)
        return real_pack(*args, **kwargs)

    monkeypatch.setattr(runner, "pack_padded_sequence", counting_pack)
    x = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    for layer in (layers.GRU(3, return_state=True), layers.SimpleRNN(3, return_state=True),
                  layers.LSTM(3, return_sequences=True)):
        layer(x, mask=mask)
    assert packed_calls == []
    layers.LSTM(3, return_state=True)(x, mask=mask)
    assert packed_calls == [1]


@pytest.mark.parametrize("constraint", [
    lamina.constraints.MaxNorm(0.5, axis=0), lamina.constraints.MaxNorm(0.5, axis=1),
    lamina.constraints.UnitNorm(axis=0), lamina.constraints.NonNeg(),
], ids=["max_norm_axis0", "max_norm_axis1", "unit_norm", "non_neg"])
def test_gru_constraints_on_stored_weights_equal_keras_layout(constraint) -> None:
    # The trainer projects the stored tensors; GRU stores its gate blocks in torch's order.
    # (reset_after=True: the bias is 2-D, (2, 3 * units), so both axes apply to every weight.)
    layer = layers.GRU(3, kernel_constraint=constraint,
                       recurrent_constraint=constraint, bias_constraint=constraint)
    layer(torch.randn(1, 2, 4))
    randomize(layer)
    keras_weights = [constraint(torch.from_numpy(w)).numpy() for w in layer.get_weights()]
    cell = layer.cell
    with torch.no_grad():
        for attr, found in cell._constrained:
            weight = getattr(cell, attr)
            weight.copy_(found(weight))
    for got, want in zip(layer.get_weights(), keras_weights):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_weight_regularizers_add_losses() -> None:
    layer = layers.LSTM(3, kernel_regularizer=lamina.regularizers.L2(0.1),
                        recurrent_regularizer=lamina.regularizers.L1(0.01),
                        bias_regularizer=lamina.regularizers.L2(0.2))
    layer(torch.randn(2, 4, 5))
    kernel, recurrent, bias = layer.get_weights()
    want = 0.1 * (kernel ** 2).sum() + 0.01 * np.abs(recurrent).sum() + 0.2 * (bias ** 2).sum()
    np.testing.assert_allclose(sum(loss.item() for loss in layer.losses), want, rtol=1e-5)


@pytest.mark.parametrize("layer_class, cell_class", [
    (layers.SimpleRNN, layers.SimpleRNNCell), (layers.LSTM, layers.LSTMCell),
    (layers.GRU, layers.GRUCell)])
def test_layers_take_their_cells_arguments_with_the_same_defaults_and_read_them_back(
        layer_class, cell_class):
    import inspect

    cell_parameters = inspect.signature(cell_class.__init__).parameters
    layer_parameters = inspect.signature(layer_class.__init__).parameters
    names = [n for n, p in cell_parameters.items()
             if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    assert len(names) >= 15
    for name in names:
        assert layer_parameters[name].default == cell_parameters[name].default, name
    # Keras's positional order reaches the cell: (units, activation, ...).
    layer = layer_class(3, "relu", dropout=0.25, seed=7)
    assert layer.cell.activation is layer.activation
    assert (layer.units, layer.dropout, layer.seed) == (3, 0.25, 7)
    assert all(getattr(layer, name) is getattr(layer.cell, name) for name in names)
    assert layer_class.from_config(layer.get_config()).get_config() == layer.get_config()
