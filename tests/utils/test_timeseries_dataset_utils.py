"""`timeseries_dataset_from_array` against a NumPy reference of Keras's documented windowing.

TensorFlow is not installed, so Keras's own function cannot run here; the reference below is
written from Keras's docstring (window k starts at `start_index + k * sequence_stride`, takes
every `sampling_rate`-th row, must end before `end_index`; its target is `targets[start]`), and
the docstring's and Keras's test suite's worked examples are checked literally.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lamina.utils import timeseries_dataset_from_array


def reference_windows(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                      start_index=None, end_index=None):
    start = start_index or 0
    stop = len(data) if end_index is None else end_index
    span = (sequence_length - 1) * sampling_rate
    windows, labels = [], []
    position = start
    while position + span < stop and (targets is None or position - start < len(targets)):
        windows.append(data[position:position + span + 1:sampling_rate])
        if targets is not None:
            labels.append(targets[position])
        position += sequence_stride
    return np.array(windows), (None if targets is None else np.array(labels))


def collect(dataset, with_targets):
    inputs, labels, sizes = [], [], []
    for batch in dataset:
        x, y = batch if with_targets else (batch, None)
        assert isinstance(x, torch.Tensor)
        sizes.append(len(x))
        inputs.append(x.numpy())
        if with_targets:
            labels.append(y.numpy())
    return np.concatenate(inputs), (np.concatenate(labels) if with_targets else None), sizes


CASES = [
    dict(sequence_length=9, batch_size=5),
    dict(sequence_length=9, batch_size=5, sampling_rate=2),
    dict(sequence_length=9, batch_size=5, sequence_stride=3),
    dict(sequence_length=9, batch_size=5, sequence_stride=3, sampling_rate=2, start_index=10, end_index=90),
    dict(sequence_length=4, batch_size=7, sequence_stride=5, sampling_rate=3, start_index=1),
    dict(sequence_length=1, batch_size=128),
    dict(sequence_length=30, batch_size=4, sampling_rate=3, end_index=95),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: ",".join(f"{k}={v}" for k, v in case.items()))
@pytest.mark.parametrize("with_targets", [True, False])
def test_windows_targets_and_batches_match_the_reference(case, with_targets):
    data = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    targets = np.arange(100) * 10 if with_targets else None
    kwargs = {k: v for k, v in case.items() if k != "batch_size"}
    expected_x, expected_y = reference_windows(data, targets, **kwargs)
    dataset = timeseries_dataset_from_array(data, targets, batch_size=case["batch_size"], **kwargs)
    x, y, sizes = collect(dataset, with_targets)
    np.testing.assert_array_equal(x, expected_x)
    if with_targets:
        np.testing.assert_array_equal(y, expected_y)
    batch = case["batch_size"]
    assert sizes == [batch] * (len(expected_x) // batch) + ([len(expected_x) % batch] if len(expected_x) % batch else [])
    assert len(dataset) == len(sizes)


def test_keras_docstring_examples():
    # Example 1: indices 0..98, sequence_length=10, sampling_rate=2, sequence_stride=3.
    windows, _, _ = collect(timeseries_dataset_from_array(
        np.arange(99), None, sequence_length=10, sampling_rate=2, sequence_stride=3), False)
    assert windows[0].tolist() == list(range(0, 20, 2))
    assert windows[1].tolist() == list(range(3, 23, 2))
    assert windows[-1].tolist() == list(range(78, 98, 2))
    # Example 2: the past 10 steps predict the next one.
    data = np.random.default_rng(1).normal(size=50)
    inputs, targets = next(iter(timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)))
    np.testing.assert_array_equal(inputs[0].numpy(), data[:10])
    assert targets[0].item() == data[10]
    # Keras's test: offset targets, one window per batch, 7 batches.
    data = np.arange(10)
    batches = list(timeseries_dataset_from_array(data, data[3:], sequence_length=3, batch_size=1))
    assert len(batches) == 7
    for i, (x, y) in enumerate(batches):
        assert x.tolist() == [list(range(i, i + 3))] and y.tolist() == [i + 3]


def test_dtype_kept_and_fit_trains_on_it():
    import lamina as keras

    keras.utils.set_random_seed(0)
    series = np.sin(np.arange(300) / 8.0)[:, None]
    assert next(iter(timeseries_dataset_from_array(series, None, 4)))[0].dtype == torch.float64
    dataset = timeseries_dataset_from_array(series[:-4], series[4:, 0], sequence_length=4, batch_size=32)
    model = keras.Sequential([keras.Input((4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    losses = model.fit(dataset, epochs=20, verbose=0).history["loss"]
    # A linear map of 4 past samples of a sine predicts the next almost exactly.
    assert losses[-1] < 0.02 and losses[-1] < 0.2 * losses[0]


def test_shuffle_permutes_the_same_windows_per_epoch_and_is_seeded():
    data = np.arange(40)
    make = lambda seed: timeseries_dataset_from_array(  # noqa: E731
        data, data * 2, sequence_length=5, batch_size=4, shuffle=True, seed=seed)
    dataset = make(123)
    epochs = [collect(dataset, True) for _ in range(2)]
    expected_x, expected_y = reference_windows(data, data * 2, 5)
    for x, y, _ in epochs:
        np.testing.assert_array_equal(y, x[:, 0] * 2)  # targets travel with their windows
        assert sorted(map(tuple, x)) == sorted(map(tuple, expected_x))
    assert not np.array_equal(epochs[0][0], epochs[1][0])
    assert not np.array_equal(epochs[0][0], expected_x)
    np.testing.assert_array_equal(collect(make(123), True)[0], epochs[0][0])
    unbatched = next(iter(timeseries_dataset_from_array(data, None, 9, batch_size=None, shuffle=True)))
    assert unbatched.shape == (9,)


def test_exported_where_keras_has_it():
    import lamina as keras

    assert keras.preprocessing.timeseries_dataset_from_array is keras.utils.timeseries_dataset_from_array


@pytest.mark.parametrize("kwargs, message", [
    (dict(start_index=-1), "`start_index` must be in [0, 10)"),
    (dict(start_index=11), "`start_index` must be in [0, 10)"),
    (dict(end_index=-1), "`end_index` must be in (0, 10)"),
    (dict(end_index=11), "`end_index` must be in (0, 10)"),
    (dict(start_index=5, end_index=4), "`end_index` must be greater than `start_index`"),
    (dict(sampling_rate=0), "`sampling_rate` must be a positive integer"),
    (dict(sampling_rate=10), "`sampling_rate` must be lower than the length"),
    (dict(sequence_stride=0), "`sequence_stride` must be a positive integer"),
    (dict(batch_size=0), "`batch_size` must be a positive integer"),
    (dict(targets=np.arange(4), start_index=5), "`targets` has 4 entries"),
])
def test_errors(kwargs, message):
    kwargs.setdefault("targets", None)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        timeseries_dataset_from_array(np.arange(10), sequence_length=3, **kwargs)
