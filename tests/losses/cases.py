"""One row per Keras loss class: inputs, an independent NumPy reference, and its string names.

The references are written from the formulas (the sheet's and Keras's documentation), not
from lamina's code, so the table checks the implementation rather than restating it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

import lamina.losses as losses

EPS = 1e-7


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, classes).double()


# ---------------------------------------------------------------- inputs (float64, seeded)

def regression_inputs(g: torch.Generator):
    return torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(
        4, 3, generator=g, dtype=torch.float64
    )


def positive_inputs(g: torch.Generator):
    return (
        torch.rand(4, 3, generator=g, dtype=torch.float64) * 3 + 0.5,
        torch.rand(4, 3, generator=g, dtype=torch.float64) * 3 + 0.5,
    )


def binary_inputs(g: torch.Generator):
    y_true = torch.randint(0, 2, (4, 3), generator=g).double()
    return y_true, torch.rand(4, 3, generator=g, dtype=torch.float64) * 0.9 + 0.05


def binary_logit_inputs(g: torch.Generator):
    y_true = torch.randint(0, 2, (4, 3), generator=g).double()
    return y_true, torch.randn(4, 3, generator=g, dtype=torch.float64) * 2


def categorical_inputs(g: torch.Generator):
    labels = torch.randint(0, 5, (4,), generator=g)
    return _one_hot(labels, 5), torch.softmax(torch.randn(4, 5, generator=g, dtype=torch.float64), -1)


def categorical_logit_inputs(g: torch.Generator):
    labels = torch.randint(0, 5, (4,), generator=g)
    return _one_hot(labels, 5), torch.randn(4, 5, generator=g, dtype=torch.float64) * 2


def sparse_inputs(g: torch.Generator):
    return torch.randint(0, 5, (4,), generator=g), torch.softmax(
        torch.randn(4, 5, generator=g, dtype=torch.float64), -1
    )


def sparse_logit_inputs(g: torch.Generator):
    return torch.randint(0, 5, (4,), generator=g), torch.randn(4, 5, generator=g, dtype=torch.float64)


def distribution_inputs(g: torch.Generator):
    return (
        torch.softmax(torch.randn(4, 5, generator=g, dtype=torch.float64), -1),
        torch.softmax(torch.randn(4, 5, generator=g, dtype=torch.float64), -1),
    )


def poisson_inputs(g: torch.Generator):
    return (
        torch.randint(0, 5, (4, 3), generator=g).double(),
        torch.rand(4, 3, generator=g, dtype=torch.float64) * 3 + 0.5,
    )


def signed_inputs(g: torch.Generator):
    y_true = torch.randint(0, 2, (4, 3), generator=g).double() * 2 - 1
    return y_true, torch.randn(4, 3, generator=g, dtype=torch.float64)


def one_hot_scores(g: torch.Generator):
    labels = torch.randint(0, 5, (4,), generator=g)
    return _one_hot(labels, 5), torch.randn(4, 5, generator=g, dtype=torch.float64)


def mask_inputs(g: torch.Generator):
    y_true = torch.randint(0, 2, (3, 4, 4), generator=g).double()
    return y_true, torch.rand(3, 4, 4, generator=g, dtype=torch.float64) * 0.9 + 0.05


def embedding_inputs(g: torch.Generator):
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    return labels, torch.randn(6, 3, generator=g, dtype=torch.float64)


def ctc_inputs(g: torch.Generator):
    """Labels over classes 1..3 padded with 0 (the blank); logits over 4 time steps."""
    labels = torch.tensor([[1, 2, 0], [3, 3, 1], [2, 0, 0]], dtype=torch.float64)
    return labels, torch.randn(3, 4, 4, generator=g, dtype=torch.float64)


def unit_embedding_inputs(g: torch.Generator):
    labels, embeddings = embedding_inputs(g)
    return labels.double(), embeddings / embeddings.norm(dim=1, keepdim=True)


def gce_inputs(g: torch.Generator):
    labels = torch.randint(0, 5, (4,), generator=g).double()
    return labels, torch.softmax(torch.randn(4, 5, generator=g, dtype=torch.float64), -1)


# ---------------------------------------------------------------- NumPy references

def ref_ctc(labels, logits):
    """-log of the summed probability of every path that collapses to the label, by brute force
    over all classes**time paths."""
    import itertools

    probabilities = _softmax(logits)
    losses = []
    for target, p in zip(labels.astype(int), probabilities):
        target = tuple(int(c) for c in target if c != 0)
        total = 0.0
        for path in itertools.product(range(p.shape[1]), repeat=p.shape[0]):
            merged = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
            if tuple(c for c in merged if c != 0) == target:
                total += np.prod(p[np.arange(p.shape[0]), path])
        losses.append(-np.log(total))
    return np.array(losses)


def ref_circle(labels, emb, gamma=80.0, margin=0.4):
    """Sun et al.'s circle loss with Keras's cosine distances, one query at a time."""
    out = []
    for i in range(len(labels)):
        positive_terms, negative_terms = [], []
        for j in range(len(labels)):
            distance = max(1 - emb[i] @ emb[j], 0.0)
            if labels[i] == labels[j] and i != j:
                alpha = max(margin + distance, 0.0)
                positive_terms.append(-gamma * alpha * (margin - distance))
            elif labels[i] != labels[j]:
                alpha = max(1 + margin - distance, 0.0)
                negative_terms.append(gamma * alpha * (1 - margin - distance))
        logsumexp = lambda v: np.log(np.sum(np.exp(v)))  # noqa: E731
        out.append(np.logaddexp(0.0, logsumexp(positive_terms) + logsumexp(negative_terms)))
    return np.array(out)


def ref_gce(labels, p, q=0.5):
    return (1 - p[np.arange(len(labels)), labels.astype(int)] ** q) / q


def ref_bce(t, p, logits=False, smoothing=0.0):
    t = t * (1 - smoothing) + 0.5 * smoothing
    p = _sigmoid(p) if logits else np.clip(p, EPS, 1 - EPS)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(-1)


def ref_cce(t, p, logits=False, smoothing=0.0):
    t = t * (1 - smoothing) + smoothing / t.shape[-1]
    p = _softmax(p) if logits else np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -(t * np.log(p)).sum(-1)


def ref_sce(labels, p, logits=False):
    p = _softmax(p) if logits else np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -np.log(p[np.arange(len(labels)), labels.astype(int)])


def ref_binary_focal(t, p, alpha=0.25, gamma=2.0, balance=False, logits=False):
    p = _sigmoid(p) if logits else np.clip(p, EPS, 1 - EPS)
    p_t = np.where(t == 1, p, 1 - p)
    alpha_t = np.where(t == 1, alpha, 1 - alpha) if balance else 1.0
    return (-alpha_t * (1 - p_t) ** gamma * np.log(p_t)).mean(-1)


def ref_categorical_focal(t, p, alpha=0.25, gamma=2.0, logits=False):
    p = _softmax(p) if logits else np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -(alpha * (1 - p) ** gamma * t * np.log(p)).sum(-1)


def _euclidean(emb):
    return np.sqrt(((emb[:, None] - emb[None]) ** 2).sum(-1))


def ref_triplet_semihard(labels, emb, margin=1.0, d=None):
    n = len(labels)
    d = _euclidean(emb) if d is None else d
    total, pairs = 0.0, 0
    for a in range(n):
        negatives = [k for k in range(n) if labels[k] != labels[a]]
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [d[a, k] for k in negatives if d[a, k] > d[a, p]]
            d_an = min(farther) if farther else max(d[a, k] for k in negatives)
            total += max(d[a, p] - d_an + margin, 0.0)
            pairs += 1
    return np.asarray(total / pairs)


def ref_triplet_hard(labels, emb, margin=1.0, soft=False, d=None):
    n = len(labels)
    d = _euclidean(emb) if d is None else d
    values = []
    for a in range(n):
        d_ap = max(d[a, p] for p in range(n) if p != a and labels[p] == labels[a])
        d_an = min(d[a, k] for k in range(n) if labels[k] != labels[a])
        values.append(np.log1p(np.exp(d_ap - d_an)) if soft else max(d_ap - d_an + margin, 0.0))
    return np.asarray(np.mean(values))


def ref_dice(t, p, axis=None):
    return 1 - 2 * (t * p).sum(axis=axis) / (t.sum(axis=axis) + p.sum(axis=axis) + EPS)


def ref_tversky(t, p, alpha=0.5, beta=0.5, axis=None):
    tp = (t * p).sum(axis=axis)
    fp = ((1 - t) * p).sum(axis=axis)
    fn = (t * (1 - p)).sum(axis=axis)
    return 1 - tp / (tp + alpha * fp + beta * fn + EPS)


def _huber(t, p, delta=1.0):
    e = np.abs(p - t)
    return np.where(e <= delta, 0.5 * e**2, delta * e - 0.5 * delta**2).mean(-1)


def _cosine(t, p):
    tn = t / np.linalg.norm(t, axis=-1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=-1, keepdims=True)
    return -(tn * pn).sum(-1)


@dataclass(frozen=True)
class LossCase:
    cls: type
    kwargs: dict[str, Any]
    inputs: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    reference: Callable[[np.ndarray, np.ndarray], np.ndarray]
    names: tuple[str, ...] = ()
    # The losses pooled into one value per batch (no per-sample axis to weight).
    scalar: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        arguments = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.cls.__name__}({arguments})"


CASES = [
    LossCase(losses.MeanSquaredError, {}, regression_inputs,
             lambda t, p: ((t - p) ** 2).mean(-1), ("mse", "MSE", "mean_squared_error")),
    LossCase(losses.MeanAbsoluteError, {}, regression_inputs,
             lambda t, p: np.abs(t - p).mean(-1), ("mae", "MAE", "mean_absolute_error")),
    LossCase(losses.MeanAbsolutePercentageError, {}, positive_inputs,
             lambda t, p: 100 * (np.abs(t - p) / np.abs(t)).mean(-1),
             ("mape", "MAPE", "mean_absolute_percentage_error")),
    LossCase(losses.MeanSquaredLogarithmicError, {}, positive_inputs,
             lambda t, p: ((np.log(t + 1) - np.log(p + 1)) ** 2).mean(-1),
             ("msle", "MSLE", "mean_squared_logarithmic_error")),
    LossCase(losses.Huber, {"delta": 0.7}, regression_inputs,
             lambda t, p: _huber(t, p, 0.7), ("huber", "huber_loss")),
    LossCase(losses.LogCosh, {}, regression_inputs,
             lambda t, p: np.log(np.cosh(p - t)).mean(-1), ("log_cosh", "logcosh")),
    LossCase(losses.CosineSimilarity, {}, regression_inputs, _cosine, ("cosine_similarity",)),
    LossCase(losses.BinaryCrossentropy, {}, binary_inputs, ref_bce,
             ("binary_crossentropy", "bce", "BCE")),
    LossCase(losses.BinaryCrossentropy, {"from_logits": True, "label_smoothing": 0.2},
             binary_logit_inputs, lambda t, p: ref_bce(t, p, logits=True, smoothing=0.2)),
    LossCase(losses.BinaryFocalCrossentropy, {"gamma": 1.5}, binary_inputs,
             lambda t, p: ref_binary_focal(t, p, gamma=1.5), ("binary_focal_crossentropy",)),
    LossCase(losses.BinaryFocalCrossentropy,
             {"apply_class_balancing": True, "alpha": 0.3, "from_logits": True},
             binary_logit_inputs,
             lambda t, p: ref_binary_focal(t, p, alpha=0.3, balance=True, logits=True)),
    LossCase(losses.CategoricalCrossentropy, {}, categorical_inputs, ref_cce,
             ("categorical_crossentropy",)),
    LossCase(losses.CategoricalCrossentropy, {"from_logits": True, "label_smoothing": 0.1},
             categorical_logit_inputs, lambda t, p: ref_cce(t, p, logits=True, smoothing=0.1)),
    LossCase(losses.CategoricalFocalCrossentropy, {}, categorical_inputs, ref_categorical_focal,
             ("categorical_focal_crossentropy",)),
    LossCase(losses.CategoricalFocalCrossentropy, {"alpha": 0.5, "gamma": 3.0, "from_logits": True},
             categorical_logit_inputs,
             lambda t, p: ref_categorical_focal(t, p, alpha=0.5, gamma=3.0, logits=True)),
    LossCase(losses.SparseCategoricalCrossentropy, {}, sparse_inputs, ref_sce,
             ("sparse_categorical_crossentropy",)),
    LossCase(losses.SparseCategoricalCrossentropy, {"from_logits": True}, sparse_logit_inputs,
             lambda t, p: ref_sce(t, p, logits=True)),
    LossCase(losses.KLDivergence, {}, distribution_inputs,
             lambda t, p: (t * np.log(t / p)).sum(-1),
             ("kl_divergence", "kld", "KLD", "kullback_leibler_divergence")),
    LossCase(losses.Poisson, {}, poisson_inputs,
             lambda t, p: (p - t * np.log(p + EPS)).mean(-1), ("poisson",)),
    LossCase(losses.Hinge, {}, signed_inputs,
             lambda t, p: np.maximum(1 - t * p, 0).mean(-1), ("hinge",)),
    LossCase(losses.SquaredHinge, {}, signed_inputs,
             lambda t, p: (np.maximum(1 - t * p, 0) ** 2).mean(-1), ("squared_hinge",)),
    LossCase(losses.CategoricalHinge, {}, one_hot_scores,
             lambda t, p: np.maximum(((1 - t) * p).max(-1) - (t * p).sum(-1) + 1, 0),
             ("categorical_hinge",)),
    LossCase(losses.Dice, {}, mask_inputs, ref_dice, ("dice",), scalar=True),
    LossCase(losses.Dice, {"axis": (1, 2)}, mask_inputs, lambda t, p: ref_dice(t, p, (1, 2))),
    LossCase(losses.Tversky, {"alpha": 0.7, "beta": 0.3}, mask_inputs,
             lambda t, p: ref_tversky(t, p, 0.7, 0.3), ("tversky",), scalar=True),
    LossCase(losses.Tversky, {"axis": (1, 2)}, mask_inputs,
             lambda t, p: ref_tversky(t, p, axis=(1, 2))),
    LossCase(losses.TripletSemiHardLoss, {}, embedding_inputs, ref_triplet_semihard,
             ("triplet_semihard_loss",), scalar=True),
    LossCase(losses.TripletHardLoss, {}, embedding_inputs, ref_triplet_hard,
             ("triplet_hard_loss",), scalar=True),
    LossCase(losses.TripletHardLoss, {"soft": True}, embedding_inputs,
             lambda t, p: ref_triplet_hard(t, p, soft=True), scalar=True),
    LossCase(losses.CTC, {}, ctc_inputs, ref_ctc, ("ctc",)),
    LossCase(losses.Circle, {}, unit_embedding_inputs, ref_circle, ("circle",)),
    LossCase(losses.Circle, {"gamma": 4.0, "margin": 0.25}, unit_embedding_inputs,
             lambda t, p: ref_circle(t, p, 4.0, 0.25)),
    LossCase(losses.CategoricalGeneralizedCrossEntropy, {}, gce_inputs, ref_gce,
             ("categorical_generalized_cross_entropy",)),
    LossCase(losses.CategoricalGeneralizedCrossEntropy, {"q": 0.2}, gce_inputs,
             lambda t, p: ref_gce(t, p, 0.2)),
]


def case_inputs(case: LossCase, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return case.inputs(torch.Generator().manual_seed(seed))
