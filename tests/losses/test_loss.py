"""The `Loss` base and the whole table: values, reductions, weights, masks, config, names."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

import lamina.losses as losses
from lamina.errors import DataError, ShapeError, UnknownNameError
from lamina.losses.loss import reduce_weighted_values, set_mask, squeeze_or_expand_to_same_rank

from .cases import CASES, LossCase, case_inputs

ids = [case.id for case in CASES]


def _as_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy()


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_values_match_the_formula(case: LossCase) -> None:
    y_true, y_pred = case_inputs(case)
    loss = case.cls(**case.kwargs, reduction="none")
    got = loss(y_true, y_pred)
    want = case.reference(_as_numpy(y_true), _as_numpy(y_pred))
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(_as_numpy(got), want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_reductions(case: LossCase) -> None:
    y_true, y_pred = case_inputs(case)
    per_sample = case.cls(**case.kwargs, reduction="none")(y_true, y_pred)
    count = max(per_sample.numel(), 1)
    for reduction, expected in [
        ("sum", per_sample.sum()),
        ("sum_over_batch_size", per_sample.sum() / count),
        ("mean", per_sample.sum() / count),
        (None, per_sample),
    ]:
        got = case.cls(**case.kwargs, reduction=reduction)(y_true, y_pred)
        torch.testing.assert_close(got, expected)
    assert case.cls(**case.kwargs)(y_true, y_pred).dim() == 0


@pytest.mark.parametrize("case", [c for c in CASES if not c.scalar], ids=[c.id for c in CASES if not c.scalar])
def test_sample_weight(case: LossCase) -> None:
    y_true, y_pred = case_inputs(case)
    per_sample = case.cls(**case.kwargs, reduction="none")(y_true, y_pred)
    weights = torch.arange(1.0, per_sample.shape[0] + 1, dtype=torch.float64)
    weighted = per_sample * weights.reshape(-1, *([1] * (per_sample.dim() - 1)))
    got = case.cls(**case.kwargs)(y_true, y_pred, sample_weight=weights)
    torch.testing.assert_close(got, weighted.sum() / per_sample.numel())
    got = case.cls(**case.kwargs, reduction="mean_with_sample_weight")(y_true, y_pred, weights)
    torch.testing.assert_close(got, weighted.sum() / weights.expand_as(per_sample).sum())
    column = case.cls(**case.kwargs)(y_true, y_pred, sample_weight=weights[:, None])
    torch.testing.assert_close(column, weighted.sum() / per_sample.numel())


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_gradcheck_float64(case: LossCase) -> None:
    y_true, y_pred = case_inputs(case, seed=1)
    y_pred = y_pred.clone().requires_grad_(True)
    loss = case.cls(**case.kwargs)
    assert torch.autograd.gradcheck(lambda p: loss(y_true, p), (y_pred,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_config_round_trip(case: LossCase) -> None:
    loss = case.cls(**case.kwargs, name="custom", reduction="sum")
    config = loss.get_config()
    assert set(config) == set(inspect.signature(case.cls.__init__).parameters) - {"self"}
    clone = case.cls.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    y_true, y_pred = case_inputs(case)
    torch.testing.assert_close(clone(y_true, y_pred), loss(y_true, y_pred))
    rebuilt = losses.deserialize(json.loads(json.dumps(losses.serialize(loss))))
    assert type(rebuilt) is case.cls and rebuilt.get_config() == config


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_names_give_the_class(case: LossCase) -> None:
    assert isinstance(losses.get(case.cls.__name__), case.cls)
    for name in case.names:
        assert type(losses.get(name)) is case.cls, name


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_float32_and_half_inputs(case: LossCase) -> None:
    y_true, y_pred = case_inputs(case)
    y_true32 = y_true if not y_true.is_floating_point() else y_true.float()
    single = case.cls(**case.kwargs)(y_true32, y_pred.float())
    assert single.dtype == torch.float32
    # Half predictions are computed in float32, as Keras computes losses in floatx.
    half = case.cls(**case.kwargs)(y_true32, y_pred.half())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, single, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("case", [c for c in CASES if c.cls is not losses.SparseCategoricalCrossentropy and not c.cls.__name__.startswith("Triplet")], ids=lambda c: c.id)
def test_nan_labels_are_caught_on_the_first_call(case: LossCase) -> None:
    y_true, y_pred = case_inputs(case)
    y_true = y_true.clone()
    y_true.view(-1)[1] = float("nan")
    with pytest.raises(DataError, match=r"NaN values in `y_true`: 1 of \d+ entries"):
        case.cls(**case.kwargs)(y_true, y_pred)


def test_nan_predictions_are_caught_on_the_first_call_only() -> None:
    loss = losses.MeanSquaredError()
    y_pred = torch.tensor([[0.5, float("nan")]])
    with pytest.raises(DataError, match="NaN values in `y_pred`.*Check the model inputs"):
        loss(torch.zeros(1, 2), y_pred)
    # The check costs a host sync, so it runs until one call passes it; later steps skip it.
    assert loss(torch.zeros(1, 2), torch.ones(1, 2)) == 1.0
    assert torch.isnan(loss(torch.zeros(1, 2), y_pred))


def test_sum_over_batch_size_divides_by_elements_of_multi_axis_losses() -> None:
    # (batch, time) per-sample values: Keras divides by batch * time.
    values = torch.arange(6.0).reshape(2, 3)
    assert reduce_weighted_values(values) == values.sum() / 6
    weights = torch.tensor([1.0, 0.0])
    # One weight per sample covers every time step.
    assert reduce_weighted_values(values, weights) == values[0].sum() / 6


def test_mask_averages_over_the_unmasked_entries() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert reduce_weighted_values(values, mask=mask) == (1 + 2 + 4) / 3
    assert reduce_weighted_values(values, mask=mask, reduction="sum") == 7
    weights = torch.tensor([2.0, 1.0])
    assert reduce_weighted_values(values, weights, mask) == (2 * 1 + 2 * 2 + 4) / 3
    assert reduce_weighted_values(values, mask=torch.zeros(2, 3, dtype=torch.bool)) == 0


def test_mask_from_y_pred_and_from_keyword() -> None:
    y_true = torch.zeros(2, 3, 1)
    y_pred = torch.tensor([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    expected = (1 + 4 + 16) / 3
    loss = losses.MeanSquaredError()
    assert loss(y_true, y_pred, mask=mask) == pytest.approx(expected)
    assert loss(y_true, set_mask(y_pred.clone(), mask)) == pytest.approx(expected)


def test_mean_with_sample_weight_without_weights_is_the_mean() -> None:
    loss = losses.MeanAbsoluteError(reduction="mean_with_sample_weight")
    assert loss(torch.zeros(2, 2), torch.tensor([[1.0, 3.0], [2.0, 2.0]])) == 2.0
    zero_weights = loss(torch.zeros(2, 2), torch.ones(2, 2), sample_weight=torch.zeros(2))
    assert zero_weights == 0


def test_rank_one_labels_against_a_column_of_predictions() -> None:
    y_true = torch.tensor([0.0, 1.0, 2.0])
    y_pred = torch.tensor([[0.5], [1.0], [4.0]])
    got = losses.MeanSquaredError(reduction="none")(y_true, y_pred)
    torch.testing.assert_close(got, torch.tensor([0.25, 0.0, 4.0]))
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(2, 5), torch.zeros(2, 5, 1))
    assert a.shape == b.shape == (2, 5)


def test_mismatched_shapes_name_both() -> None:
    with pytest.raises(ShapeError, match=r"y_true.shape=\(4, 1\), y_pred.shape=\(4, 3\)"):
        losses.mean_squared_error(torch.zeros(4, 1), torch.zeros(4, 3))
    with pytest.raises(ShapeError, match=r"sample_weight` of shape \(3,\) cannot be broadcast"):
        losses.MeanSquaredError()(torch.zeros(4, 2), torch.zeros(4, 2), sample_weight=torch.ones(3))


def test_bad_reduction_and_dtype() -> None:
    with pytest.raises(ValueError, match="Invalid value for argument `reduction`.*Received: reduction='avg'"):
        losses.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError, match="Unknown dtype 'float33'"):
        losses.MeanSquaredError(dtype="float33")
    double = losses.MeanSquaredError(dtype="float64")(torch.zeros(2), torch.ones(2, dtype=torch.float32))
    assert double.dtype == torch.float64


def test_get_accepts_every_kind_of_identifier() -> None:
    instance = losses.Huber(delta=2.0)
    assert losses.get(instance) is instance
    assert losses.get(None) is None
    assert isinstance(losses.get(losses.Poisson), losses.Poisson)
    from_dict = losses.get({"class_name": "Huber", "config": {"delta": 3.0}})
    assert isinstance(from_dict, losses.Huber) and from_dict.delta == 3.0
    assert isinstance(losses.get(losses.mean_squared_error), losses.MeanSquaredError)

    def l1(y_true, y_pred):
        return (y_true - y_pred).abs().mean(dim=-1)

    wrapped = losses.get(l1)
    assert isinstance(wrapped, losses.LossFunctionWrapper) and wrapped.name == "l1"
    assert wrapped(torch.zeros(2, 2), torch.full((2, 2), 3.0)) == 3.0


def test_get_swaps_the_arguments_of_torch_criteria() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    labels = torch.tensor([0, 2])
    loss = losses.get(torch.nn.CrossEntropyLoss())
    assert isinstance(loss, losses.TorchCriterion)
    torch.testing.assert_close(loss(labels, logits), torch.nn.functional.cross_entropy(logits, labels))


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown loss name 'msee'\. Did you mean 'mse'.*Valid names are: .*binary_crossentropy"):
        losses.get("msee")
    with pytest.raises(TypeError, match="Could not interpret loss identifier 3"):
        losses.get(3)


def test_function_serialization_and_wrapper_round_trip() -> None:
    assert losses.serialize(losses.huber) == {"class_name": "function", "kind": "loss", "config": "huber"}
    assert losses.deserialize(losses.serialize(losses.huber)) is losses.huber
    assert losses.deserialize("mse") is losses.mean_squared_error
    wrapper = losses.LossFunctionWrapper(losses.huber, delta=0.5)
    config = json.loads(json.dumps(losses.serialize(wrapper)))
    assert config["config"]["fn"] == "huber" and config["config"]["delta"] == 0.5
    rebuilt = losses.deserialize(config)
    y_true, y_pred = torch.zeros(2, 3), torch.linspace(-2, 2, 6).reshape(2, 3)
    torch.testing.assert_close(rebuilt(y_true, y_pred), losses.Huber(0.5)(y_true, y_pred))
    with pytest.raises(TypeError, match="neither a `Loss` nor a registered loss function"):
        losses.serialize(lambda t, p: t)
    with pytest.raises(TypeError, match="`fn` must be a callable"):
        losses.LossFunctionWrapper(3)


def test_custom_subclass_only_needs_call() -> None:
    class Cubic(losses.Loss):
        def call(self, y_true, y_pred):
            return (y_pred - y_true).abs().pow(3).mean(dim=-1)

    loss = Cubic()
    assert loss.name == "cubic"
    assert loss(torch.zeros(2, 2), torch.full((2, 2), 2.0)) == 8.0
    with pytest.raises(NotImplementedError, match="must implement `call"):
        losses.Loss()(torch.zeros(1), torch.zeros(1))
