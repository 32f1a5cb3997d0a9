"""Dice and Tversky: Keras's documented values, the overlap formulas, empty masks."""

from __future__ import annotations

import pytest
import torch

import lamina.losses as losses

# Keras's `Dice` docstring example: shape (2, 2, 2, 1).
KERAS_TRUE = torch.tensor([[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]])
KERAS_PRED = torch.tensor([[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]])


def test_keras_documented_dice_values() -> None:
    per_sample = losses.dice(KERAS_TRUE, KERAS_PRED, axis=(1, 2, 3))
    torch.testing.assert_close(per_sample, torch.tensor([0.5, 0.75757575]))
    pooled = losses.dice(KERAS_TRUE, KERAS_PRED)
    assert pooled.shape == () and pooled.item() == pytest.approx(0.6164384)
    torch.testing.assert_close(losses.Dice(axis=(1, 2, 3), reduction=None)(KERAS_TRUE, KERAS_PRED), per_sample)


def test_dice_is_one_minus_twice_the_overlap_over_the_sizes() -> None:
    y_true = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    y_pred = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    # |X ∩ Y| = 2, |X| = |Y| = 3: 1 - 4/6.
    assert losses.dice(y_true, y_pred).item() == pytest.approx(1 / 3)
    assert losses.dice(y_true, y_true).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.dice(y_true, 1 - y_true).item() == pytest.approx(1.0)


def test_empty_class_is_finite_and_smooth_scores_it_perfect() -> None:
    empty = torch.zeros(2, 4, 4)
    keras_form = losses.dice(empty, empty, axis=(1, 2))
    assert torch.isfinite(keras_form).all()
    torch.testing.assert_close(keras_form, torch.ones(2))
    torch.testing.assert_close(losses.dice(empty, empty, axis=(1, 2), smooth=1.0), torch.zeros(2))
    prediction = torch.zeros(1, 4, requires_grad=True)
    losses.tversky(torch.zeros(1, 4), prediction, smooth=1.0).backward()
    assert torch.isfinite(prediction.grad).all()


def test_tversky_alpha_weighs_false_positives_and_beta_false_negatives() -> None:
    y_true = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    over = torch.tensor([[1.0, 1.0, 1.0, 1.0]])  # TP 2, FP 2, FN 0
    under = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # TP 1, FP 0, FN 1
    assert losses.tversky(y_true, over, alpha=1.0, beta=0.0).item() == pytest.approx(1 - 2 / 4)
    assert losses.tversky(y_true, over, alpha=0.0, beta=1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.tversky(y_true, under, alpha=0.0, beta=1.0).item() == pytest.approx(1 - 1 / 2)
    assert losses.tversky(y_true, under, alpha=1.0, beta=0.0).item() == pytest.approx(0.0, abs=1e-6)


def test_tversky_with_equal_weights_is_dice() -> None:
    g = torch.Generator().manual_seed(0)
    y_true = torch.randint(0, 2, (3, 5, 5), generator=g).float()
    y_pred = torch.rand(3, 5, 5, generator=g)
    torch.testing.assert_close(
        losses.tversky(y_true, y_pred, axis=(1, 2)), losses.dice(y_true, y_pred, axis=(1, 2))
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"`axis` must be None, an integer or a tuple of integers\. Received: axis='hw'"):
        losses.Dice(axis="hw")
    with pytest.raises(ValueError, match=r"`alpha` must be a number >= 0\. Received: alpha=-0.5"):
        losses.Tversky(alpha=-0.5)
