"""Cross-entropies, focal losses, KL divergence and Poisson: Keras's documented values, torch
parity, stability at probabilities 0 and 1, logits fusion, and bad data."""

from __future__ import annotations

import decimal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina.losses as losses
from lamina.errors import DataError, ShapeError

LABELS = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
LOGITS = torch.tensor([[-18.6, 0.51], [2.94, -12.8]])
WEIGHTS = torch.tensor([0.8, 0.2])
ONE_HOT = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
PROBABILITIES = torch.tensor([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])


def _printed_tolerance(value: float) -> float:
    """One unit in the last digit Keras printed (0.0017 -> 1e-4, 3.2058331e-05 -> 1e-12), or a
    relative 1e-6 where Keras printed more digits than float32 holds: a tolerance that scales
    with the value, so a 3.2e-5 loss is checked as closely as a 0.47 one."""
    last_place = 10.0 ** decimal.Decimal(repr(float(value))).as_tuple().exponent
    return max(last_place, 1e-6 * abs(value))


def _close(got: torch.Tensor, expected, rtol: float | None = None) -> None:
    """`got` equals `expected` to Keras's printed precision, or within `rtol` (no absolute
    slack: values of 1e-5 are compared relatively too)."""
    want = torch.as_tensor(expected, dtype=torch.float64).reshape(-1)
    have = got.detach().double().reshape(-1)
    assert have.shape == want.shape
    for g, e in zip(have.tolist(), want.tolist()):
        tolerance = _printed_tolerance(e) if rtol is None else rtol * abs(e)
        assert abs(g - e) <= tolerance, f"{g} != {e} within {tolerance:.1e}"


# Keras's documented examples (keras/src/losses/losses.py), to Keras's printed precision.
KERAS_EXAMPLES = [
    (lambda: losses.BinaryCrossentropy(from_logits=True)(LABELS, LOGITS), 0.8654),
    (lambda: losses.BinaryCrossentropy(from_logits=True)(LABELS, LOGITS, sample_weight=WEIGHTS), 0.243),
    (lambda: losses.BinaryCrossentropy(from_logits=True, reduction="sum")(LABELS, LOGITS), 1.730),
    (lambda: losses.BinaryCrossentropy(from_logits=True, reduction=None)(LABELS, LOGITS), [0.235, 1.496]),
    (lambda: losses.binary_crossentropy(LABELS, torch.tensor([[0.6, 0.4], [0.4, 0.6]])), [0.916, 0.714]),
    (lambda: losses.BinaryFocalCrossentropy(gamma=2, from_logits=True)(LABELS.reshape(-1), LOGITS.reshape(-1)), 0.691),
    (lambda: losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=2, from_logits=True)(LABELS.reshape(-1), LOGITS.reshape(-1)), 0.51),
    (lambda: losses.BinaryFocalCrossentropy(gamma=3, from_logits=True)(LABELS, LOGITS), 0.647),
    (lambda: losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=3, from_logits=True)(LABELS, LOGITS), 0.482),
    (lambda: losses.BinaryFocalCrossentropy(gamma=3, from_logits=True)(LABELS, LOGITS, sample_weight=WEIGHTS), 0.133),
    (lambda: losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=3, from_logits=True)(LABELS, LOGITS, sample_weight=WEIGHTS), 0.097),
    (lambda: losses.BinaryFocalCrossentropy(gamma=4, from_logits=True, reduction="sum")(LABELS, LOGITS), 1.222),
    (lambda: losses.BinaryFocalCrossentropy(gamma=5, from_logits=True, reduction=None)(LABELS, LOGITS), [0.0017, 1.1561]),
    (lambda: losses.binary_focal_crossentropy(LABELS, torch.tensor([[0.6, 0.4], [0.4, 0.6]]), gamma=2), [0.330, 0.206]),
    (lambda: losses.CategoricalCrossentropy()(ONE_HOT, PROBABILITIES), 1.177),
    (lambda: losses.CategoricalCrossentropy()(ONE_HOT, PROBABILITIES, sample_weight=torch.tensor([0.3, 0.7])), 0.814),
    (lambda: losses.CategoricalCrossentropy(reduction="sum")(ONE_HOT, PROBABILITIES), 2.354),
    (lambda: losses.CategoricalCrossentropy(reduction=None)(ONE_HOT, PROBABILITIES), [0.0513, 2.303]),
    (lambda: losses.SparseCategoricalCrossentropy()(torch.tensor([1, 2]), PROBABILITIES), 1.177),
    (lambda: losses.SparseCategoricalCrossentropy(reduction=None)(torch.tensor([1, 2]), PROBABILITIES), [0.0513, 2.303]),
    (lambda: losses.CategoricalFocalCrossentropy()(ONE_HOT, PROBABILITIES), 0.23315276),
    (lambda: losses.CategoricalFocalCrossentropy()(ONE_HOT, PROBABILITIES, sample_weight=torch.tensor([0.3, 0.7])), 0.1632),
    (lambda: losses.CategoricalFocalCrossentropy(reduction="sum")(ONE_HOT, PROBABILITIES), 0.46631),
    (lambda: losses.CategoricalFocalCrossentropy(reduction=None)(ONE_HOT, PROBABILITIES), [3.2058331e-05, 4.6627346e-01]),
    (lambda: losses.categorical_focal_crossentropy(ONE_HOT, torch.tensor([[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]])), [2.63401289e-04, 6.75912094e-01]),
]


@pytest.mark.parametrize("compute, expected", KERAS_EXAMPLES, ids=range(len(KERAS_EXAMPLES)))
def test_keras_documented_values(compute, expected) -> None:
    _close(compute(), expected)


def test_sheet_formulas_on_hand_computed_cases() -> None:
    # L = -[y log p + (1 - y) log(1 - p)]
    bce = losses.binary_crossentropy(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.8, 0.25]]))
    _close(bce, [-(torch.log(torch.tensor(0.8)) + torch.log(torch.tensor(0.75))) / 2], rtol=1e-6)
    # L = -Σ y log p
    cce = losses.categorical_crossentropy(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0.2, 0.5, 0.3]]))
    _close(cce, [-torch.log(torch.tensor(0.5))], rtol=1e-6)
    # L = -log p[class]
    sce = losses.sparse_categorical_crossentropy(torch.tensor([2]), torch.tensor([[0.2, 0.5, 0.3]]))
    _close(sce, [-torch.log(torch.tensor(0.3))], rtol=1e-6)
    # L = -α_t (1 - p_t)^γ log p_t with p_t = 0.8 for label 1 and 1 - 0.25 for label 0
    focal = losses.binary_focal_crossentropy(
        torch.tensor([[1.0, 0.0]]), torch.tensor([[0.8, 0.25]]), apply_class_balancing=True
    )
    p_t = torch.tensor([0.8, 0.75])
    alpha_t = torch.tensor([0.25, 0.75])
    _close(focal, [(-alpha_t * (1 - p_t) ** 2 * torch.log(p_t)).mean()], rtol=1e-6)


def test_parity_with_torch_losses() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g) * 2
    labels = torch.randint(0, 4, (6,), generator=g)
    targets = torch.randint(0, 2, (6, 4), generator=g).float()
    torch.testing.assert_close(
        losses.BinaryCrossentropy()(targets, torch.sigmoid(logits)),
        torch.nn.BCELoss()(torch.sigmoid(logits), targets),
    )
    torch.testing.assert_close(
        losses.BinaryCrossentropy(from_logits=True)(targets, logits),
        torch.nn.BCEWithLogitsLoss()(logits, targets),
    )
    torch.testing.assert_close(
        losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits),
        torch.nn.CrossEntropyLoss()(logits, labels),
    )
    torch.testing.assert_close(
        losses.SparseCategoricalCrossentropy()(labels, torch.softmax(logits, -1)),
        torch.nn.NLLLoss()(torch.log_softmax(logits, -1), labels),
    )
    torch.testing.assert_close(
        losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(
            F.one_hot(labels, 4).float(), logits
        ),
        torch.nn.CrossEntropyLoss(label_smoothing=0.1)(logits, labels),
    )
    p, q = torch.softmax(torch.randn(6, 4, generator=g), -1), torch.softmax(logits, -1)
    torch.testing.assert_close(
        losses.KLDivergence()(p, q),
        torch.nn.KLDivLoss(reduction="batchmean")(torch.log(q), p),
    )


def test_sparse_labels_on_sequences_and_in_a_column() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 3, generator=g)  # (batch, time, classes), channels last
    labels = torch.randint(0, 3, (2, 5), generator=g)
    got = losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    expected = F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none")
    torch.testing.assert_close(got, expected)
    column = losses.sparse_categorical_crossentropy(labels[0][:, None].float(), logits[0], from_logits=True)
    torch.testing.assert_close(column, expected[0])
    channels_first = losses.sparse_categorical_crossentropy(
        labels, logits.permute(0, 2, 1), from_logits=True, axis=1
    )
    torch.testing.assert_close(channels_first, expected)
    probabilities = losses.sparse_categorical_crossentropy(labels, logits.softmax(-1).permute(0, 2, 1), axis=1)
    torch.testing.assert_close(probabilities, expected)


def test_ignore_class_averages_over_the_other_labels() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, -1, 3, 2, -1, 1])
    per_sample = losses.sparse_categorical_crossentropy(labels, logits, from_logits=True, ignore_class=-1)
    assert per_sample[1] == 0 and per_sample[4] == 0
    assert per_sample._keras_mask.tolist() == [True, False, True, True, False, True]
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    torch.testing.assert_close(loss(labels, logits), F.cross_entropy(logits, labels, ignore_index=-1))
    weights = torch.arange(1.0, 7.0)
    expected = (per_sample * weights).sum() / 4
    torch.testing.assert_close(loss(labels, logits, sample_weight=weights), expected)


@pytest.mark.parametrize(
    "loss",
    [
        losses.BinaryCrossentropy(),
        losses.BinaryFocalCrossentropy(apply_class_balancing=True),
        losses.CategoricalCrossentropy(),
        losses.CategoricalFocalCrossentropy(),
        losses.KLDivergence(),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_probabilities_of_exactly_zero_and_one_stay_finite(loss) -> None:
    y_true = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y_pred = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    value = loss(y_true, y_pred)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(y_pred.grad).all()
    # A confident wrong answer costs about -log(epsilon) = 16.1 per wrong class, not inf.
    assert value < 20


def test_sparse_probabilities_of_zero_stay_finite() -> None:
    y_pred = torch.tensor([[0.0, 1.0, 0.0]], requires_grad=True)
    value = losses.SparseCategoricalCrossentropy()(torch.tensor([0]), y_pred)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(y_pred.grad).all()


def test_all_easy_focal_loss_is_near_zero() -> None:
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    confident = torch.tensor([[12.0, -12.0, 15.0, -15.0]])
    focal = losses.BinaryFocalCrossentropy(from_logits=True)(labels, confident)
    bce = losses.BinaryCrossentropy(from_logits=True)(labels, confident)
    assert focal < 1e-10 and focal < bce * 1e-4
    one_hot = torch.tensor([[0.0, 0.0, 1.0]])
    easy = losses.CategoricalFocalCrossentropy(from_logits=True)(one_hot, torch.tensor([[-10.0, -10.0, 10.0]]))
    assert easy < 1e-15


def test_focal_without_focusing_is_the_plain_crossentropy() -> None:
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 2, (5, 3), generator=g).float()
    logits = torch.randn(5, 3, generator=g)
    torch.testing.assert_close(
        losses.binary_focal_crossentropy(labels, logits, gamma=0.0, from_logits=True),
        losses.binary_crossentropy(labels, logits, from_logits=True),
    )
    one_hot = F.one_hot(torch.randint(0, 3, (5,), generator=g), 3).float()
    torch.testing.assert_close(
        losses.categorical_focal_crossentropy(one_hot, logits, alpha=1.0, gamma=0.0, from_logits=True),
        losses.categorical_crossentropy(one_hot, logits, from_logits=True),
    )


def test_per_class_alpha_weights_each_class() -> None:
    one_hot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    probabilities = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    weighted = losses.categorical_focal_crossentropy(one_hot, probabilities, alpha=[2.0, 1.0, 0.5])
    plain = losses.categorical_focal_crossentropy(one_hot, probabilities, alpha=1.0)
    torch.testing.assert_close(weighted, plain * torch.tensor([2.0, 0.5]))
    with pytest.raises(ValueError, match="one weight per class: 3 .* Received 2 weights"):
        losses.categorical_focal_crossentropy(one_hot, probabilities, alpha=[1.0, 2.0])
    loss = losses.CategoricalFocalCrossentropy(alpha=(2.0, 1.0, 0.5))
    assert losses.CategoricalFocalCrossentropy.from_config(loss.get_config()).alpha == [2.0, 1.0, 0.5]


@pytest.mark.parametrize(
    "loss, activation",
    [
        (losses.BinaryCrossentropy(label_smoothing=0.1), torch.sigmoid),
        (losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=1.5), torch.sigmoid),
        (losses.CategoricalCrossentropy(label_smoothing=0.2), lambda z: torch.softmax(z, -1)),
        (losses.CategoricalFocalCrossentropy(alpha=0.5), lambda z: torch.softmax(z, -1)),
        (losses.SparseCategoricalCrossentropy(), lambda z: torch.softmax(z, -1)),
    ],
    ids=lambda x: type(x).__name__,
)
def test_logits_equivalent_matches_the_activation_then_the_loss(loss, activation) -> None:
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(6, 3, generator=g, dtype=torch.float64)
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        y_true = torch.randint(0, 3, (6,), generator=g)
    elif isinstance(loss, (losses.BinaryCrossentropy, losses.BinaryFocalCrossentropy)):
        y_true = torch.randint(0, 2, (6, 3), generator=g).double()
    else:
        y_true = F.one_hot(torch.randint(0, 3, (6,), generator=g), 3).double()
    twin = losses.logits_equivalent(loss, losses.fusable_activation(loss))
    assert type(twin) is type(loss) and twin.from_logits
    assert {**loss.get_config(), "from_logits": True} == twin.get_config()
    torch.testing.assert_close(twin(y_true, logits), loss(y_true, activation(logits)))


def test_logits_equivalent_declines_what_it_cannot_fuse() -> None:
    assert losses.logits_equivalent(losses.MeanSquaredError()) is None
    assert losses.logits_equivalent(losses.BinaryCrossentropy(from_logits=True)) is None
    assert losses.logits_equivalent(losses.CategoricalCrossentropy(), "sigmoid") is None
    assert losses.logits_equivalent(losses.BinaryCrossentropy(), "softmax") is None
    assert losses.fusable_activation(losses.Poisson()) is None


def test_out_of_range_labels_are_named_on_the_first_call() -> None:
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(DataError, match=r"received label 7, outside the valid range \[0, 4\] for y_pred with 5 classes \(1 bad labels"):
        loss(torch.tensor([0, 7, 3]), torch.zeros(3, 5))
    with pytest.raises(DataError, match=r"received label -2, outside the valid range \[0, 4\] or ignore_class=-1"):
        losses.SparseCategoricalCrossentropy(ignore_class=-1)(torch.tensor([-1, -2]), torch.full((2, 5), 0.2))
    with pytest.raises(DataError, match=r"label 3, outside the valid range \[0, 2\]"):
        losses.sparse_categorical_crossentropy(torch.tensor([3]), torch.zeros(1, 3), validate=True)
    with pytest.raises(DataError, match="needs integer class labels; y_true holds non-integer values"):
        losses.SparseCategoricalCrossentropy()(torch.tensor([0.5, 1.0]), torch.full((2, 3), 1 / 3))


def test_sparse_shape_errors_name_both_shapes() -> None:
    with pytest.raises(ShapeError, match=r"labels of shape \(4,\) .* y_pred.shape=\(4, 3\)\. Received: y_true.shape=\(4, 3\)"):
        losses.sparse_categorical_crossentropy(torch.zeros(4, 3), torch.zeros(4, 3))


def test_logits_passed_as_probabilities_are_caught() -> None:
    with pytest.raises(DataError, match=r"from_logits=False, so y_pred must hold probabilities \(\[0, 1\]\); received values from -2 to 3"):
        losses.BinaryCrossentropy()(torch.zeros(2), torch.tensor([-2.0, 3.0]))
    with pytest.raises(DataError, match=r"must hold probabilities \(>= 0\)"):
        losses.CategoricalCrossentropy()(torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 2.0]]))
    # Unnormalized non-negative scores are allowed: Keras renormalizes them.
    scores = losses.CategoricalCrossentropy()(torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 1.0]]))
    assert scores.item() == pytest.approx(-torch.log(torch.tensor(0.75)).item())


def test_single_class_categorical_warns() -> None:
    with pytest.warns(UserWarning, match=r"expected y_pred.shape to be \(batch_size, num_classes\) with num_classes > 1"):
        losses.categorical_crossentropy(torch.ones(3, 1), torch.ones(3, 1))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"`label_smoothing` must be a float in \[0, 1\]\. Received: label_smoothing=1.5"):
        losses.BinaryCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"`gamma` must be a number >= 0\. Received: gamma=-1"):
        losses.BinaryFocalCrossentropy(gamma=-1)
    with pytest.raises(ValueError, match=r"`ignore_class` must be an integer or None\. Received: ignore_class='void'"):
        losses.SparseCategoricalCrossentropy(ignore_class="void")
    with pytest.raises(ValueError, match=r"`axis` must be an integer\. Received: axis=True"):
        losses.categorical_crossentropy(ONE_HOT, PROBABILITIES, axis=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA to detect host syncs")
def test_no_host_sync_after_the_first_call() -> None:
    device = torch.device("cuda")
    logits = torch.randn(8, 5, device=device)
    labels = torch.randint(0, 5, (8,), device=device)
    weights = torch.rand(8, device=device)
    table = [
        (losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0), labels, logits),
        (losses.CategoricalCrossentropy(label_smoothing=0.1), F.one_hot(labels, 5).float(), logits.softmax(-1)),
        (losses.BinaryFocalCrossentropy(from_logits=True), (logits > 0).float(), logits),
        (losses.Hinge(), (logits > 0).float(), logits),
        (losses.MeanSquaredError(reduction="mean_with_sample_weight"), logits, logits * 2),
    ]
    for loss, y_true, y_pred in table:
        loss(y_true, y_pred, sample_weight=weights)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for loss, y_true, y_pred in table:
            loss(y_true, y_pred, sample_weight=weights)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_kl_divergence_of_near_equal_distributions_clips_at_keras_epsilon() -> None:
    """Losses of ~1e-6 checked relatively: here Keras's clipping of zeros to epsilon=1e-7 is a
    fifth of the value, so a changed epsilon (or a dropped clip) shows."""
    y_true = np.eye(3)[[0, 1, 2, 0]]
    off = np.random.default_rng(0).uniform(1e-6, 3e-6, (4, 3))
    y_pred = np.where(y_true == 1, 1.0, off)
    y_pred /= y_pred.sum(axis=1, keepdims=True)
    t, p = np.clip(y_true, 1e-7, 1.0), np.clip(y_pred, 1e-7, 1.0)
    expected = (t * np.log(t / p)).sum(axis=1)
    got = losses.kl_divergence(torch.as_tensor(y_true), torch.as_tensor(y_pred))
    assert got.dtype == torch.float64
    _close(got, expected, rtol=1e-9)
    assert np.all(expected < 1e-5)


def test_sparse_crossentropy_on_logits_reduces_in_one_kernel_to_the_batch_mean():
    # An unweighted, unmasked (batch, classes) batch takes torch's own mean reduction; the
    # value and the gradient are still -mean(log softmax(z)[label]) (numpy, float64).
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 10)) * 3
    labels = rng.integers(0, 10, 64)
    z = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
    seen = []

    class RecordOps(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=True)
    loss_fn(torch.tensor(labels), z)  # the first call checks the labels
    with RecordOps():
        loss = loss_fn(torch.tensor(labels), z)
    assert torch.ops.aten.mean.default not in seen
    log_p = logits - logits.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    np.testing.assert_allclose(loss.item(), -log_p[np.arange(64), labels].mean(), rtol=1e-6)
    loss.backward()
    expected = np.exp(log_p)
    expected[np.arange(64), labels] -= 1
    np.testing.assert_allclose(z.grad.numpy(), expected / 64, rtol=1e-5, atol=1e-7)
    # Weighted, masked-by-ignore_class and probability inputs keep the general path.
    weights = rng.random(64)
    weighted = loss_fn(torch.tensor(labels), z, sample_weight=torch.tensor(weights))
    np.testing.assert_allclose(weighted.item(),
                               (-log_p[np.arange(64), labels] * weights).mean(), rtol=1e-5)
    ignoring = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    kept = labels != 0
    np.testing.assert_allclose(ignoring(torch.tensor(labels), z).item(),
                               -log_p[np.arange(64), labels][kept].mean(), rtol=1e-5)
