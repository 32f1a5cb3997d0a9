"""`lamina.metrics.get`, `resolve`, `serialize` and `deserialize`."""

from __future__ import annotations

import re

import pytest
import torch

import lamina.losses as losses
import lamina.metrics as metrics
from lamina.errors import UnknownNameError

NAMES = [
    ("acc", metrics.Accuracy),
    ("accuracy", metrics.Accuracy),
    ("binary_accuracy", metrics.BinaryAccuracy),
    ("BinaryAccuracy", metrics.BinaryAccuracy),
    ("sparse_top_k_categorical_accuracy", metrics.SparseTopKCategoricalAccuracy),
    ("mse", metrics.MeanSquaredError),
    ("MSE", metrics.MeanSquaredError),
    ("mae", metrics.MeanAbsoluteError),
    ("rmse", metrics.RootMeanSquaredError),
    ("mape", metrics.MeanAbsolutePercentageError),
    ("msle", metrics.MeanSquaredLogarithmicError),
    ("logcosh", metrics.LogCoshError),
    ("auc", metrics.AUC),
    ("AUC", metrics.AUC),
    ("precision", metrics.Precision),
    ("recall", metrics.Recall),
    ("true_positives", metrics.TruePositives),
    ("f1_score", metrics.F1Score),
    ("fbeta_score", metrics.FBetaScore),
    ("bce", metrics.BinaryCrossentropy),
    ("sparse_categorical_crossentropy", metrics.SparseCategoricalCrossentropy),
    ("kld", metrics.KLDivergence),
    ("categorical_hinge", metrics.CategoricalHinge),
    ("mean", metrics.Mean),
]


@pytest.mark.parametrize("name, cls", NAMES)
def test_get_by_name(name, cls) -> None:
    assert type(metrics.get(name)) is cls


def test_get_any_loss_name_streams_that_loss() -> None:
    metric = metrics.get("huber")
    assert isinstance(metric, metrics.MeanMetricWrapper) and metric.name == "huber"
    y_true, y_pred = torch.zeros(2, 2), torch.tensor([[0.5, 3.0], [0.0, 0.0]])
    metric.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(losses.huber(y_true, y_pred).mean().item())


def test_get_passes_metrics_through_and_builds_classes_and_configs() -> None:
    metric = metrics.AUC()
    assert metrics.get(metric) is metric
    assert metrics.get(None) is None
    assert type(metrics.get(metrics.Recall)) is metrics.Recall
    pr_auc = metrics.get({"class_name": "AUC", "config": {"curve": "PR"}})
    assert isinstance(pr_auc, metrics.AUC) and pr_auc.curve == "PR"
    keras_style = {"module": "keras.metrics", "class_name": "Precision",
                   "config": {"thresholds": 0.3}, "registered_name": None}
    assert metrics.get(keras_style).thresholds == [0.3]


def uneven_batches():
    generator = torch.Generator().manual_seed(0)
    y_true = torch.randn(10, 3, generator=generator)
    y_pred = torch.randn(10, 3, generator=generator)
    return [(y_true[:7], y_pred[:7]), (y_true[7:], y_pred[7:])]


@pytest.mark.parametrize("identifier", [
    losses.mean_absolute_error,
    losses.MeanAbsoluteError(),
    torch.nn.L1Loss(reduction="none"),
], ids=["function", "Loss", "torch_criterion"])
def test_get_wraps_callables_as_per_sample_means(identifier) -> None:
    metric, reference = metrics.get(identifier), metrics.MeanAbsoluteError()
    assert isinstance(metric, metrics.MeanMetricWrapper)
    for y_true, y_pred in uneven_batches():
        metric.update_state(y_true, y_pred)
        reference.update_state(y_true, y_pred)
    torch.testing.assert_close(metric.result(), reference.result())


def test_loss_metric_config_round_trips_through_the_loss_config() -> None:
    metric = metrics.get(losses.Huber(delta=0.5))
    config = metric.get_config()
    assert config["fn"]["class_name"] == "Huber" and config["fn"]["config"]["delta"] == 0.5
    restored = metrics.deserialize(metrics.serialize(metric))
    y_true, y_pred = torch.zeros(3, 2), torch.tensor([[0.2, 2.0], [1.0, 0.0], [0.0, 0.0]])
    for m in (metric, restored):
        m.update_state(y_true, y_pred)
    torch.testing.assert_close(restored.result(), metric.result())
    assert restored.name == metric.name == "huber_loss"


def test_function_metric_is_named_after_the_function() -> None:
    def squared_error(y_true, y_pred):
        return (y_true - y_pred) ** 2

    assert metrics.get(squared_error).name == "squared_error"


def test_mean_metric_wrapper_takes_a_registered_function_name() -> None:
    metric = metrics.MeanMetricWrapper("binary_accuracy", threshold=0.7)
    metric.update_state([[1.0], [1.0]], [[0.8], [0.6]])
    assert float(metric.result()) == 0.5
    assert metric.get_config()["fn"] == "binary_accuracy"


RESOLVE = [
    # (loss, y_true shape, y_pred shape, expected class, from_logits)
    ("binary_crossentropy", None, None, metrics.BinaryAccuracy, False),
    ("bce", (8, 5), (8, 5), metrics.BinaryAccuracy, False),  # multi-label: the loss decides
    (losses.BinaryCrossentropy(from_logits=True), (8,), (8, 1), metrics.BinaryAccuracy, True),
    (losses.LossFunctionWrapper(losses.binary_crossentropy, from_logits=True), None, None,
     metrics.BinaryAccuracy, True),
    (None, (8,), (8, 1), metrics.BinaryAccuracy, False),
    (None, (8,), (8,), metrics.BinaryAccuracy, False),
    (None, (8,), (8, 10), metrics.SparseCategoricalAccuracy, False),
    (None, (8, 1), (8, 10), metrics.SparseCategoricalAccuracy, False),
    (None, (8, 10), (8, 10), metrics.CategoricalAccuracy, False),
    ("mse", (8, 3), (8, 3), metrics.CategoricalAccuracy, False),  # Keras: shapes decide
    ("sparse_categorical_crossentropy", None, None, metrics.SparseCategoricalAccuracy, False),
    (losses.sparse_categorical_crossentropy, None, None, metrics.SparseCategoricalAccuracy,
     False),
    (losses.CategoricalCrossentropy(), None, None, metrics.CategoricalAccuracy, False),
    ("categorical_crossentropy", (8,), (8, 3), metrics.SparseCategoricalAccuracy, False),
]


@pytest.mark.parametrize("name", ["accuracy", "acc"])
@pytest.mark.parametrize("loss, true_shape, pred_shape, cls, from_logits", RESOLVE)
def test_resolve_accuracy(name, loss, true_shape, pred_shape, cls, from_logits) -> None:
    metric = metrics.resolve(name, loss=loss, y_true=true_shape, y_pred=pred_shape)
    assert type(metric) is cls and metric.name == name
    if cls is metrics.BinaryAccuracy:
        assert metric.get_config()["from_logits"] is from_logits


def test_resolve_reads_shapes_from_tensors() -> None:
    metric = metrics.resolve("accuracy", y_true=torch.zeros(4), y_pred=torch.zeros(4, 3))
    assert type(metric) is metrics.SparseCategoricalAccuracy


def test_resolve_names_string_metrics_like_keras() -> None:
    assert metrics.resolve("mae").name == "mae"
    assert metrics.resolve(metrics.AUC()).name == "auc"
    assert metrics.resolve(losses.mean_absolute_error).name == "mean_absolute_error"


def test_directions() -> None:
    assert metrics.Accuracy._direction == "up" and metrics.AUC._direction == "up"
    assert metrics.MeanSquaredError._direction == "down"


BAD_INPUTS = [
    (lambda: metrics.get("acuracy"), UnknownNameError,
     "Unknown metric name 'acuracy'. Did you mean 'accuracy'"),
    (lambda: metrics.get("nope"), UnknownNameError, "Valid names are: "),
    (lambda: metrics.get(3), TypeError, "Could not interpret metric identifier 3"),
    (lambda: metrics.get(losses.Huber), TypeError, "Could not interpret metric identifier"),
    (lambda: metrics.get("confusion_matrix"), TypeError,
     "The metric 'confusion_matrix' (ConfusionMatrix) needs arguments: num_classes"),
    (lambda: metrics.resolve("accuracy"), ValueError,
     "Cannot tell which accuracy 'accuracy' means"),
    (lambda: metrics.resolve(None), ValueError, "`resolve` needs a metric identifier"),
    (lambda: metrics.serialize(losses.mse), TypeError, "`serialize` takes a Metric"),
    (lambda: metrics.deserialize("auc"), ValueError,
     "A serialized metric is a dict with 'class_name' and 'config'. Received: 'auc'"),
    (lambda: metrics.deserialize({"class_name": "NoSuchMetric"}), UnknownNameError,
     "Unknown metric name 'NoSuchMetric'"),
    (lambda: metrics.MeanMetricWrapper(3), TypeError, "`fn` must be a callable"),
    (lambda: metrics.MeanMetricWrapper("no_such_function"), UnknownNameError,
     "Unknown metric function name 'no_such_function'"),
    (lambda: metrics.MeanMetricWrapper(lambda t, p: t - p).get_config(), ValueError,
     "is not registered, and Lamina never saves code"),
]


@pytest.mark.parametrize("build, error, message", BAD_INPUTS)
def test_bad_input_messages(build, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build()


def test_unknown_name_lists_metric_and_loss_names() -> None:
    with pytest.raises(UnknownNameError) as caught:
        metrics.get("nope")
    listed = str(caught.value).split("Valid names are: ")[1]
    assert "auc" in listed and "huber" in listed and "rmse" in listed
