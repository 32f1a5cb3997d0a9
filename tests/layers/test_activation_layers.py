"""Activation layers with arguments or weights: ReLU, LeakyReLU, PReLU, ELU, Softmax."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.layer_test import (
    LayerCase,
    generic_layer_tests,
    single_thread,  # noqa: F401 - a fixture
)

from lamina import layers


def keras_relu(max_value=None, negative_slope=0.0, threshold=0.0):
    """Keras's ReLU layer, case by case: `max_value` at or above it, `x` from `threshold` up,
    `negative_slope * (x - threshold)` below."""

    def reference(layer, x):
        below = negative_slope * (x - threshold)
        out = torch.where(x >= threshold, x, below)
        return out if max_value is None else torch.where(x >= max_value, max_value, out)

    return reference


def prelu_reference(layer, x):
    (alpha,) = (torch.as_tensor(w) for w in layer.get_weights())
    return torch.where(x >= 0, x, alpha * x)


CASES = [
    LayerCase("relu", layers.ReLU, (2, 7), (2, 7), reference=keras_relu()),
    LayerCase("relu_max_value", functools.partial(layers.ReLU, max_value=0.5), (2, 7), (2, 7),
              reference=keras_relu(max_value=0.5)),
    LayerCase("relu_all_arguments",
              functools.partial(layers.ReLU, max_value=1.0, negative_slope=0.1, threshold=0.3),
              (3, 5), (3, 5), reference=keras_relu(1.0, 0.1, 0.3)),
    LayerCase("leaky_relu_keras_default", layers.LeakyReLU, (2, 6), (2, 6),
              reference=lambda layer, x: F.leaky_relu(x, 0.3)),
    LayerCase("leaky_relu_sheet_alpha", functools.partial(layers.LeakyReLU, negative_slope=0.01),
              (2, 6), (2, 6), reference=lambda layer, x: torch.maximum(0.01 * x, x)),
    LayerCase("prelu", layers.PReLU, (2, 5), (2, 5), params=5, reference=prelu_reference),
    LayerCase("prelu_shared_axes", functools.partial(layers.PReLU, shared_axes=[1]), (2, 3, 4),
              (2, 3, 4), params=4, reference=prelu_reference),
    LayerCase("elu", functools.partial(layers.ELU, alpha=0.5), (2, 6), (2, 6),
              reference=lambda layer, x: F.elu(x, 0.5)),
    LayerCase("softmax_axis_1", functools.partial(layers.Softmax, axis=1), (2, 3, 4), (2, 3, 4),
              reference=lambda layer, x: F.softmax(x, dim=1)),
]


globals().update(generic_layer_tests(CASES))


def test_relu_hand_computed_values():
    x = torch.tensor([[-2.0, 0.0, 0.2, 0.5, 3.0]])
    out = layers.ReLU(max_value=2.0, negative_slope=0.5, threshold=0.5)(x)
    # below the threshold: 0.5 * (x - 0.5); from it: x; capped at 2.
    torch.testing.assert_close(out, torch.tensor([[-1.25, -0.25, -0.15, 0.5, 2.0]]))


def test_leaky_relu_accepts_keras2_alpha():
    layer = layers.LeakyReLU(alpha=0.2)
    assert layer.negative_slope == 0.2
    torch.testing.assert_close(layer(torch.tensor([[-1.0, 1.0]])), torch.tensor([[-0.2, 1.0]]))


def test_prelu_alpha_shape_and_learned_slope():
    layer = layers.PReLU(shared_axes=[1, 2], alpha_initializer="ones")
    x = torch.randn(2, 3, 4, 5)
    layer(x)
    assert layer.get_weights()[0].shape == (1, 1, 5)
    torch.testing.assert_close(layer(x), x)  # alpha = 1: identity
    layer.set_weights([np.full((1, 1, 5), 0.25, dtype=np.float32)])
    torch.testing.assert_close(layer(torch.tensor(-4.0).expand(1, 3, 4, 5)),
                               torch.full((1, 3, 4, 5), -1.0))


def test_softmax_mask_sends_masked_positions_to_zero():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.tensor([[True, False, True, False]])
    out = layers.Softmax()(scores, mask=mask)
    expected = torch.softmax(torch.tensor([1.0, 3.0]), dim=0)
    torch.testing.assert_close(out, torch.tensor([[expected[0], 0.0, expected[1], 0.0]]))


@pytest.mark.parametrize("make, message", [
    (lambda: layers.ReLU(max_value=-1.0), "`max_value` must be >= 0. Received: max_value=-1.0."),
    (lambda: layers.ReLU(negative_slope=-0.1), "`negative_slope` must be >= 0. Received: -0.1."),
    (lambda: layers.LeakyReLU(negative_slope=-1), "`negative_slope` must be >= 0. Received: -1."),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_prelu_gradient_at_exactly_zero_is_kerass():
    # Keras computes relu(x) - alpha * relu(-x): at x = 0 both relus have slope 0 in torch.
    layer = layers.PReLU(alpha_initializer="ones")
    x = torch.tensor([[0.0, -2.0, 3.0]], requires_grad=True)
    layer(x)
    layer.set_weights([np.full((3,), 0.25, np.float32)])
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, 0.25, 1.0]]))
