"""Torch-style loss modules: torch conventions over the same functions as `lamina.losses`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina.losses as losses
from lamina import nn
from tests.losses.cases import ref_circle

G = torch.Generator().manual_seed(0)
LOGITS = torch.randn(6, 4, generator=G, dtype=torch.float64)
BINARY = torch.randint(0, 2, (6, 4), generator=G).double()
CLASSES = torch.randint(0, 4, (6,), generator=G)
MASKS = torch.randint(0, 2, (3, 2, 5, 5), generator=G).double()
PROBABILITIES = torch.rand(3, 2, 5, 5, generator=G, dtype=torch.float64)
EMBEDDINGS = tuple(torch.randn(5, 3, generator=G, dtype=torch.float64) for _ in range(3))


def sigmoid_focal_reference(logits, targets, alpha=0.25, gamma=2.0):
    """torchvision's sigmoid_focal_loss, written out: α_t (1 - p_t)^γ BCE, elementwise."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


# One row per module: the module, its inputs, and the per-element/per-sample reference.
ROWS = [
    (nn.FocalLoss(), (LOGITS, BINARY), sigmoid_focal_reference(LOGITS, BINARY)),
    (nn.FocalLoss(alpha=None, gamma=1.0), (LOGITS, BINARY), sigmoid_focal_reference(LOGITS, BINARY, None, 1.0)),
    (
        nn.FocalLoss(alpha=None, gamma=0.0, task="multiclass"),
        (LOGITS, CLASSES),
        F.cross_entropy(LOGITS, CLASSES, reduction="none"),
    ),
    (
        nn.FocalLoss(alpha=0.5, gamma=2.0, task="multiclass"),
        (LOGITS, CLASSES),
        0.5 * (1 - torch.softmax(LOGITS, 1)[torch.arange(6), CLASSES]) ** 2
        * F.cross_entropy(LOGITS, CLASSES, reduction="none"),
    ),
    (nn.DiceLoss(), (PROBABILITIES, MASKS), losses.dice(MASKS, PROBABILITIES, axis=(1, 2, 3), smooth=1.0)),
    (
        nn.DiceLoss(smooth=0.0, dims=(2, 3), from_logits=True),
        (PROBABILITIES.logit(), MASKS),
        1 - 2 * (MASKS * PROBABILITIES).sum((2, 3)) / (MASKS.sum((2, 3)) + PROBABILITIES.sum((2, 3)) + 1e-7),
    ),
    (
        nn.TverskyLoss(alpha=0.7, beta=0.3),
        (PROBABILITIES, MASKS),
        1 - ((MASKS * PROBABILITIES).sum((1, 2, 3)) + 1) / (
            (MASKS * PROBABILITIES).sum((1, 2, 3)) + 0.7 * ((1 - MASKS) * PROBABILITIES).sum((1, 2, 3))
            + 0.3 * (MASKS * (1 - PROBABILITIES)).sum((1, 2, 3)) + 1 + 1e-7
        ),
    ),
    (nn.TripletLoss(margin=0.5), EMBEDDINGS, torch.nn.TripletMarginLoss(0.5, reduction="none")(*EMBEDDINGS)),
    (nn.HuberLoss(delta=0.5), (LOGITS, BINARY), torch.nn.HuberLoss(reduction="none", delta=0.5)(LOGITS, BINARY)),
    (nn.LogCoshLoss(), (LOGITS, BINARY), torch.log(torch.cosh(LOGITS - BINARY))),
    (
        nn.GeneralizedCrossEntropyLoss(q=0.3),
        (LOGITS, CLASSES),
        (1 - torch.softmax(LOGITS, 1)[torch.arange(6), CLASSES] ** 0.3) / 0.3,
    ),
    (
        nn.CircleLoss(gamma=4.0, margin=0.25),
        (EMBEDDINGS[0], torch.tensor([0, 0, 1, 1, 1])),
        torch.from_numpy(ref_circle(
            np.array([0, 0, 1, 1, 1]),
            (EMBEDDINGS[0] / EMBEDDINGS[0].norm(dim=1, keepdim=True)).numpy(), 4.0, 0.25)),
    ),
]
IDS = [f"{type(row[0]).__name__}-{i}" for i, row in enumerate(ROWS)]


@pytest.mark.parametrize("module, inputs, reference", ROWS, ids=IDS)
def test_values_and_reductions(module, inputs, reference) -> None:
    reduction = module.reduction
    try:
        module.reduction = "none"
        torch.testing.assert_close(module(*inputs), reference)
        module.reduction = "sum"
        torch.testing.assert_close(module(*inputs), reference.sum())
        module.reduction = "mean"
        torch.testing.assert_close(module(*inputs), reference.mean())
    finally:
        module.reduction = reduction


@pytest.mark.parametrize("module, inputs, reference", ROWS, ids=IDS)
def test_gradcheck(module, inputs, reference) -> None:
    first = inputs[0].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: module(x, *inputs[1:]), (first,))


def test_parity_with_torch_modules() -> None:
    torch.testing.assert_close(nn.HuberLoss()(LOGITS, BINARY), torch.nn.HuberLoss()(LOGITS, BINARY))
    torch.testing.assert_close(nn.TripletLoss()(*EMBEDDINGS), torch.nn.TripletMarginLoss()(*EMBEDDINGS))
    no_focus = nn.FocalLoss(alpha=None, gamma=0.0)
    torch.testing.assert_close(no_focus(LOGITS, BINARY), torch.nn.BCEWithLogitsLoss()(LOGITS, BINARY))


def test_multiclass_focal_on_images_with_ignored_pixels() -> None:
    logits = torch.randn(2, 3, 4, 4, generator=G, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 4), generator=G)
    target[0, 0, :] = -100
    no_focus = nn.FocalLoss(alpha=None, gamma=0.0, task="multiclass")
    torch.testing.assert_close(no_focus(logits, target), F.cross_entropy(logits, target))
    per_pixel = nn.FocalLoss(alpha=None, gamma=0.0, task="multiclass", reduction="none")(logits, target)
    assert per_pixel.shape == (2, 4, 4) and (per_pixel[0, 0] == 0).all()


def test_easy_examples_contribute_almost_nothing() -> None:
    confident = torch.tensor([[12.0, -12.0], [-15.0, 15.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert nn.FocalLoss()(confident, labels) < 1e-10
    assert nn.FocalLoss(task="multiclass")(confident, torch.tensor([0, 1])) < 1e-15


def test_empty_mask_predicted_empty_is_a_perfect_dice() -> None:
    empty = torch.zeros(2, 1, 8, 8)
    torch.testing.assert_close(nn.DiceLoss(reduction="none")(empty, empty), torch.zeros(2))


def test_modules_train_through_compile_style_get() -> None:
    loss = losses.get(nn.FocalLoss())
    torch.testing.assert_close(loss(BINARY, LOGITS), nn.FocalLoss()(LOGITS, BINARY))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: nn.FocalLoss(reduction="avg"), r"`reduction` must be one of 'mean', 'sum', 'none'\. Received: reduction='avg'"),
        (lambda: nn.FocalLoss(task="multilabel"), r"`task` must be 'binary' or 'multiclass'\. Received: task='multilabel'"),
        (lambda: nn.FocalLoss(alpha=[0.2, 0.8]), r"binary focal loss takes a scalar `alpha`.*Received: alpha=\[0.2, 0.8\]"),
        (lambda: nn.FocalLoss(gamma=-2), r"`gamma` must be a number >= 0\. Received: gamma=-2"),
        (lambda: nn.DiceLoss(smooth=-1), r"`smooth` must be a number >= 0\. Received: smooth=-1"),
        (lambda: nn.TverskyLoss(beta=-0.1), r"`beta` must be a number >= 0\. Received: beta=-0.1"),
        (lambda: nn.TripletLoss(distance="manhattan"), r"`distance` must be one of 'euclidean', 'squared', 'cosine'\. Received: distance='manhattan'"),
        (lambda: nn.HuberLoss(delta=0.0), r"`delta` must be a positive number\. Received: delta=0.0"),
        (lambda: nn.GeneralizedCrossEntropyLoss(q=1.0), r"`q` must be a number in the open interval \(0, 1\)\. Received: q=1.0"),
        (lambda: nn.CircleLoss(gamma=0), r"`gamma` must be a number > 0\. Received: gamma=0"),
    ],
)
def test_bad_arguments(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()
