"""LeNet-5 and ResNet-18 learn the bundled digits (8x8 images upsampled to 32x32).
`examples/resnet18_digits.py` trains ResNet-18 to >= 95% test accuracy; the test here is a short
version of it."""

from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina import applications


@pytest.fixture(scope="module")
def digits():
    (x_train, y_train), (x_test, y_test) = lamina.datasets.digits.load_data()

    def upsample(images):  # 8x8 -> 32x32, nearest neighbour
        return np.repeat(np.repeat(images, 4, axis=1), 4, axis=2)

    return (upsample(x_train), y_train), (upsample(x_test), y_test)


def test_lenet5_reaches_95_percent(digits):
    (x_train, y_train), (x_test, y_test) = digits
    lamina.set_random_seed(0)
    model = applications.LeNet5()  # the sheet's: sigmoid and average pooling
    model.compile(optimizer=lamina.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=12, batch_size=32, verbose=0)
    assert model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"] >= 0.95


def test_resnet18_learns_the_digits(digits):
    (x_train, y_train), _ = digits
    lamina.set_random_seed(0)
    model = applications.resnet18(num_classes=10, input_shape=(32, 32, 1))
    model.compile(optimizer=lamina.optimizers.Adam(1e-3),
                  loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x_train[:256], y_train[:256], epochs=3, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] >= 0.9
