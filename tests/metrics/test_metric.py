"""The `Metric` base: variables, initializers, reset, device moves, subclassing, errors."""

from __future__ import annotations

import re

import pytest
import torch

from lamina.errors import ShapeError
from lamina.metrics import Mean, Metric
from lamina.metrics.metric import broadcast_weights, squeeze_or_expand_to_same_rank, to_snake_case


class TruePositiveCount(Metric):
    """A user metric written the Keras way: state in __init__, in-place updates."""

    def __init__(self, name: str | None = None, dtype: str | None = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.true_positives = self.add_weight(name="true_positives", initializer="zeros")
        self.best = self.add_variable("best", shape=(2,), initializer=-1.0)

    def update_state(self, y_true, y_pred, sample_weight=None):
        hits = (torch.as_tensor(y_true) == 1) & (torch.as_tensor(y_pred) > 0.5)
        self.true_positives += hits.sum()
        torch.maximum(self.best, torch.as_tensor(y_pred).max().expand(2), out=self.best)

    def result(self):
        return self.true_positives.clone()


def test_user_subclass_streams_and_resets_to_its_initial_values() -> None:
    metric = TruePositiveCount()
    assert metric.name == "true_positive_count"
    metric.update_state(torch.tensor([1, 1, 0]), torch.tensor([0.9, 0.2, 0.8]))
    metric.update_state(torch.tensor([1]), torch.tensor([0.7]))
    assert float(metric.result()) == 2.0
    assert metric.best.tolist() == pytest.approx([0.9, 0.9])
    metric.reset_state()
    assert float(metric.result()) == 0.0
    assert metric.best.tolist() == [-1.0, -1.0]
    assert [tuple(v.shape) for v in metric.variables] == [(), (2,)]


def test_to_moves_every_variable_and_keeps_attributes_aliased() -> None:
    metric = TruePositiveCount()
    metric.to("meta")
    assert metric.device == torch.device("meta")
    assert metric.true_positives is metric._variables["true_positives"]
    assert metric.best is metric._variables["best"]
    assert all(v.device.type == "meta" for v in metric.variables)


def test_to_moves_nested_metrics() -> None:
    outer = Mean()
    outer.inner = Mean()
    outer.to("meta")
    assert outer.inner.device.type == "meta" and outer.inner.total.device.type == "meta"


def test_user_subclass_state_follows_the_first_y_pred() -> None:
    metric = TruePositiveCount()
    metric.update_state(torch.ones(3, device="meta"), torch.ones(3, device="meta"))
    assert metric.true_positives.device.type == "meta"


def test_state_placed_by_to_is_kept_and_inputs_are_moved_to_it() -> None:
    metric = Mean().to("cpu")
    metric.update_state([1.0, 2.0, 3.0])
    assert float(metric.result()) == 2.0 and metric.device.type == "cpu"


def test_mean_counts_scalar_values_with_number_weights() -> None:
    # The engine's loss tracker: one scalar loss per step, weighted by the batch size.
    metric = Mean()
    metric.update_state(torch.tensor(1.0), sample_weight=30)
    metric.update_state(torch.tensor(4.0), sample_weight=10)
    assert float(metric.result()) == pytest.approx((30 * 1 + 10 * 4) / 40)


def test_mean_of_nothing_is_zero() -> None:
    assert float(Mean().result()) == 0.0


def test_mean_weights_per_element() -> None:
    metric = Mean()
    metric.update_state(torch.tensor([[1.0, 3.0], [5.0, 7.0]]),
                        sample_weight=torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    # Per-sample weighted means: (1*1 + 0*3)/2 and (5 + 7)/2, weights 0.5 and 1.
    assert float(metric.result()) == pytest.approx((0.5 + 6.0) / 1.5)


def test_dtype_float64_state() -> None:
    metric = Mean(dtype="float64")
    metric.update_state([1.0, 2.0])
    assert metric.result().dtype == torch.float64 and metric.dtype == "float64"
    assert metric.get_config() == {"name": "mean", "dtype": "float64"}


def test_callable_initializer() -> None:
    class Filled(Metric):
        def __init__(self):
            super().__init__()
            self.grid = self.add_variable(
                "grid", shape=(2, 2), initializer=lambda shape, dtype: torch.full(shape, 3.0)
            )

    assert Filled().grid.tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_snake_case_names() -> None:
    assert to_snake_case("TopKCategoricalAccuracy") == "top_k_categorical_accuracy"
    assert to_snake_case("AUC") == "auc"
    assert to_snake_case("F1Score") == "f1_score"


def test_squeeze_or_expand_to_same_rank() -> None:
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(4), torch.zeros(4, 1))
    assert a.shape == b.shape == (4, 1)
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(4, 3, 1), torch.zeros(4, 3))
    assert a.shape == b.shape == (4, 3)
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(4), torch.zeros(4, 1), expand_rank_1=False)
    assert a.shape == b.shape == (4,)


def test_broadcast_weights_per_sample() -> None:
    weights = broadcast_weights(Mean(), torch.tensor([1.0, 2.0]), torch.Size([2, 3]))
    assert weights.tolist() == [[1.0] * 3, [2.0] * 3]


class _Named(Metric):
    def __init__(self, variable_name, shape=(), initializer="zeros"):
        super().__init__()
        self.add_variable(variable_name, shape=shape, initializer=initializer)


BAD_INPUTS = [
    (lambda: Mean(name=3), TypeError, "`name` must be a string or None. Received: name=3"),
    (lambda: Mean(dtype="int32"), ValueError,
     "must be a floating point type. Received: dtype='int32'"),
    (lambda: Mean(dtype="float8"), ValueError, "Unknown dtype 'float8'"),
    (lambda: _Named(()), TypeError, "takes the variable's name first"),
    (lambda: _Named("v", shape=(-1,)), ValueError, "Received: shape=(-1,)"),
    (lambda: _Named("v", initializer="glorot"), ValueError, "Unknown initializer 'glorot'"),
    (lambda: _Named("v", initializer=[1]), TypeError, "Received: initializer=[1]"),
    (lambda: Metric().update_state(1, 2), NotImplementedError, "must implement update_state"),
    (lambda: Metric().result(), NotImplementedError, "must implement result"),
    (lambda: Mean().update_state(torch.zeros(3), sample_weight=torch.ones(4)), ShapeError,
     "cannot apply `sample_weight` of shape (4,) to values of shape (3,)"),
]


@pytest.mark.parametrize("build, error, message", BAD_INPUTS)
def test_bad_input_messages(build, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build()


def test_forgetting_super_init_is_explained() -> None:
    class Forgetful(Metric):
        def __init__(self):
            self.total = self.add_variable("total")

    with pytest.raises(RuntimeError, match=re.escape("Forgetful.__init__ must call super()")):
        Forgetful()


def test_duplicate_variable_name() -> None:
    class Twice(Metric):
        def __init__(self):
            super().__init__(name="twice")
            self.add_variable("total")
            self.add_variable("total")

    with pytest.raises(ValueError, match="already has a variable named 'total'"):
        Twice()
