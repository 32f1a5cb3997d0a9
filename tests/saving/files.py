"""A small model and a real file of each kind it saves to, shared by the file-error tests."""

from __future__ import annotations

import lamina
from lamina import layers


def small_model(units=4):
    return lamina.Sequential([layers.Dense(units, input_shape=(3,), name="hidden"),
                              layers.Dense(2, name="head")])


def save_each_kind(directory):
    """`model.keras`, `model.h5` and `model.weights.h5` in `directory`, written by the library."""
    model = small_model()
    model.save(directory / "model.keras")
    model.save(directory / "model.h5")
    model.save_weights(directory / "model.weights.h5")
    return directory
