"""Zoo models that Keras also ships, built in both at a small resolution: Keras's weights
copied into Lamina's model give Keras's predictions."""

from __future__ import annotations

import numpy as np
import pytest

from lamina import applications

from .keras_harness import assert_close, keras

SHAPE = (32, 32, 3)


@pytest.mark.parametrize("name", ["ResNet50", "VGG16"])
def test_zoo_model_with_keras_weights_predicts_like_keras(name: str) -> None:
    keras_model = getattr(keras.applications, name)(weights=None, input_shape=SHAPE, classes=3)
    model = applications.create_model(name, input_shape=SHAPE, classes=3)
    rng = np.random.default_rng(0)
    # Random weights and batch-norm statistics, not the initial ones: each must land in place.
    weights = []
    for w in keras_model.get_weights():
        value = rng.normal(scale=0.05, size=w.shape).astype(np.float32)
        weights.append(np.abs(value) + 0.5 if w.ndim == 1 and np.all(w == 1) else value)
    keras_model.set_weights(weights)
    model.set_weights(weights)
    x = rng.normal(size=(2,) + SHAPE).astype(np.float32)
    assert_close(model.predict(x, verbose=0), keras_model.predict(x, verbose=0), 1e-5,
                 f"{name} predictions")
