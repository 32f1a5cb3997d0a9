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


@pytest.fixture
def restore_policy():
    before = keras.mixed_precision.global_policy().name
    yield
    keras.mixed_precision.set_global_policy(before)


def _model_recording_dtypes():
    """A small model and the dtypes its two Dense layers output, per call, into `seen`."""
    # 128x128 kernels: large enough that bf16 keeps them (smaller ones fall back to float32).
    model = keras.Sequential([layers.Dense(128, activation="relu", input_shape=(128,)),
                              layers.Dense(128)])
    seen: list[torch.dtype] = []
    for layer in model.layers:
        layer.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    return model, seen


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 128)).astype("float32"), rng.integers(0, 3, size=32)


def _run(model, seen, **compile_kwargs):
    """dtypes seen in fit, evaluate and predict, and every weight's and gradient's dtype."""
    x, y = _data()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), **compile_kwargs)
    gradients: list[torch.dtype] = []
    for parameter in model.parameters():
        parameter.register_hook(lambda grad: gradients.append(grad.dtype))
    found = {}
    for name, call in [("fit", lambda: model.fit(x, y, batch_size=16, epochs=1, verbose=0)),
                       ("evaluate", lambda: model.evaluate(x, y, batch_size=16, verbose=0)),
                       ("predict", lambda: model.predict(x, batch_size=16, verbose=0))]:
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


def test_set_global_policy_sets_the_precision_of_models_compiled_afterwards(restore_policy):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    policy = keras.mixed_precision.global_policy()
    # Keras's mixed_bfloat16: compute in bfloat16, variables in float32.
    assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (
        "mixed_bfloat16", "bfloat16", "float32")
    model, seen = _model_recording_dtypes()
    found = _run(model, seen)
    assert found["fit"] == found["predict"] == {torch.bfloat16}
    assert found["weights"] == {torch.float32}
    # An explicit compile argument wins over the global policy.
    model, seen = _model_recording_dtypes()
    assert _run(model, seen, mixed_precision=False)["fit"] == {torch.float32}
    # Back to float32: the next model compiles without autocast.
    keras.mixed_precision.set_global_policy(keras.mixed_precision.Policy("float32"))
    model, seen = _model_recording_dtypes()
    assert _run(model, seen)["fit"] == {torch.float32}


def test_unknown_policy_names_the_valid_ones(restore_policy):
    with pytest.raises(ValueError, match="Unknown dtype policy 'mixed_bfloat61'. Valid policies "
                                         "are: float32, mixed_float16, mixed_bfloat16"):
        keras.mixed_precision.set_global_policy("mixed_bfloat61")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_small_dense_layers_fall_back_to_float32_on_cpu_and_the_report_says_so():
    """Observed dtypes, not the report alone: hooks record what each layer really outputs."""
    model = keras.Sequential([layers.Dense(256, activation="relu", input_shape=(128,)),
                              layers.Dense(10, activation="softmax")])
    seen: dict[str, set] = {}
    for layer in model.layers:
        layer.register_forward_hook(
            lambda module, inputs, output: seen.setdefault(module.name, set()).add(output.dtype))
    x, y = _data()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], mixed_precision="bfloat16")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    big, small = (layer.name for layer in model.layers)
    assert seen == {big: {torch.bfloat16}, small: {torch.float32}}
    assert keras.mixed_precision.layer_compute_dtypes(model) == {big: "bfloat16",
                                                                 small: "float32"}
    seen.clear()
    probabilities = model.predict(x, verbose=0)
    assert seen == {big: {torch.bfloat16}, small: {torch.float32}}
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    # The fallback is the CPU's: a float32 model reports float32 everywhere.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert set(keras.mixed_precision.layer_compute_dtypes(model).values()) == {"float32"}
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert not model.layers[1]._forward_pre_hooks  # the bf16 trainer's hooks are gone
