"""Regression losses: the sheet's formulas and derivatives, Keras's examples, torch parity."""

from __future__ import annotations

import math

import pytest
import torch

import lamina.losses as losses


def test_mse_and_mae_on_a_hand_computed_case() -> None:
    y_true = torch.tensor([[0.0, 1.0], [2.0, 4.0]])
    y_pred = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    # MSE = (1/n) Σ (y_true - y_pred)²: rows (1 + 0)/2 and (4 + 9)/2.
    torch.testing.assert_close(losses.mean_squared_error(y_true, y_pred), torch.tensor([0.5, 6.5]))
    # MAE = (1/n) Σ |y_true - y_pred|: rows (1 + 0)/2 and (2 + 3)/2.
    torch.testing.assert_close(losses.mean_absolute_error(y_true, y_pred), torch.tensor([0.5, 2.5]))
    assert losses.MeanSquaredError()(y_true, y_pred) == pytest.approx(3.5)


def test_mse_gradient_is_the_sheets_derivative() -> None:
    y_true = torch.tensor([[0.0, 1.0, -2.0], [3.0, 0.5, 1.0]])
    y_pred = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.5, 4.0]], requires_grad=True)
    losses.MeanSquaredError()(y_true, y_pred).backward()
    # dL/dy_pred = 2(y_pred - y_true)/n over all n = 6 entries averaged by the reduction.
    torch.testing.assert_close(y_pred.grad, 2 * (y_pred.detach() - y_true) / 6)


def test_mae_gradient_is_the_sign() -> None:
    y_true = torch.tensor([[0.0, 1.0], [3.0, 0.5]])
    y_pred = torch.tensor([[0.5, -1.0], [1.0, 2.0]], requires_grad=True)
    losses.MeanAbsoluteError(reduction="sum")(y_true, y_pred).backward()
    # -1 where y_true > y_pred, +1 where y_pred > y_true, each averaged over the last axis.
    torch.testing.assert_close(y_pred.grad, torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) / 2)


def test_keras_documented_values() -> None:
    y_true = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    y_pred = torch.tensor([[0.6, 0.4], [0.4, 0.6]])
    # Keras prints 0.155 and 0.108; the exact values: (0.18 + 0.13) / 2 and log(cosh(1)) / 4.
    assert losses.huber(y_true, y_pred).mean() == pytest.approx(0.155, rel=1e-6)
    assert losses.log_cosh(y_true, torch.tensor([[1.0, 1.0], [0.0, 0.0]])).mean() == pytest.approx(
        math.log(math.cosh(1.0)) / 4, rel=1e-6
    )
    similarity = losses.cosine_similarity(
        torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]]),
        torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]]),
    )
    torch.testing.assert_close(similarity, torch.tensor([0.0, -1.0, 1.0]))


def test_huber_is_quadratic_inside_delta_and_linear_beyond() -> None:
    y_true = torch.zeros(1, 4)
    y_pred = torch.tensor([[0.5, -1.0, 2.0, -3.0]])
    # delta = 1: 0.5 x² for |x| <= 1, |x| - 0.5 beyond.
    expected = (0.125 + 0.5 + 1.5 + 2.5) / 4
    assert losses.huber(y_true, y_pred).item() == pytest.approx(expected)
    # delta = 2: the linear part is 2|x| - 2.
    expected = (0.125 + 0.5 + 2.0 + 4.0) / 4
    assert losses.huber(y_true, y_pred, delta=2.0).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    "ours, reference",
    [
        (losses.MeanSquaredError, torch.nn.MSELoss),
        (losses.MeanAbsoluteError, torch.nn.L1Loss),
        (lambda **kw: losses.Huber(delta=0.8, **kw), lambda **kw: torch.nn.HuberLoss(delta=0.8, **kw)),
    ],
    ids=["MSELoss", "L1Loss", "HuberLoss"],
)
def test_parity_with_torch(ours, reference) -> None:
    g = torch.Generator().manual_seed(0)
    y_true, y_pred = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g) * 2
    torch.testing.assert_close(ours()(y_true, y_pred), reference()(y_pred, y_true))
    # Keras's "sum" adds per-sample means (over the last axis of 5); torch's adds elements.
    torch.testing.assert_close(
        ours(reduction="sum")(y_true, y_pred), reference(reduction="sum")(y_pred, y_true) / 5
    )


def test_zero_targets_and_nonpositive_values_stay_finite() -> None:
    mape = losses.mean_absolute_percentage_error(torch.zeros(1, 2), torch.tensor([[1e-3, 0.0]]))
    assert torch.isfinite(mape).all()
    msle = losses.mean_squared_logarithmic_error(torch.tensor([[-1.0, 0.0]]), torch.tensor([[-5.0, 2.0]]))
    assert torch.isfinite(msle).all()
    # log(cosh(1000)) overflows when computed directly; the softplus form does not.
    assert losses.log_cosh(torch.zeros(1, 1), torch.tensor([[1000.0]])).item() == pytest.approx(
        1000 - torch.log(torch.tensor(2.0)).item()
    )
    assert losses.cosine_similarity(torch.zeros(1, 3), torch.ones(1, 3)).item() == 0.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"`delta` must be a positive number\. Received: delta=0"):
        losses.Huber(delta=0)
    with pytest.raises(ValueError, match=r"`axis` must be an integer\. Received: axis='last'"):
        losses.CosineSimilarity(axis="last")
