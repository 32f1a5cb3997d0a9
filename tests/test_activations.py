"""Activation functions by name and as callables: values against the sheet's formulas (written
here with `math`, element by element), the derivatives of the sheet's comparison table against
autograd, gradcheck, and name resolution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lamina import activations
from lamina.errors import UnknownNameError
from lamina.saving import register_keras_serializable

# Away from the kinks of relu (0), relu6 (0, 6) and the hard functions (-3, 3).
GRID = [-4.0, -2.5, -1.0, -0.3, 0.2, 0.7, 1.5, 2.8, 5.0]


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _phi(x):  # standard normal CDF
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805

# name -> the formula for one element (the sheet's where it has one, Keras's otherwise)
ELEMENTWISE = {
    "linear": lambda x: x,
    "sigmoid": _sigmoid,
    "tanh": lambda x: (math.exp(x) - math.exp(-x)) / (math.exp(x) + math.exp(-x)),
    "relu": lambda x: max(0.0, x),
    "relu6": lambda x: min(max(0.0, x), 6.0),
    "leaky_relu": lambda x: max(0.2 * x, x),  # Keras's function default alpha
    "elu": lambda x: x if x > 0 else math.exp(x) - 1,
    "selu": lambda x: SELU_SCALE * (x if x > 0 else SELU_ALPHA * (math.exp(x) - 1)),
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: x * _phi(x),
    "softplus": lambda x: math.log(1 + math.exp(x)),
    "softsign": lambda x: x / (1 + abs(x)),
    "hard_sigmoid": lambda x: min(max(0.0, x + 3), 6.0) / 6,
    "hard_silu": lambda x: x * min(max(0.0, x + 3), 6.0) / 6,
    "mish": lambda x: x * math.tanh(math.log(1 + math.exp(x))),
    "exponential": math.exp,
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_values_match_the_formula(name):
    x = torch.tensor(GRID, dtype=torch.float64)
    expected = torch.tensor([ELEMENTWISE[name](v) for v in GRID], dtype=torch.float64)
    torch.testing.assert_close(activations.get(name)(x), expected, rtol=1e-12, atol=1e-12)


def test_gelu_tanh_approximation():
    x = torch.tensor(GRID, dtype=torch.float64)
    expected = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
                for v in GRID]
    torch.testing.assert_close(activations.gelu(x, approximate=True),
                               torch.tensor(expected, dtype=torch.float64))
    assert (activations.gelu(x, approximate=True) - activations.gelu(x)).abs().max() < 1e-3


def test_leaky_relu_with_the_sheets_alpha():
    x = torch.tensor(GRID, dtype=torch.float64)
    torch.testing.assert_close(activations.leaky_relu(x, negative_slope=0.01),
                               torch.tensor([max(0.01 * v, v) for v in GRID], dtype=torch.float64))


def test_relu_keras_arguments():
    x = torch.tensor([-2.0, 0.5, 1.0, 4.0])
    out = activations.relu(x, negative_slope=0.1, max_value=3.0, threshold=1.0)
    torch.testing.assert_close(out, torch.tensor([-0.3, -0.05, 1.0, 3.0]))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_is_a_distribution_along_the_axis(name):
    x = torch.tensor([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1001.0]], dtype=torch.float64)
    out = activations.get(name)(x)
    rows = [[math.exp(v) for v in (1.0, 2.0, 3.0)], [1.0, 1.0, math.e]]
    expected = torch.tensor([[v / sum(r) for v in r] for r in rows], dtype=torch.float64)
    if name == "log_softmax":
        expected = expected.log()
    torch.testing.assert_close(out, expected)  # large inputs stay finite (stable)
    probabilities = out.exp() if name == "log_softmax" else out
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(2, dtype=torch.float64))
    columns = activations.softmax(x[:1].T, axis=0)
    torch.testing.assert_close(columns.T, expected[:1].exp() if name == "log_softmax" else expected[:1])


# The sheet's comparison table: derivative as a function of x and f = f(x).
DERIVATIVES = {
    "linear": lambda x, f: torch.ones_like(x),
    "sigmoid": lambda x, f: f * (1 - f),
    "tanh": lambda x, f: 1 - f ** 2,
    "relu": lambda x, f: (x > 0).to(x.dtype),
    "leaky_relu": lambda x, f: torch.where(x > 0, 1.0, 0.2).to(x.dtype),
    "swish": lambda x, f: torch.sigmoid(x) + x * torch.sigmoid(x) * (1 - torch.sigmoid(x)),
}


@pytest.mark.parametrize("name", sorted(DERIVATIVES))
def test_derivatives_of_the_sheets_table_match_autograd(name):
    x = torch.tensor(GRID, dtype=torch.float64, requires_grad=True)
    f = activations.get(name)(x)
    (grad,) = torch.autograd.grad(f.sum(), x)
    torch.testing.assert_close(grad, DERIVATIVES[name](x.detach(), f.detach()))


@pytest.mark.parametrize("name", sorted(ELEMENTWISE) + ["softmax", "log_softmax"])
def test_gradcheck(name):
    x = torch.tensor([GRID[:4], GRID[4:8]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(activations.get(name), (x,))


def test_get_resolves_none_names_and_callables():
    assert activations.get(None) is activations.linear
    assert activations.get("swish") is activations.get("silu") is activations.swish
    assert activations.get("Sigmoid") is activations.sigmoid  # case-insensitive, as in Keras
    custom = torch.tanh
    assert activations.get(custom) is custom
    assert activations.serialize(activations.relu) == "relu"
    assert activations.get(activations.serialize(activations.gelu)) is activations.gelu


def test_custom_activation_round_trips_once_registered():
    @register_keras_serializable(package="tests")
    def scaled_tanh(x):
        return 2 * torch.tanh(x)

    config = activations.serialize(scaled_tanh)
    assert activations.get(config) is scaled_tanh


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError, match=r"Unknown activation name 'sigmod'. Did you mean 'sigmoid'.*Valid names are: elu, exponential, gelu"):
        activations.get("sigmod")


def test_bad_identifier_type():
    with pytest.raises(TypeError, match=r"An activation must be None, a name, or a callable. Received: 3 of type int"):
        activations.get(3)


def test_ranges_of_the_sheet():
    x = torch.from_numpy(np.linspace(-30, 30, 601))
    sigmoid, tanh = activations.sigmoid(x), activations.tanh(x)
    assert sigmoid.min() >= 0 and sigmoid.max() <= 1
    assert tanh.min() >= -1 and tanh.max() <= 1
    assert activations.relu(x).min() == 0
    torch.testing.assert_close(tanh[:300], -tanh[301:].flip(0))  # zero-centred (odd)
