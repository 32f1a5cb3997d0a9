"""Hinge losses: 0/1 labels become -1/+1, hand-computed values, no host sync for the check."""

from __future__ import annotations

import pytest
import torch

import lamina.losses as losses


def test_binary_labels_are_mapped_to_signed_labels() -> None:
    y_pred = torch.tensor([[0.3, -0.8, 1.5], [-2.0, 0.1, 0.0]])
    signed = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]])
    torch.testing.assert_close(losses.hinge((signed + 1) / 2, y_pred), losses.hinge(signed, y_pred))
    torch.testing.assert_close(
        losses.squared_hinge((signed + 1) / 2, y_pred), losses.squared_hinge(signed, y_pred)
    )


def test_hinge_values() -> None:
    y_true = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    y_pred = torch.tensor([[0.5, 0.5], [2.0, -1.0]])
    # max(1 - y·ŷ, 0): rows (0.5 + 1.5)/2 and (0 + 2)/2; squared: (0.25 + 2.25)/2, (0 + 4)/2.
    torch.testing.assert_close(losses.hinge(y_true, y_pred), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(losses.squared_hinge(y_true, y_pred), torch.tensor([1.25, 2.0]))


def test_categorical_hinge_values() -> None:
    y_true = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    y_pred = torch.tensor([[0.3, 0.6, 0.1], [2.0, 0.5, 0.1]])
    # max(max_neg - pos + 1, 0): 0.3 - 0.6 + 1 = 0.7, and 0.5 - 2 + 1 < 0 -> 0.
    torch.testing.assert_close(losses.categorical_hinge(y_true, y_pred), torch.tensor([0.7, 0.0]))


def test_non_binary_labels_are_left_alone() -> None:
    y_true = torch.tensor([[0.0, 2.0]])
    y_pred = torch.tensor([[0.25, 0.25]])
    # Not all labels are 0/1, so none is remapped: max(1 - 0, 0) and max(1 - 0.5, 0).
    assert losses.hinge(y_true, y_pred).item() == pytest.approx(0.75)
