"""add_weight's Keras options that torch cannot honour per variable: validated as Keras does,
and each warns once, naming the argument and what happens instead."""

from __future__ import annotations

import warnings

import pytest

from lamina import layers
from lamina.layers import layer as layer_module


class _Scaled(layers.Layer):
    def __init__(self, **options):
        super().__init__()
        self.options = options

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale",
                                     **self.options)

    def call(self, inputs):
        return inputs * self.scale


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(layer_module, "_WARNED_WEIGHT_OPTIONS", set())


@pytest.mark.parametrize("option, message", [
    ({"autocast": False}, r"add_weight\(autocast=False\) has no effect.*per operation"),
    ({"aggregation": "sum"}, r"add_weight\(aggregation='sum'\) has no effect.*broadcast"),
])
def test_each_option_warns_once_per_process(option, message):
    import torch

    with pytest.warns(UserWarning, match=message):
        _Scaled(**option)(torch.ones(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _Scaled(**option)(torch.ones(2, 3))  # the second layer is silent


@pytest.mark.parametrize("option", [{}, {"autocast": True}, {"aggregation": "none"},
                                    {"aggregation": None}])
def test_keras_defaults_are_silent(option):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _Scaled(**option)(torch.ones(2, 3))


def test_an_unknown_aggregation_is_refused_as_keras_refuses_it():
    import torch

    with pytest.raises(ValueError, match=r"`aggregation`. Expected one of .*Received: "
                                         r"aggregation='avg'"):
        _Scaled(aggregation="avg")(torch.ones(2, 3))
