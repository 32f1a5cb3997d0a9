"""Small training runs built to have one known fault each, and healthy runs built to have none.

Each run returns the `Doctor` that watched it. Runs are tiny (digits subsets and synthetic
data, a few epochs) so the whole table trains in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import lamina as keras
from lamina import initializers, layers
from lamina.callbacks import Doctor, TerminateOnNaN
from lamina.datasets import digits
from lamina.errors import DataError, NonFiniteError, ShapeError

_DIGITS = {}


def digits_data(n: int = 600, flat: bool = True) -> tuple[np.ndarray, np.ndarray]:
    if "all" not in _DIGITS:
        _DIGITS["all"] = digits.load_data(test_split=0.0, seed=0)[0]
    x, y = _DIGITS["all"]
    x, y = x[:n], y[:n]
    return (x.reshape(len(x), -1) if flat else x), y


def _fit(model, x, y, loss, optimizer, epochs=4, batch_size=32, raises=None, **kwargs):
    doctor = Doctor()
    model.compile(optimizer=optimizer, loss=loss, metrics=kwargs.pop("metrics", None))
    callbacks = [doctor, *kwargs.pop("callbacks", [])]
    if raises is None:
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks,
                  **kwargs)
    else:
        with pytest.raises(raises):
            model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
                      callbacks=callbacks, **kwargs)
    return doctor


def _mlp(widths, activation, inputs=64, outputs=10, output_activation="softmax", **dense):
    return keras.Sequential([keras.Input((inputs,)),
                             *[layers.Dense(w, activation=activation, **dense) for w in widths],
                             layers.Dense(outputs, activation=output_activation)])


# ---------------------------------------------------------------- planted faults


def vanishing_sigmoid_sequential():
    x, y = digits_data()
    return _fit(_mlp([32] * 12, "sigmoid"), x, y, "sparse_categorical_crossentropy", "adam", 3)


def vanishing_wrapped_torch():
    blocks = [m for _ in range(10) for m in (nn.Linear(32, 32), nn.Sigmoid())]
    module = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), *blocks, nn.Linear(32, 10))
    x, y = digits_data()
    return _fit(keras.wrap(module), x, y,
                keras.losses.SparseCategoricalCrossentropy(from_logits=True), "adam", 3)


def exploding_deep_relu():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 16)).astype("float32")
    y = x[:, :1].copy()
    model = _mlp([64] * 8, "relu", inputs=16, outputs=1, output_activation=None,
                 kernel_initializer=initializers.RandomNormal(stddev=1.0))
    return _fit(model, x, y, "mse", keras.optimizers.SGD(0.01), 3, callbacks=[TerminateOnNaN()])


class _LinearChain(keras.Model):
    """A subclassed model: six linear layers with a large initialization."""

    def __init__(self):
        super().__init__()
        self.blocks = [layers.Dense(32, kernel_initializer=initializers.RandomNormal(stddev=1.0))
                       for _ in range(6)]
        for i, block in enumerate(self.blocks):
            setattr(self, f"block_{i}", block)
        self.head = layers.Dense(1)

    def call(self, inputs):
        for block in self.blocks:
            inputs = block(inputs)
        return self.head(inputs)


def exploding_subclassed_chain():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = x.sum(1, keepdims=True).astype("float32")
    return _fit(_LinearChain(), x, y, "mse", keras.optimizers.SGD(0.01), 3,
                raises=NonFiniteError)


def dead_relu_functional():
    x, y = digits_data()
    inputs = keras.Input((64,))
    hidden = layers.Dense(64, activation="relu",
                          bias_initializer=initializers.Constant(-20.0))(inputs)
    model = keras.Model(inputs, layers.Dense(10, activation="softmax")(hidden))
    return _fit(model, x, y, "sparse_categorical_crossentropy", "adam", 3)


def dead_relu_cnn():
    x, y = digits_data(flat=False)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(8, 3, activation="relu", bias_initializer=initializers.Constant(-20.0)),
        layers.Flatten(), layers.Dense(10, activation="softmax")])
    return _fit(model, x, y, "sparse_categorical_crossentropy", "adam", 3)


def saturated_sigmoid_mlp():
    x, y = digits_data()
    model = _mlp([64], "sigmoid", kernel_initializer=initializers.RandomNormal(stddev=4.0))
    return _fit(model, x, y, "sparse_categorical_crossentropy", "adam", 3)


def saturated_tanh_wrapped():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(256, 8)).astype("float32") * 50
    y = np.tanh(x[:, :1] / 50).astype("float32")
    module = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    return _fit(keras.wrap(module), x, y, "mse", "adam", 3)


def lr_high_adam_digits():
    x, y = digits_data()
    return _fit(_mlp([64], "relu"), x, y, "sparse_categorical_crossentropy",
                keras.optimizers.Adam(1.0), 4)


def lr_high_sgd_regression():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    model = keras.Sequential([keras.Input((8,)), layers.Dense(16, activation="tanh"),
                              layers.Dense(1)])
    return _fit(model, x, y, "mse", keras.optimizers.SGD(0.5), 4)


def lr_low_sgd_mlp():
    x, y = digits_data()
    return _fit(_mlp([64], "relu"), x, y, "sparse_categorical_crossentropy",
                keras.optimizers.SGD(1e-5), 3)


def lr_low_adam_cnn():
    x, y = digits_data(flat=False)
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(8, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(10, activation="softmax")])
    return _fit(model, x, y, "sparse_categorical_crossentropy", keras.optimizers.Adam(1e-7), 3)


def overfitting_small_digits():
    x, y = digits_data(700)
    few = [i for c in range(10) for i in np.flatnonzero(y[:300] == c)[:5]]
    model = _mlp([256, 256], "relu")
    return _fit(model, x[few], y[few], "sparse_categorical_crossentropy",
                keras.optimizers.Adam(1e-2), 40, validation_data=(x[300:], y[300:]))


def overfitting_noisy_regression():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(320, 4)).astype("float32")
    y = (x[:, :1] + rng.normal(scale=0.5, size=(320, 1))).astype("float32")
    inputs = keras.Input((4,))
    hidden = layers.Dense(128, activation="relu")(inputs)
    hidden = layers.Dense(128, activation="relu")(hidden)
    model = keras.Model(inputs, layers.Dense(1)(hidden))
    return _fit(model, x[:20], y[:20], "mse", keras.optimizers.Adam(3e-3), 60, batch_size=16,
                validation_data=(x[20:], y[20:]))


def underfitting_linear_circles():
    rng = np.random.default_rng(5)
    angle, radius = rng.uniform(0, 2 * np.pi, 512), rng.choice([1.0, 2.0], 512)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1).astype("float32")
    y = (radius > 1.5).astype("float32")[:, None]
    model = keras.Sequential([keras.Input((2,)), layers.Dense(1, activation="sigmoid")])
    return _fit(model, x, y, "binary_crossentropy", keras.optimizers.Adam(1e-2), 6,
                validation_split=0.2)


def underfitting_bottleneck_sine():
    rng = np.random.default_rng(6)
    x = rng.uniform(-3, 3, size=(512, 1)).astype("float32")
    y = np.sin(3 * x).astype("float32")
    model = keras.Sequential([keras.Input((1,)), layers.Dense(1), layers.Dense(1)])
    return _fit(model, x, y, "mse", keras.optimizers.Adam(1e-2), 6, validation_split=0.2)


def unnormalized_raw_digits():
    x, y = digits_data()
    return _fit(_mlp([64], "relu"), x * 16, y, "sparse_categorical_crossentropy", "adam", 2)


def unnormalized_tabular_offsets():
    rng = np.random.default_rng(7)
    x = (1000 + 200 * rng.normal(size=(256, 5))).astype("float32")
    y = ((x[:, :1] - 1000) / 200).astype("float32")
    model = keras.Sequential([keras.Input((5,)), layers.Dense(16, activation="relu"),
                              layers.Dense(1)])
    return _fit(model, x, y, "mse", "adam", 2)


def imbalance_binary():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(512, 4)).astype("float32")
    y = (x[:, 0] > 1.4).astype("float32")[:, None]
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"),
                              layers.Dense(1, activation="sigmoid")])
    return _fit(model, x, y, "binary_crossentropy", "adam", 3, metrics=["accuracy"])


def imbalance_digits():
    x, y = digits_data(1400)
    keep = np.flatnonzero(y == 0).tolist() + [i for c in range(1, 10)
                                              for i in np.flatnonzero(y == c)[:12]]
    order = np.random.default_rng(9).permutation(keep)
    return _fit(_mlp([32], "relu"), x[order], y[order], "sparse_categorical_crossentropy",
                "adam", 4, metrics=["accuracy"])


def labels_outside_binary_range():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = np.where(x[:, :1] > 0, 2.0, 1.0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), layers.Dense(1, activation="sigmoid")])
    return _fit(model, x, y, "binary_crossentropy", "adam", 2)


def labels_multi_hot_categorical():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(256, 6)).astype("float32")
    y = (x[:, :3] > 0).astype("float32")
    y[y.sum(1) == 0, 0] = 1.0
    model = keras.Sequential([keras.Input((6,)), layers.Dense(16, activation="relu"),
                              layers.Dense(3, activation="softmax")])
    return _fit(model, x, y, "categorical_crossentropy", "adam", 2)


def labels_one_hot_to_sparse_loss():
    x, y = digits_data(256)
    return _fit(_mlp([32], "relu"), x, np.eye(10, dtype="float32")[y],
                "sparse_categorical_crossentropy", "adam", 2, raises=ShapeError)


def nonfinite_in_memory():
    x, y = digits_data(256)
    x = x.copy()
    x[37, 5] = np.nan
    return _fit(_mlp([32], "relu"), x, y, "sparse_categorical_crossentropy", "adam", 2,
                raises=DataError)


class _Batches(keras.utils.PyDataset):
    """Streamed batches; batch 3 carries an Inf in x."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 8

    def __getitem__(self, index):
        x = self.x[index * 32:(index + 1) * 32].copy()
        if index == 3:
            x[4, 2] = np.inf
        return x, self.y[index * 32:(index + 1) * 32]


def nonfinite_streamed():
    x, y = digits_data(256)
    model = _mlp([32], "relu")
    doctor = Doctor()
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(NonFiniteError):
        model.fit(_Batches(x, y), epochs=1, verbose=0, callbacks=[doctor])
    return doctor


PLANTED = {
    "vanishing_gradients": [vanishing_sigmoid_sequential, vanishing_wrapped_torch],
    "exploding_gradients": [exploding_deep_relu, exploding_subclassed_chain],
    "dead_relu": [dead_relu_functional, dead_relu_cnn],
    "saturated_activations": [saturated_sigmoid_mlp, saturated_tanh_wrapped],
    "lr_too_high": [lr_high_adam_digits, lr_high_sgd_regression],
    "lr_too_low": [lr_low_sgd_mlp, lr_low_adam_cnn],
    "overfitting": [overfitting_small_digits, overfitting_noisy_regression],
    "underfitting": [underfitting_linear_circles, underfitting_bottleneck_sine],
    "unnormalized_inputs": [unnormalized_raw_digits, unnormalized_tabular_offsets],
    "class_imbalance": [imbalance_binary, imbalance_digits],
    "label_problems": [labels_outside_binary_range, labels_multi_hot_categorical,
                       labels_one_hot_to_sparse_loss],
    "nonfinite_inputs": [nonfinite_in_memory, nonfinite_streamed],
}


# ---------------------------------------------------------------- healthy runs


def healthy_digits_mlp():
    x, y = digits_data(1000)
    return _fit(_mlp([64], "relu"), x, y, "sparse_categorical_crossentropy", "adam", 6,
                validation_split=0.2, metrics=["accuracy"])


def healthy_digits_cnn():
    x, y = digits_data(1000, flat=False)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), layers.Conv2D(16, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(32, activation="relu"),
        layers.Dense(10, activation="softmax")])
    return _fit(model, x, y, "sparse_categorical_crossentropy", "adam", 6,
                validation_split=0.2, metrics=["accuracy"])


def healthy_lstm_sequences():
    rng = np.random.default_rng(12)
    x = rng.choice([-1.0, 1.0], size=(512, 12, 1)).astype("float32")
    y = (x.sum(axis=(1, 2)) > 0).astype("float32")[:, None]
    model = keras.Sequential([keras.Input((12, 1)), layers.LSTM(16),
                              layers.Dense(1, activation="sigmoid")])
    return _fit(model, x, y, "binary_crossentropy", keras.optimizers.Adam(1e-2), 6,
                validation_split=0.2, metrics=["accuracy"])


def healthy_resnet_ish():
    x, y = digits_data(1000, flat=False)
    inputs = keras.Input((8, 8, 1))
    stem = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    block = layers.Conv2D(16, 3, padding="same")(stem)
    # momentum 0.9: six short epochs are too few for the default 0.99 moving statistics.
    block = layers.BatchNormalization(momentum=0.9)(block)
    block = layers.Activation("relu")(block)
    block = layers.Conv2D(16, 3, padding="same")(block)
    block = layers.BatchNormalization(momentum=0.9)(block)
    merged = layers.Activation("relu")(layers.Add()([stem, block]))
    pooled = layers.GlobalAveragePooling2D()(merged)
    model = keras.Model(inputs, layers.Dense(10, activation="softmax")(pooled))
    return _fit(model, x, y, "sparse_categorical_crossentropy", keras.optimizers.Adam(3e-3), 6,
                validation_split=0.2, metrics=["accuracy"])


HEALTHY = [healthy_digits_mlp, healthy_digits_cnn, healthy_lstm_sequences, healthy_resnet_ish]
