"""Precision in every call, as Keras 3 defines it: a layer computes in its policy's dtype whether
or not its model was compiled; `.to(dtype)` of a mixed layer leaves no policy that disagrees with
its weights; a layer casts floating inputs to its dtype. Oracles: Keras 3 on its torch backend
(where installed), torch's own autocast on the same weights, numpy float64 recurrences, and
`gradcheck` in float64."""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina as keras
from lamina import layers
from lamina.training import precision

os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture
def restore_policy():
    before = keras.mixed_precision.global_policy().name
    yield
    keras.mixed_precision.set_global_policy(before)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """The float32-fallback rule of a CPU with bf16 units, whatever this CPU is."""
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: True)


@pytest.fixture
def keras3():
    module = pytest.importorskip("keras")
    if module.backend.backend() != "torch":
        pytest.skip("Keras 3 runs here on its torch backend only (KERAS_BACKEND=torch)")
    yield module
    module.mixed_precision.set_global_policy("float32")


def _mixed_model():
    """A convolution (bf16 at any size), a Dense too small for bf16 on a CPU (a float32 island by
    its GEMM's size) and a `dtype="float32"` head (an island by its policy)."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = keras.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.Flatten(),
                              layers.Dense(16, activation="relu"),
                              layers.Dense(2, dtype="float32")])
    keras.mixed_precision.set_global_policy("float32")
    seen: dict[str, set] = {}
    for layer in model.layers:
        layer.register_forward_hook(
            lambda module, inputs, output: seen.setdefault(module.name, set()).add(output.dtype))
    return model, seen


def test_an_uncompiled_model_computes_as_a_compiled_predict_does(restore_policy, bf16_cpu):
    model, seen = _mixed_model()
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 3)).astype("float32")
    conv, flatten, hidden, head = (layer.name for layer in model.layers)
    expected = {conv: {torch.bfloat16}, flatten: {torch.bfloat16}, hidden: {torch.float32},
                head: {torch.float32}}
    uncompiled = model.predict(x, verbose=0)
    assert seen == expected
    seen.clear()
    with torch.no_grad():
        called = model(torch.from_numpy(x))
    assert seen == expected
    model.compile(optimizer="sgd", loss="mse")
    seen.clear()
    compiled = model.predict(x, verbose=0)
    assert seen == expected
    np.testing.assert_array_equal(uncompiled, compiled)
    np.testing.assert_array_equal(called.numpy(), compiled)
    # The convolution's numbers are torch's own bf16 autocast on the same weights.
    kernel, bias = (torch.from_numpy(w) for w in model.layers[0].get_weights())
    with torch.autocast("cpu", torch.bfloat16):
        reference = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2),
                             kernel.permute(3, 2, 0, 1), bias).permute(0, 2, 3, 1)
    with torch.no_grad():
        got = model.layers[0](torch.from_numpy(x))
    assert got.dtype == reference.dtype == torch.bfloat16
    torch.testing.assert_close(got, reference, rtol=1e-2, atol=1e-2)
    float32 = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), kernel.permute(3, 2, 0, 1),
                       bias).permute(0, 2, 3, 1)
    assert (got.float() - float32).abs().max() > 1e-4  # bf16's rounding, not float32


def test_a_lone_mixed_layer_follows_the_fallback_rule(bf16_cpu):
    """Called by itself, a mixed Dense is its own outermost call: bf16 from
    CPU_BF16_MIN_DENSE_MACS multiply-adds (64 x 512 x 512) on, float32 below, as in `fit`."""
    dense = layers.Dense(512, dtype="mixed_bfloat16")
    with torch.no_grad():
        assert dense(torch.ones(64, 512)).dtype == torch.bfloat16
        assert dense(torch.ones(63, 512)).dtype == torch.float32
        assert layers.Conv1D(2, 3, dtype="mixed_bfloat16")(torch.ones(1, 5, 2)).dtype == \
            torch.bfloat16


def test_float16_policies_on_the_cpu_are_refused_in_plain_calls_as_in_predict():
    dense = layers.Dense(3, dtype="mixed_float16")
    with pytest.raises(ValueError, match=r"float16 mixed precision \(a `mixed_float16` policy "
                                         r".*needs a CUDA device, but the model runs on the CPU\. "
                                         r"On the CPU use 'mixed_bfloat16'"):
        dense(torch.ones(2, 4))


def test_a_cpu_without_bf16_units_keeps_plain_calls_in_float32(restore_policy, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: False)
    model, seen = _mixed_model()
    model.predict(np.ones((2, 8, 8, 3), "float32"), verbose=0)
    assert set().union(*seen.values()) == {torch.float32}


def test_plain_calls_match_keras_under_mixed_bfloat16(restore_policy, bf16_cpu, keras3):
    """Keras's `model(x)` of a mixed model: bf16 outputs, and the same numbers to bf16's
    precision, for a convolution and an LSTM (which stay bf16 on a CPU with bf16 units)."""
    def build(module):
        module.mixed_precision.set_global_policy("mixed_bfloat16")
        model = module.Sequential([module.layers.Input((10, 6)), module.layers.Conv1D(8, 3),
                                   module.layers.LSTM(5, return_sequences=True)])
        module.mixed_precision.set_global_policy("float32")
        return model

    theirs, ours = build(keras3), build(keras)
    ours.set_weights([w.value.detach().cpu().numpy() for w in theirs.weights])
    x = np.random.default_rng(1).normal(size=(4, 10, 6)).astype("float32")
    with torch.no_grad():
        want, got = theirs(x), ours(torch.from_numpy(x))
        want_conv, got_conv = theirs.layers[0](x), ours.layers[0](torch.from_numpy(x))
    assert got.dtype == want.dtype == torch.bfloat16
    assert got_conv.dtype == want_conv.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float().cpu(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got_conv.float(), want_conv.float().cpu(), rtol=2e-2, atol=2e-2)


def test_compiled_mixed_precision_decides_plain_calls_too(restore_policy, bf16_cpu):
    """compile(mixed_precision=...) overrides the layers' policies in every call: False keeps a
    mixed model's `model(x)` in float32, 'bfloat16' puts a float32 model's in bf16."""
    model, seen = _mixed_model()
    model.compile(optimizer="sgd", loss="mse", mixed_precision=False)
    with torch.no_grad():
        model(torch.ones(2, 8, 8, 3))
    assert set().union(*seen.values()) == {torch.float32}
    plain = keras.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3)])
    plain.compile(optimizer="sgd", loss="mse", mixed_precision="bfloat16")
    with torch.no_grad():
        assert plain(torch.ones(2, 8, 8, 3)).dtype == torch.bfloat16


def test_a_jit_compiled_mixed_model_trains_in_a_fresh_thread(restore_policy, bf16_cpu,
                                                             monkeypatch):
    """Under torch.compile the island hooks count while dynamo traces; the count is in each
    thread's dict from the start, or dynamo's guards fail on the frame they were made for (a
    first call in a thread, as here). `backend="eager"`: dynamo's tracing, without the minutes
    of a CPU kernel compile."""
    original = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: original(model, backend="eager"))
    model, seen = _mixed_model()
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    found: dict[str, Any] = {}

    def run():
        try:
            found["history"] = model.fit(x, np.zeros((8, 2), "float32"), batch_size=4,
                                         verbose=0)
        except Exception as error:  # handed to the test's thread
            found["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert "error" not in found, found.get("error")
    assert np.isfinite(found["history"].history["loss"]).all()
    assert seen[model.layers[0].name] == {torch.bfloat16}


# ---------------------------------------------------------------- .to(dtype) of a mixed layer


def test_double_on_a_mixed_model_makes_it_a_float64_model(restore_policy, tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = keras.Sequential([layers.Input((6,)), layers.Dense(4, activation="tanh"),
                              layers.Dense(3)])
    keras.mixed_precision.set_global_policy("float32")
    model.double()
    for layer in model.layers:
        assert (layer.dtype_policy.name, layer.compute_dtype, layer.variable_dtype) == (
            "float64", "float64", "float64")
        assert layer.get_config()["dtype"] == "float64"
    assert set(keras.mixed_precision.layer_compute_dtypes(model).values()) == {"float64"}
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,))
    # float32 data is cast up, as for any float64 layer.
    assert model(x.detach().float()).dtype == torch.float64
    # Saved and loaded, the float64 weights come back exactly (a mixed policy would reload
    # float32 variables).
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    for got, want in zip(restored.get_weights(), model.get_weights()):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)


def test_moves_and_float_keep_a_mixed_policy(restore_policy):
    """`.to(device)` and `.float()` leave float32 weights float32: nothing to disagree with."""
    dense = layers.Dense(3, dtype="mixed_bfloat16")
    dense(torch.ones(2, 4))
    dense.to("cpu").float()
    assert dense.dtype_policy.name == "mixed_bfloat16"
    dense.half()
    assert (dense.dtype_policy.name, dense.kernel.dtype) == ("float16", torch.float16)


# ---------------------------------------------------------------- casting inputs at the call


def _cases():
    """(name, layer factory taking dtype, input maker taking (dtype, generator))."""
    def floats(*shape):
        return lambda dtype, g: torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    def ids(dtype, g):
        return torch.randint(0, 10, (2, 5), generator=g)

    return [
        ("Dense", lambda d: layers.Dense(3, dtype=d), floats(2, 4)),
        ("Conv1D", lambda d: layers.Conv1D(2, 3, dtype=d), floats(2, 6, 3)),
        ("Conv2D", lambda d: layers.Conv2D(2, 3, dtype=d), floats(2, 5, 5, 3)),
        ("Embedding", lambda d: layers.Embedding(10, 3, dtype=d), ids),
        ("BatchNormalization", lambda d: layers.BatchNormalization(dtype=d), floats(4, 3)),
        ("LayerNormalization", lambda d: layers.LayerNormalization(dtype=d), floats(4, 3)),
        ("LSTM", lambda d: layers.LSTM(3, dtype=d), floats(2, 5, 4)),
        ("GRU", lambda d: layers.GRU(3, dtype=d), floats(2, 5, 4)),
        ("SimpleRNN", lambda d: layers.SimpleRNN(3, dtype=d), floats(2, 5, 4)),
        ("Bidirectional", lambda d: layers.Bidirectional(layers.LSTM(3, dtype=d), dtype=d),
         floats(2, 5, 4)),
        ("MultiHeadAttention", lambda d: layers.MultiHeadAttention(2, 4, dtype=d),
         floats(2, 5, 4)),
    ]


CASES = _cases()


def _call(layer, x):
    return layer(x, x) if isinstance(layer, layers.MultiHeadAttention) else layer(x)


@pytest.mark.parametrize("name, make, data", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("layer_dtype, data_dtype", [(torch.float64, torch.float32),
                                                     (torch.float32, torch.float64)])
def test_a_layer_casts_floating_inputs_to_its_dtype(name, make, data, layer_dtype, data_dtype):
    """The output is the layer's dtype and equals the call on inputs converted by hand (torch
    itself refuses the mixed dtypes: the layer, not torch, converts)."""
    g = torch.Generator().manual_seed(0)
    layer = make(str(layer_dtype).removeprefix("torch."))
    x = data(data_dtype, g)
    got = _call(layer, x)
    assert got.dtype == layer_dtype
    converted = x.to(layer_dtype) if x.is_floating_point() else x
    torch.testing.assert_close(got, _call(layer, converted), rtol=0, atol=0)


def test_output_dtypes_match_keras(keras3):
    x32 = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    for layer_dtype, data in (("float64", x32), ("float32", x32.astype("float64"))):
        for name in ("Dense", "LSTM", "GRU", "SimpleRNN", "LayerNormalization"):
            ours = getattr(layers, name)(3, dtype=layer_dtype) if name != "LayerNormalization" \
                else layers.LayerNormalization(dtype=layer_dtype)
            theirs = getattr(keras3.layers, name)(3, dtype=layer_dtype) \
                if name != "LayerNormalization" else \
                keras3.layers.LayerNormalization(dtype=layer_dtype)
            assert ours(torch.from_numpy(data)).dtype == theirs(data).dtype, (name, layer_dtype)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_a_float64_recurrent_layer_on_float32_data_matches_a_float64_recurrence(name):
    """Against numpy's float64 recurrence on the same (float32) data and weights: the layer
    computes in float64 throughout (Keras's own SimpleRNN keeps a float32 step, ~1e-7)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 4)).astype("float32")
    layer = getattr(layers, name)(5, dtype="float64", return_sequences=True)
    got = layer(torch.from_numpy(x)).detach().numpy()
    kernel, recurrent, bias = layer.get_weights()
    xs = x.astype(np.float64)

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    h = np.zeros((3, 5))
    c = np.zeros((3, 5))
    steps = []
    for t in range(7):
        if name == "SimpleRNN":
            h = np.tanh(xs[:, t] @ kernel + h @ recurrent + bias)
        elif name == "LSTM":
            i, f, g, o = np.split(xs[:, t] @ kernel + h @ recurrent + bias, 4, axis=-1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        else:  # GRU, reset_after=True: bias rows are (input, recurrent)
            xz, xr, xh = np.split(xs[:, t] @ kernel + bias[0], 3, axis=-1)
            hz, hr, hh = np.split(h @ recurrent + bias[1], 3, axis=-1)
            z, r = sigmoid(xz + hz), sigmoid(xr + hr)
            h = z * h + (1 - z) * np.tanh(xh + r * hh)
        steps.append(h)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.stack(steps, axis=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_gradcheck_of_a_float64_recurrent_layer_through_its_input_cast(name):
    """float32 data, float64 weights: gradients with respect to the kernel are exact float64
    ones (the cast happens before the recurrence, not inside it)."""
    layer = getattr(layers, name)(3, dtype="float64")
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    layer(x)
    kernel = layer.cell.kernel.detach().clone().requires_grad_(True)

    def with_kernel(k):
        return torch.func.functional_call(layer, {"cell.kernel": k}, (x,))

    assert torch.autograd.gradcheck(with_kernel, (kernel,))


def test_initial_states_and_masks_survive_the_cast():
    """Keyword tensors are cast too (Keras casts every argument), and a cast input keeps its
    Keras mask: padding after a float32 Embedding is skipped by a float64 LSTM."""
    lstm = layers.LSTM(4, dtype="float64")
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    state = [torch.randn(2, 4, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    got = lstm(x, initial_state=state)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, lstm(x.double(), initial_state=[s.double() for s in state]),
                               rtol=0, atol=0)
    model = keras.Sequential([layers.Embedding(10, 3, mask_zero=True),
                              layers.LSTM(4, dtype="float64")])
    padded = torch.tensor([[3, 4, 5, 0, 0]])
    torch.testing.assert_close(model(padded), model(padded[:, :3]), rtol=1e-12, atol=1e-12)


def test_layers_without_weights_follow_their_inputs_unless_given_a_dtype():
    """Lamina's one departure from Keras's cast: a layer without weights left at the default
    dtype computes in its inputs' dtype (float64 data stays float64 through pooling or an
    activation; Keras rounds it to float32). Given a dtype, it casts as Keras does."""
    x64 = torch.randn(2, 6, 3, dtype=torch.float64)
    assert layers.MaxPooling1D(2)(x64).dtype == torch.float64
    assert layers.Activation("relu")(x64).dtype == torch.float64
    assert layers.Activation("relu", dtype="float64")(x64.float()).dtype == torch.float64
