"""Weight regularizers (penalties added to the loss) and, with them, weight constraints (the
projections applied after an optimizer step): hand-computed values, names, configs, and the
losses a layer reports."""

from __future__ import annotations

import math
import re

import pytest
import torch

import lamina
from lamina import constraints, layers, regularizers
from lamina.errors import UnknownNameError
from lamina.saving import deserialize, serialize

W = torch.tensor([[1.0, -2.0], [0.5, 0.0], [-1.5, 3.0]])  # sum |w| = 8, sum w^2 = 16.5


@pytest.mark.parametrize("regularizer, expected", [
    (regularizers.L1(0.1), 0.1 * 8),
    (regularizers.L2(0.1), 0.1 * 16.5),
    (regularizers.L1L2(l1=0.1, l2=0.01), 0.1 * 8 + 0.01 * 16.5),
    (regularizers.L1L2(), 0.0),
    (regularizers.get("l1"), 0.01 * 8),
    (regularizers.get("l2"), 0.01 * 16.5),
    (regularizers.get("l1_l2"), 0.0),  # Keras's L1L2 defaults are both 0
])
def test_penalties_by_hand(regularizer, expected):
    torch.testing.assert_close(regularizer(W), torch.tensor(expected))


def test_orthogonal_regularizer_by_hand():
    # Rows (1, 0) and (1, 1)/sqrt 2: |cos| = 1/sqrt 2; mean over the 2 ordered pairs of distinct rows.
    rows = torch.tensor([[2.0, 0.0], [3.0, 3.0]])
    penalty = regularizers.OrthogonalRegularizer(factor=0.1)(rows)
    torch.testing.assert_close(penalty, torch.tensor(0.1 / math.sqrt(2)))
    assert regularizers.OrthogonalRegularizer(1.0)(torch.eye(3)) == 0
    # A zero row adds nothing, and columns mode looks at columns.
    with_zero = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    assert regularizers.OrthogonalRegularizer(1.0)(with_zero) == 0
    torch.testing.assert_close(regularizers.OrthogonalRegularizer(0.1, mode="columns")(rows.T),
                               penalty)


@pytest.mark.parametrize("regularizer", [regularizers.L1(0.3), regularizers.L2(0.2),
                                         regularizers.L1L2(0.1, 0.2),
                                         regularizers.OrthogonalRegularizer(0.5, "columns")])
def test_config_round_trip(regularizer):
    clone = type(regularizer).from_config(regularizer.get_config())
    assert clone.get_config() == regularizer.get_config()
    torch.testing.assert_close(deserialize(serialize(regularizer))(W), regularizer(W))


def test_layer_losses_are_the_penalties_of_its_weights():
    model = lamina.Sequential([
        layers.Dense(3, input_shape=(2,), kernel_regularizer=regularizers.L2(0.5)),
        layers.Dense(1, kernel_regularizer="l1", bias_regularizer=regularizers.L2(2.0)),
    ])
    first, second = model.layers
    expected = [0.5 * first.kernel.square().sum(), 0.01 * second.kernel.abs().sum(),
                2.0 * second.bias.square().sum()]
    torch.testing.assert_close(torch.stack(model.losses), torch.stack(expected))
    # The penalties are differentiable functions of the current weights.
    torch.stack(model.losses).sum().backward()
    torch.testing.assert_close(first.kernel.grad, first.kernel.detach())


def test_regularizer_errors():
    with pytest.raises(ValueError, match=re.escape("`l2` must be >= 0. Received: l2=-1.0.")):
        regularizers.L2(-1)
    with pytest.raises(ValueError, match=re.escape("`mode` must be 'rows' or 'columns'. Received: mode='diag'.")):
        regularizers.OrthogonalRegularizer(mode="diag")
    with pytest.raises(ValueError, match=r"OrthogonalRegularizer applies to 2-D kernels. Received a weight of shape \(2, 2, 2\)"):
        regularizers.OrthogonalRegularizer()(torch.zeros(2, 2, 2))
    with pytest.raises(UnknownNameError, match=r"Unknown regularizer name 'l3'.*Valid names are: .*l1.*l2"):
        regularizers.get("l3")
    with pytest.raises(TypeError, match="Could not interpret regularizer 5"):
        regularizers.get(5)


# ------------------------------------------------------------------------------ constraints


def test_max_norm_rescales_only_columns_above_the_limit():
    # Keras's kernels are (in, out); axis 0 gives one norm per unit.
    kernel = torch.tensor([[3.0, 0.3], [4.0, 0.4]])  # column norms 5 and 0.5
    out = constraints.MaxNorm(max_value=2.0)(kernel)
    torch.testing.assert_close(out[:, 0], kernel[:, 0] * 2 / 5, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out[:, 1], kernel[:, 1], rtol=1e-6, atol=1e-6)


def test_unit_norm_non_neg_and_min_max_norm():
    kernel = torch.tensor([[3.0, -0.3], [4.0, 0.4]])
    torch.testing.assert_close(constraints.UnitNorm()(kernel).norm(dim=0), torch.ones(2))
    torch.testing.assert_close(constraints.NonNeg()(kernel), torch.tensor([[3.0, 0.0], [4.0, 0.4]]))
    out = constraints.MinMaxNorm(min_value=1.0, max_value=2.0)(kernel)
    torch.testing.assert_close(out.norm(dim=0), torch.tensor([2.0, 1.0]), rtol=1e-5, atol=1e-5)
    half = constraints.MinMaxNorm(min_value=1.0, max_value=2.0, rate=0.5)(kernel)
    torch.testing.assert_close(half.norm(dim=0), torch.tensor([3.5, 0.75]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, cls", [("max_norm", constraints.MaxNorm),
                                       ("non_neg", constraints.NonNeg),
                                       ("unit_norm", constraints.UnitNorm),
                                       ("min_max_norm", constraints.MinMaxNorm)])
def test_constraints_by_name_and_config(name, cls):
    constraint = constraints.get(name)
    assert type(constraint) is cls
    clone = cls.from_config(constraint.get_config())
    assert clone.get_config() == constraint.get_config()
    dense = layers.Dense(2, kernel_constraint=name)
    rebuilt = layers.Dense.from_config(dense.get_config())
    assert type(rebuilt.kernel_constraint) is cls
