"""Triplet losses: the sheet's formula, torch parity, and TFA's batch mining."""

from __future__ import annotations

import pytest
import torch

import lamina.losses as losses
from lamina.errors import ShapeError

from .cases import ref_triplet_hard, ref_triplet_semihard


def test_triplet_loss_on_a_hand_computed_case() -> None:
    anchor = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    positive = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    negative = torch.tensor([[0.0, 2.0], [6.0, 8.0]])
    # max(0, d(a,p) - d(a,n) + margin): euclidean 5 - 2 + 1 and 1 - 10 + 1 -> 0.
    torch.testing.assert_close(
        losses.triplet_loss(anchor, positive, negative), torch.tensor([4.0, 0.0]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        losses.triplet_loss(anchor, positive, negative, margin=0.0, distance="squared"),
        torch.tensor([21.0, 0.0]),
    )
    # cosine: 1 - cos; the anchor (1, 0) against (0, 1) gives 1, against (-1, 0) gives 2.
    cosine = losses.triplet_loss(
        torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[-1.0, 0.0]]),
        margin=0.5, distance="cosine",
    )
    torch.testing.assert_close(cosine, torch.tensor([0.0]))


def test_parity_with_torch_triplet_margin_loss() -> None:
    g = torch.Generator().manual_seed(0)
    anchor, positive, negative = (torch.randn(16, 8, generator=g) for _ in range(3))
    torch.testing.assert_close(
        losses.triplet_loss(anchor, positive, negative, margin=0.7).mean(),
        torch.nn.TripletMarginLoss(margin=0.7)(anchor, positive, negative),
    )


def test_gradcheck_triplet_loss() -> None:
    g = torch.Generator().manual_seed(1)
    anchor, positive, negative = (
        torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)
    )
    for distance in ("euclidean", "squared", "cosine"):
        assert torch.autograd.gradcheck(
            lambda a, p, n: losses.triplet_loss(a, p, n, margin=2.0, distance=distance),
            (anchor, positive, negative),
        )


def test_semihard_mining_on_a_hand_computed_batch() -> None:
    # Points on a line: class 0 at 0 and 1, class 1 at 1.5 and 4.
    labels = torch.tensor([0, 0, 1, 1])
    embeddings = torch.tensor([[0.0], [1.0], [1.5], [4.0]])
    # (a, p) -> negative: (0,1): d_ap 1, semi-hard negative 1.5 -> 1 - 1.5 + 1 = 0.5
    # (1,0): d_ap 1, negatives 0.5, 3 -> 3 -> 0 ;  (2,3): d_ap 2.5, negatives 1.5, 0.5, none
    # farther -> farthest 1.5 -> 2.5 - 1.5 + 1 = 2 ; (3,2): d_ap 2.5, negatives 4, 3 -> 3 -> 0.5
    expected = (0.5 + 0.0 + 2.0 + 0.5) / 4
    assert losses.triplet_semihard_loss(labels, embeddings).item() == pytest.approx(expected)
    # Hardest positive and closest negative per anchor: 1 - 1.5, 1 - 0.5, 2.5 - 0.5, 2.5 - 3.
    expected = (0.5 + 1.5 + 3.0 + 0.5) / 4
    assert losses.triplet_hard_loss(labels, embeddings).item() == pytest.approx(expected)


@pytest.mark.parametrize("metric", ["squared-L2", "angular", "callable"])
def test_distance_metrics(metric: str) -> None:
    g = torch.Generator().manual_seed(2)
    labels = torch.tensor([0, 1, 0, 2, 1, 2, 0])
    embeddings = torch.randn(7, 4, generator=g, dtype=torch.float64)
    if metric == "squared-L2":
        distances = torch.cdist(embeddings, embeddings) ** 2
    elif metric == "angular":
        unit = torch.nn.functional.normalize(embeddings, dim=1)
        distances = (1 - unit @ unit.T).clamp_min(0)
    else:
        distances = torch.cdist(embeddings, embeddings, p=1)
    distance_metric = (lambda e: torch.cdist(e, e, p=1)) if metric == "callable" else metric
    got = losses.pairwise_distance_matrix(embeddings, distance_metric)
    torch.testing.assert_close(got, distances * (1 - torch.eye(7, dtype=torch.float64)), atol=1e-9, rtol=1e-7)
    d = got.numpy()
    semihard = losses.TripletSemiHardLoss(distance_metric=distance_metric)(labels, embeddings)
    assert semihard.item() == pytest.approx(float(ref_triplet_semihard(labels.numpy(), None, d=d)))
    hard = losses.TripletHardLoss(distance_metric=distance_metric)(labels, embeddings)
    assert hard.item() == pytest.approx(float(ref_triplet_hard(labels.numpy(), None, d=d)))


def test_mining_matches_brute_force_on_random_batches() -> None:
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        labels = torch.randint(0, 3, (9,), generator=g)
        embeddings = torch.randn(9, 2, generator=g, dtype=torch.float64)
        if len(set(labels.tolist())) < 2 or min(labels.bincount()[labels.unique()]) < 2:
            continue
        assert losses.triplet_semihard_loss(labels, embeddings, margin=0.5).item() == pytest.approx(
            float(ref_triplet_semihard(labels.numpy(), embeddings.numpy(), margin=0.5))
        )
        assert losses.triplet_hard_loss(labels, embeddings, margin=0.5).item() == pytest.approx(
            float(ref_triplet_hard(labels.numpy(), embeddings.numpy(), margin=0.5))
        )


def test_batch_without_positive_pairs_gives_zero() -> None:
    labels = torch.tensor([0, 1, 2])
    assert losses.triplet_semihard_loss(labels, torch.randn(3, 2)).item() == 0.0


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"`distance` must be one of 'euclidean', 'squared', 'cosine'\. Received: distance='l1'"):
        losses.triplet_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), distance="l1")
    with pytest.raises(ShapeError, match=r"anchor.shape=\(1, 2\), positive.shape=\(1, 3\)"):
        losses.triplet_loss(torch.zeros(1, 2), torch.zeros(1, 3), torch.zeros(1, 2))
    with pytest.raises(ShapeError, match=r"labels of shape \(batch,\) .* y_true.shape=\(3,\), y_pred.shape=\(4, 2\)"):
        losses.triplet_hard_loss(torch.zeros(3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"`distance_metric` must be one of 'L2', 'squared-L2', 'angular'\. Received: distance_metric='L1'"):
        losses.TripletSemiHardLoss(distance_metric="L1")
