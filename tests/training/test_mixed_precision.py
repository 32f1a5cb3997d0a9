"""Mixed precision as Keras's mixed policies define it: the layers compute in the low dtype while
the variables (and so their gradients and updates) stay float32. Observed from inside the step
with forward hooks, so an autocast that does nothing fails here even though training still
learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina as keras
from lamina import layers
from lamina.training import precision


@pytest.fixture
def restore_policy():
    before = keras.mixed_precision.global_policy().name
    yield
    keras.mixed_precision.set_global_policy(before)


def _model_recording_dtypes():
    """A small model and the dtypes its two Dense layers output, per call, into `seen`."""
    # 64 rows x 512x512 kernels: a GEMM large enough that bf16 keeps it on the CPU (smaller
    # ones fall back to float32).
    model = keras.Sequential([layers.Dense(512, activation="relu", input_shape=(512,)),
                              layers.Dense(512)])
    seen: list[torch.dtype] = []
    for layer in model.layers:
        layer.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    return model, seen


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(128, 512)).astype("float32"), rng.integers(0, 3, size=128)


def _run(model, seen, **compile_kwargs):
    """dtypes seen in fit, evaluate and predict, and every weight's and gradient's dtype."""
    x, y = _data()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), **compile_kwargs)
    gradients: list[torch.dtype] = []
    for parameter in model.parameters():
        parameter.register_hook(lambda grad: gradients.append(grad.dtype))
    found = {}
    for name, call in [("fit", lambda: model.fit(x, y, batch_size=64, epochs=1, verbose=0)),
                       ("evaluate", lambda: model.evaluate(x, y, batch_size=64, verbose=0)),
                       ("predict", lambda: model.predict(x, batch_size=64, verbose=0))]:
        seen.clear()
        call()
        found[name] = set(seen)
    found["weights"] = {w.dtype for w in model.weights}
    found["gradients"] = set(gradients)
    return found


def test_mixed_bfloat16_computes_matmuls_in_bfloat16_and_keeps_float32_variables():
    model, seen = _model_recording_dtypes()
    found = _run(model, seen, mixed_precision="bfloat16")
    assert found["fit"] == found["evaluate"] == found["predict"] == {torch.bfloat16}
    assert found["weights"] == {torch.float32}
    # Gradients land on the float32 variables: the optimizer updates full-precision weights.
    assert found["gradients"] == {torch.float32}


def test_float32_default_computes_in_float32():
    model, seen = _model_recording_dtypes()
    found = _run(model, seen)
    assert found["fit"] == found["predict"] == {torch.float32}


def test_set_global_policy_sets_the_policy_of_layers_created_afterwards(restore_policy):
    """Keras's semantics: a layer takes the global policy when it is created; compiling later
    changes nothing, and layers that already existed keep float32."""
    before, seen_before = _model_recording_dtypes()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    policy = keras.mixed_precision.global_policy()
    # Keras's mixed_bfloat16: compute in bfloat16, variables in float32.
    assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (
        "mixed_bfloat16", "bfloat16", "float32")
    model, seen_model = _model_recording_dtypes()
    assert _run(before, seen_before)["fit"] == {torch.float32}
    found = _run(model, seen_model)
    assert found["fit"] == found["predict"] == {torch.bfloat16}
    assert found["weights"] == {torch.float32}
    # An explicit compile argument wins over the layers' policies.
    explicit, seen = _model_recording_dtypes()
    assert _run(explicit, seen, mixed_precision=False)["fit"] == {torch.float32}
    # Back to float32: models built under mixed_bfloat16 still train in bfloat16, new ones not.
    keras.mixed_precision.set_global_policy(keras.mixed_precision.Policy("float32"))
    assert _run(model, seen_model)["fit"] == {torch.bfloat16}
    mixed, seen = _model_recording_dtypes()
    assert _run(mixed, seen)["fit"] == {torch.float32}


def test_layer_dtype_properties_match_keras(restore_policy):
    """dtype_policy, compute_dtype, variable_dtype and dtype of layers created before and after
    set_global_policy, and with an explicit dtype, against Keras 3 running the same code."""
    keras3 = pytest.importorskip("keras")
    if keras3.backend.backend() != "torch":
        pytest.skip("Keras 3 runs here on its torch backend only (KERAS_BACKEND=torch)")

    def describe(module):
        created = [module.layers.Dense(3)]
        module.mixed_precision.set_global_policy("mixed_bfloat16")
        created += [module.layers.Dense(3), module.layers.Dense(3, dtype="float32"),
                    module.layers.Dense(3, dtype="float64"),
                    module.layers.Dense(3, dtype="mixed_bfloat16")]
        module.mixed_precision.set_global_policy("float32")
        created.append(module.layers.Dense(3, dtype=module.mixed_precision.DTypePolicy(
            "mixed_bfloat16")))
        return [(layer.dtype_policy.name, layer.compute_dtype, layer.variable_dtype, layer.dtype,
                 repr(layer.dtype_policy)) for layer in created]

    try:
        expected = describe(keras3)
    finally:
        keras3.mixed_precision.set_global_policy("float32")
    assert describe(keras) == expected
    assert expected[1] == ("mixed_bfloat16", "bfloat16", "float32", "float32",
                           '<DTypePolicy "mixed_bfloat16">')


def test_a_mixed_layer_keeps_its_policy_through_its_config(restore_policy):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    dense = layers.Dense(3)
    keras.mixed_precision.set_global_policy("float32")
    assert layers.Dense.from_config(dense.get_config()).compute_dtype == "bfloat16"
    # Keras writes the policy as an object; Lamina reads it back to the same policy.
    keras_config = {**dense.get_config(), "dtype": {
        "module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"},
        "registered_name": None}}
    restored = keras.saving.deserialize_keras_object(
        {"module": "keras.layers", "class_name": "Dense", "config": keras_config})
    assert restored.dtype_policy.name == "mixed_bfloat16"


def test_a_float32_output_layer_in_a_mixed_model_runs_in_float32(restore_policy):
    """Keras's idiom for a numerically sensitive head: `dtype="float32"` under a mixed
    policy."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = keras.Sequential([layers.Dense(512, activation="relu", input_shape=(512,)),
                              layers.Dense(512, dtype="float32")])
    seen: dict[str, set] = {}
    for layer in model.layers:
        layer.register_forward_hook(
            lambda module, inputs, output: seen.setdefault(module.name, set()).add(output.dtype))
    x, y = _data()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    model.fit(x, y, batch_size=64, verbose=0)
    hidden, head = (layer.name for layer in model.layers)
    assert seen == {hidden: {torch.bfloat16}, head: {torch.float32}}
    assert keras.mixed_precision.layer_compute_dtypes(model) == {hidden: "bfloat16",
                                                                 head: "float32"}
    # A compiled model that only predicts (never fit) computes as its layers' policies say.
    fresh = keras.Sequential([layers.Dense(512, activation="relu", input_shape=(512,)),
                              layers.Dense(512, dtype="float32")])
    fresh.compile(optimizer="sgd", loss="mse")
    seen = _record_outputs(fresh)
    assert fresh.predict(x, batch_size=64, verbose=0).dtype == np.float32
    assert seen == {fresh.layers[0].name: {torch.bfloat16}, fresh.layers[1].name: {torch.float32}}


def test_unknown_policy_names_the_valid_ones(restore_policy):
    with pytest.raises(ValueError, match="Unknown dtype policy 'mixed_bfloat61'. Valid policies "
                                         "are: float32, mixed_float16, mixed_bfloat16"):
        keras.mixed_precision.set_global_policy("mixed_bfloat61")
    assert keras.mixed_precision.global_policy().name == "float32"


def _record_outputs(model) -> dict[str, set]:
    seen: dict[str, set] = {}
    for layer in model.layers:
        layer.register_forward_hook(
            lambda module, inputs, output: seen.setdefault(module.name, set()).add(output.dtype))
    return seen


def test_dense_layers_with_small_gemms_fall_back_to_float32_on_cpu_and_the_report_says_so():
    """bf16 keeps a Dense when rows x input_dim x units reaches CPU_BF16_MIN_DENSE_MACS, per
    call. Observed dtypes, not the report alone: hooks record what each layer really
    outputs."""
    if not precision.cpu_has_bf16_units():
        pytest.skip("this CPU has no bf16 units: every layer falls back (tested below)")
    model = keras.Sequential([layers.Dense(512, activation="relu", input_shape=(512,)),
                              layers.Dense(10, activation="softmax")])
    seen = _record_outputs(model)
    x, y = _data()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], mixed_precision="bfloat16")
    # 64 x 512 x 512 multiply-adds is the threshold; 64 x 512 x 10 is far below it.
    assert 64 * 512 * 512 == precision.CPU_BF16_MIN_DENSE_MACS
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    big, small = (layer.name for layer in model.layers)
    assert seen == {big: {torch.bfloat16}, small: {torch.float32}}
    assert keras.mixed_precision.layer_compute_dtypes(model) == {big: "bfloat16",
                                                                 small: "float32"}
    # The same layer on fewer rows (one short of the threshold): float32, and so reported.
    seen.clear()
    probabilities = model.predict(x[:63], batch_size=63, verbose=0)
    assert seen == {big: {torch.float32}, small: {torch.float32}}
    assert keras.mixed_precision.layer_compute_dtypes(model)[big] == "float32"
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    # The fallback is the CPU's: a float32 model reports float32 everywhere.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert set(keras.mixed_precision.layer_compute_dtypes(model).values()) == {"float32"}
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert not model.layers[1]._forward_pre_hooks  # the bf16 trainer's hooks are gone


def test_a_cpu_without_bf16_units_runs_every_layer_in_float32(monkeypatch):
    """oneDNN emulates bf16 there, slower than float32: bf16 would only lose precision."""
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: False)
    model = keras.Sequential([layers.Conv1D(8, 3, input_shape=(16, 512)),
                              layers.LSTM(8), layers.Dense(512)])
    seen = _record_outputs(model)
    x = np.random.default_rng(0).normal(size=(64, 16, 512)).astype("float32")
    y = np.zeros((64, 512), "float32")
    model.compile(optimizer="sgd", loss="mse", mixed_precision="bfloat16")
    model.fit(x, y, batch_size=64, verbose=0)
    assert seen == {layer.name: {torch.float32} for layer in model.layers}
    assert set(keras.mixed_precision.layer_compute_dtypes(model).values()) == {"float32"}


@pytest.mark.parametrize("line, native", [
    # Zen 4 (this project's machine) and Sapphire Rapids (AMX) compute bf16 natively.
    ("flags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni", True),
    ("flags\t\t: fpu avx2 avx512f avx512_vnni amx_bf16 amx_tile amx_int8", True),
    # Skylake-X and Ice Lake have AVX-512 but no bf16 instructions: oneDNN emulates them.
    ("flags\t\t: fpu avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16x", False),
    ("flags\t\t: fpu sse4_2 avx2 fma", False),
    # Neoverse V1 (Graviton3) lists Arm's BF16 extension under Features.
    ("Features\t: fp asimd sve i8mm bf16 svebf16", True),
])
def test_bf16_units_are_read_from_the_cpu_flags(tmp_path, monkeypatch, line, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\n{line}\n\nprocessor\t: 1\n")
    monkeypatch.setattr(precision, "_CPUINFO", str(cpuinfo))
    assert precision.cpu_has_bf16_units.__wrapped__() is native
    monkeypatch.setattr(precision, "_CPUINFO", str(tmp_path / "missing"))
    assert precision.cpu_has_bf16_units.__wrapped__() is False


def test_bfloat16_training_reaches_the_float32_accuracy_on_digits():
    """The numerics: the same model, seed and data, trained in float32 and in mixed_bfloat16
    with its 1024x1024 layer in bf16, reach the same held-out accuracy."""
    (x, y), (x_test, y_test) = keras.datasets.digits.load_data()
    x, x_test = x.reshape(len(x), -1) / 16.0, x_test.reshape(len(x_test), -1) / 16.0
    accuracies = {}
    for mode in (None, "bfloat16"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([layers.Dense(1024, activation="relu", input_shape=(64,)),
                                  layers.Dense(1024, activation="relu"),
                                  layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      mixed_precision=mode)
        model.fit(x, y, batch_size=64, epochs=4, verbose=0)
        accuracies[mode] = model.evaluate(x_test, y_test, batch_size=64, verbose=0)[1]
        if mode == "bfloat16" and precision.cpu_has_bf16_units():
            assert keras.mixed_precision.layer_compute_dtypes(model)[model.layers[1].name] \
                == "bfloat16"
    assert accuracies[None] > 0.9
    assert abs(accuracies["bfloat16"] - accuracies[None]) < 0.03


def test_the_softmax_loss_stays_fused_when_the_final_layer_is_a_float32_island(monkeypatch):
    """The island's hooks on the final Dense do not read its output, so they must not count as
    an observer that turns the logits fusion (fusion.py) off."""
    from lamina.training import fusion

    fused_steps = []
    original = fusion.FusedOutput.forward
    monkeypatch.setattr(fusion.FusedOutput, "forward", lambda self, forward, x: (
        fused_steps.append(1), original(self, forward, x))[1])
    model = keras.Sequential([layers.Dense(512, activation="relu", input_shape=(512,)),
                              layers.Dense(10, activation="softmax")])
    x, y = _data()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  mixed_precision="bfloat16")
    model.fit(x, y, batch_size=64, verbose=0)
    assert model.layers[1]._forward_hooks  # the island is there
    assert len(fused_steps) == 2


def test_a_model_whose_dense_gemms_are_all_small_runs_its_forward_without_autocast():
    """Every layer with weights would fall back at this batch size, so the whole forward runs
    without autocast (whose per-op dispatch is pure cost then); a larger batch, or a layer
    that always runs bf16 (a convolution), keeps it."""
    if not precision.cpu_has_bf16_units():
        pytest.skip("this CPU has no bf16 units: every layer falls back")

    def autocast_seen_by_flatten(model, batch_size):
        seen = []
        flatten = next(layer for layer in model.layers if isinstance(layer, layers.Flatten))
        handle = flatten.register_forward_pre_hook(
            lambda module, args: seen.append(torch.is_autocast_enabled("cpu")))
        model.fit(x, y, batch_size=batch_size, verbose=0)
        handle.remove()
        return set(seen)

    rng = np.random.default_rng(0)
    x = rng.random((512, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 512)
    # The sheet's MLP: 784 x 128 multiply-adds per sample, so bf16 from 168 rows on.
    mlp = keras.Sequential([layers.Input((28, 28)), layers.Flatten(),
                            layers.Dense(128, activation="relu"), layers.Dense(10)])
    mlp.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), mixed_precision="bfloat16")
    assert autocast_seen_by_flatten(mlp, 128) == {False}
    assert autocast_seen_by_flatten(mlp, 256) == {True}
    with_conv = keras.Sequential([layers.Input((28, 28)), layers.Reshape((28, 28, 1)),
                                  layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(10)])
    with_conv.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), mixed_precision="bfloat16")
    assert autocast_seen_by_flatten(with_conv, 128) == {True}
