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
    model = keras.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)), layers.Dense(3)])
    seen: list[torch.dtype] = []
    for layer in model.layers:
        layer.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    return model, seen


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, size=32)


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
