"""Generic tests over the table of metrics in `cases.py`: every row streams uneven weighted
batches and must match its reference; reset, config round trip, no host sync, no autograd."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

import lamina.metrics as metrics
from lamina import _registry
from .cases import BATCHES, CASES, NUM_SAMPLES, Case

IDS = [case.id for case in CASES]


def as_tensor(array: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    if array.dtype.kind in "iu":
        return torch.as_tensor(array)
    return torch.tensor(array, dtype=torch.float32, requires_grad=requires_grad)


def data(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true, y_pred = case.data(rng)
    weights = rng.uniform(0, 2, NUM_SAMPLES)
    weights[::7] = 0.0
    return y_true, y_pred, weights


def stream(
    case: Case,
    metric: metrics.Metric,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    weights: np.ndarray | None,
    requires_grad: bool = False,
) -> torch.Tensor:
    for batch in BATCHES:
        sample_weight = None if weights is None else as_tensor(weights[batch])
        if case.values_only:
            metric.update_state(as_tensor(y_true[batch], requires_grad), sample_weight)
        else:
            metric.update_state(
                as_tensor(y_true[batch]), as_tensor(y_pred[batch], requires_grad), sample_weight
            )
    return metric.result()


def reference(case: Case, y_true, y_pred, weights) -> np.ndarray:
    # The reference sees exactly the float32 values the metric sees.
    y_pred = y_pred if y_pred.dtype.kind in "iu" else y_pred.astype(np.float32).astype(np.float64)
    y_true = y_true if y_true.dtype.kind in "iu" else y_true.astype(np.float32).astype(np.float64)
    weights = weights.astype(np.float32).astype(np.float64)
    return np.asarray(case.reference(y_true, y_pred, weights), dtype=np.float64)


@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "unweighted"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_streamed_result_matches_reference(case: Case, weighted: bool) -> None:
    y_true, y_pred, weights = data(case)
    result = stream(case, case.make(), y_true, y_pred, weights if weighted else None)
    expected = reference(case, y_true, y_pred, weights if weighted else np.ones(NUM_SAMPLES))
    assert result.dtype == torch.float32
    assert tuple(result.shape) == expected.shape
    np.testing.assert_allclose(result.numpy(), expected, rtol=case.tol, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_call_updates_then_returns_the_result(case: Case) -> None:
    y_true, y_pred, weights = data(case)
    metric = case.make()
    stream(case, metric, y_true, y_pred, weights)
    called = case.make()
    for batch in BATCHES:
        arguments = [as_tensor(y_true[batch])]
        if not case.values_only:
            arguments.append(as_tensor(y_pred[batch]))
        value = called(*arguments, sample_weight=as_tensor(weights[batch]))
    torch.testing.assert_close(value, metric.result())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reset_state_forgets_everything(case: Case) -> None:
    y_true, y_pred, weights = data(case)
    metric = case.make()
    first = stream(case, metric, y_true, y_pred, weights)
    metric.reset_state()
    assert all(bool((v == 0).all()) for v in metric.variables)
    other_true, other_pred, other_weights = data(case, seed=1)
    stream(case, metric, other_true, other_pred, other_weights)
    metric.reset_state()
    torch.testing.assert_close(stream(case, metric, y_true, y_pred, weights), first)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_round_trips(case: Case) -> None:
    metric = case.make()
    config = metric.get_config()
    json.dumps(config)
    parameters = inspect.signature(type(metric).__init__).parameters
    named = {name for name, p in parameters.items() if name != "self" and p.kind != p.VAR_KEYWORD}
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    assert named <= set(config) if takes_kwargs else named == set(config)
    clone = type(metric).from_config(config)
    assert clone.get_config() == config
    restored = metrics.deserialize(json.loads(json.dumps(metrics.serialize(metric))))
    assert type(restored) is type(metric) and restored.get_config() == config
    y_true, y_pred, weights = data(case)
    torch.testing.assert_close(
        stream(case, restored, y_true, y_pred, weights),
        stream(case, metric, y_true, y_pred, weights),
    )


def _forbid(*args, **kwargs):
    raise AssertionError("update_state synchronized with the host")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_update_state_does_not_sync(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    y_true, y_pred, weights = data(case)
    metric = case.make()
    for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__",
                 "__index__"):
        monkeypatch.setattr(torch.Tensor, name, _forbid)
    stream(case, metric, y_true, y_pred, weights)
    monkeypatch.undo()
    y_true2, y_pred2, weights2 = data(case)
    torch.testing.assert_close(metric.result(), stream(case, case.make(), y_true2, y_pred2,
                                                       weights2))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_never_joins_the_autograd_graph(case: Case) -> None:
    y_true, y_pred, weights = data(case)
    if y_pred.dtype.kind in "iu":
        pytest.skip("integer predictions cannot require grad")
    metric = case.make()
    result = stream(case, metric, y_true, y_pred, weights, requires_grad=True)
    assert not result.requires_grad
    assert not any(v.requires_grad for v in metric.variables)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_first_update_moves_the_state_to_the_device_of_y_pred(case: Case) -> None:
    y_true, y_pred, weights = data(case)
    metric = case.make()
    batch = BATCHES[0]
    arguments = [as_tensor(y_true[batch]).to("meta")]
    if not case.values_only:
        arguments.append(as_tensor(y_pred[batch]).to("meta"))
    metric.update_state(*arguments, sample_weight=as_tensor(weights[batch]).to("meta"))
    assert metric.device == torch.device("meta")
    assert metric.variables and all(v.device.type == "meta" for v in metric.variables)
    assert metric.result().device.type == "meta"


def test_every_registered_metric_class_has_a_row() -> None:
    covered = {type(case.make()) for case in CASES}
    registered = {
        obj for name in _registry.names("metric")
        if inspect.isclass(obj := _registry.lookup("metric", name)) and issubclass(
            obj, metrics.Metric)
    }
    assert registered - covered == set()
