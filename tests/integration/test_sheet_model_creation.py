"""The sheet's "Model Creation" (all three snippets), the Dense/Dropout/BatchNormalization/
LayerNormalization/Embedding/Flatten lines of "Layer Patterns", and "Utilities", verbatim after
the import swap (`import lamina as keras`, `from lamina import layers`); `tf.matmul` is
`torch.matmul` through the `tf` shim below. Each block between the `--- verbatim` markers is
the sheet's text; the lines around it only check what it made."""

from __future__ import annotations

import types

import numpy as np
import torch

import lamina as keras
from lamina import layers

tf = types.SimpleNamespace(matmul=torch.matmul)


def sequential_api():
    # --- verbatim from the sheet: Sequential API ---
    model = keras.Sequential([
        layers.Dense(128, activation='relu', input_shape=(784,)),
        layers.Dropout(0.2),
        layers.Dense(10, activation='softmax')
    ])
    # --- end verbatim ---
    return model


def functional_api():
    # --- verbatim from the sheet: Functional API ---
    inputs = keras.Input(shape=(784,))
    x = layers.Dense(128, activation='relu')(inputs)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(10, activation='softmax')(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    # --- end verbatim ---
    return model


# --- verbatim from the sheet: Model Subclassing ---
class MyModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense1 = layers.Dense(128, activation='relu')
        self.dense2 = layers.Dense(10, activation='softmax')
        self.dropout = layers.Dropout(0.2)

    def call(self, inputs, training=None):
        x = self.dense1(inputs)
        x = self.dropout(x, training=training)
        return self.dense2(x)
# --- end verbatim ---


def test_the_three_ways_to_create_a_model_agree():
    x = torch.rand(8, 784)
    sequential, functional, subclassed = sequential_api(), functional_api(), MyModel()
    subclassed(x)
    for model in (sequential, functional, subclassed):
        assert model.count_params() == 101_770
    functional.set_weights(sequential.get_weights())
    subclassed.set_weights(sequential.get_weights())
    expected = sequential(x)
    assert expected.shape == (8, 10)
    torch.testing.assert_close(expected.sum(-1), torch.ones(8))
    torch.testing.assert_close(functional(x), expected)
    torch.testing.assert_close(subclassed(x), expected)
    # Dropout acts in training only, as in Keras.
    assert not torch.equal(subclassed(x, training=True), expected)


def test_common_layers():
    units, rate, input_dim, output_dim = 16, 0.5, 50, 8

    # --- verbatim from the sheet: Common Layers ---
    # Dense
    layers.Dense(units, activation=None, use_bias=True)

    # Dropout
    layers.Dropout(rate, seed=None)

    # Batch Normalization
    layers.BatchNormalization(momentum=0.99, epsilon=0.001)

    # Layer Normalization
    layers.LayerNormalization(epsilon=1e-6)

    # Embedding
    layers.Embedding(input_dim, output_dim, mask_zero=True)

    # Flatten
    layers.Flatten()
    layers.GlobalAveragePooling2D()
    # --- end verbatim ---

    text = keras.Sequential([
        layers.Embedding(input_dim, output_dim, mask_zero=True),
        layers.LayerNormalization(epsilon=1e-6),
        layers.Flatten(),
        layers.Dense(units, activation=None, use_bias=True),
        layers.BatchNormalization(momentum=0.99, epsilon=0.001),
        layers.Dropout(rate, seed=None),
    ])
    ids = torch.tensor([[3, 7, 0, 0], [1, 2, 3, 0]])
    assert text(ids).shape == (2, units)
    assert text.count_params() == input_dim * output_dim + 2 * output_dim + \
        (4 * output_dim + 1) * units + 4 * units
    images = keras.Sequential([keras.Input((5, 5, 3)), layers.GlobalAveragePooling2D()])
    batch = torch.rand(2, 5, 5, 3)
    torch.testing.assert_close(images(batch), batch.mean(dim=(1, 2)))


def test_utilities(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    trained = sequential_api()
    trained.save('model.h5')

    # --- verbatim from the sheet: Utilities ---
    # Load model
    model = keras.models.load_model('model.h5')

    # Model summary
    model.summary()

    # Get model configuration
    config = model.get_config()
    weights = model.get_weights()

    # Custom layer
    class CustomLayer(keras.layers.Layer):
        def __init__(self, units=32, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units))
            self.b = self.add_weight(shape=(self.units,))

        def call(self, inputs):
            return tf.matmul(inputs, self.w) + self.b
    # --- end verbatim ---

    x = torch.rand(3, 784)
    torch.testing.assert_close(model(x), trained(x))
    printed = capsys.readouterr().out
    assert "Total params: 101,770" in printed and "(None, 128)" in printed
    assert config["name"] == model.name
    assert [layer["class_name"] for layer in config["layers"]] == ["Dense", "Dropout", "Dense"]
    assert [w.shape for w in weights] == [(784, 128), (128,), (128, 10), (10,)]
    for loaded, original in zip(weights, trained.get_weights()):
        np.testing.assert_array_equal(loaded, original)

    custom = keras.Sequential([CustomLayer(units=4, input_shape=(3,)), layers.Dense(1)])
    data = torch.rand(5, 3)
    layer = custom.layers[0]
    assert [tuple(w.shape) for w in layer.weights] == [(3, 4), (4,)]
    torch.testing.assert_close(layer(data), data @ layer.w + layer.b)
    custom.save('custom.keras')
    restored = keras.models.load_model('custom.keras', custom_objects={"CustomLayer": CustomLayer})
    assert restored.layers[0].units == 4
    torch.testing.assert_close(restored(data), custom(data))
