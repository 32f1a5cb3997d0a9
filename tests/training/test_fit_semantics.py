"""What `fit` does with its data arguments, observed sample by sample: `class_weight` (unequal
weights, against the loss computed by hand), `shuffle` (the order of the samples each epoch,
recorded inside the model) and `validation_split` (Keras takes the last samples, before
shuffling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina as keras
from lamina import layers


def _recording_model(features: int = 3):
    """A Dense model that records, per forward pass in training and in inference mode, the ids
    carried in the first input column."""
    model = keras.Sequential([layers.Dense(2, input_shape=(features,))])
    model.build((None, features))
    seen = {True: [], False: []}

    def record(module, inputs, output):
        seen[module.training].append(inputs[0][:, 0].detach().round().long().tolist())

    model.layers[0].register_forward_hook(record)
    return model, seen


def _ids_data(n: int, features: int = 3):
    """x whose first column is the sample's id (0..n-1)."""
    x = np.random.default_rng(0).normal(size=(n, features)).astype("float32")
    x[:, 0] = np.arange(n)
    return x, np.zeros((n, 2), dtype="float32")


def _compiled(model):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    return model


# --------------------------------------------------------------------------------- class_weight


def test_class_weight_weights_each_sample_by_its_class():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4)).astype("float32")
    y = np.array([0] * 5 + [1] * 10 + [2] * 15)
    rng.shuffle(y)
    class_weight = {0: 0.5, 1: 3.0, 2: 1.25}
    model = keras.Sequential([layers.Dense(3, input_shape=(4,))])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits = model.predict(x, verbose=0).astype(np.float64)
    # Cross-entropy by hand; Keras's sum_over_batch_size divides the weighted sum by the count.
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    per_sample = -log_softmax[np.arange(30), y]
    weights = np.array([class_weight[label] for label in y])
    expected = (weights * per_sample).sum() / 30
    history = model.fit(x, y, batch_size=30, epochs=1, class_weight=class_weight, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
    # One-hot labels pick their class by argmax, as Keras does.
    one_hot = np.eye(3, dtype="float32")[y]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    history = model.fit(x, one_hot, batch_size=30, epochs=1, class_weight=class_weight, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_class_weight_missing_a_class_names_it():
    with pytest.raises(ValueError, match=r"class_weight has no weight for classes \[2\] found in y"):
        _compiled(keras.Sequential([layers.Dense(2, input_shape=(3,))])).fit(
            np.zeros((3, 3), "float32"), np.array([0, 1, 2]), class_weight={0: 1.0, 1: 2.0},
            verbose=0)


# ------------------------------------------------------------------------------------- shuffle


def _epochs_seen(shuffle, n=64, batch_size=8, epochs=3, seed=0):
    torch.manual_seed(seed)
    model, seen = _recording_model()
    x, y = _ids_data(n)
    _compiled(model).fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=shuffle, verbose=0)
    batches = seen[True]
    per_epoch = len(batches) // epochs
    assert per_epoch == n // batch_size
    return [batches[e * per_epoch:(e + 1) * per_epoch] for e in range(epochs)]


def test_shuffle_true_draws_a_new_order_of_all_samples_each_epoch():
    epochs = _epochs_seen(True)
    orders = [[i for batch in epoch for i in batch] for epoch in epochs]
    for order in orders:
        assert sorted(order) == list(range(64))  # every sample exactly once per epoch
        assert order != list(range(64))
    assert len({tuple(order) for order in orders}) == 3  # a fresh order every epoch
    # Shuffled across batches, not only the batches reordered.
    assert any(batch != list(range(batch[0], batch[0] + 8)) for batch in epochs[0])


def test_shuffle_false_keeps_the_order_of_the_data():
    for epoch in _epochs_seen(False):
        assert [i for batch in epoch for i in batch] == list(range(64))


def test_shuffle_batch_reorders_whole_batches():
    epochs = _epochs_seen("batch")
    for epoch in epochs:
        assert sorted(b[0] for b in epoch) == list(range(0, 64, 8))
        assert all(batch == list(range(batch[0], batch[0] + 8)) for batch in epoch)
    assert len({tuple(b[0] for b in epoch) for epoch in epochs}) > 1


# ---------------------------------------------------------------------------- validation_split


@pytest.mark.parametrize("shuffle", [False, True])
def test_validation_split_takes_the_last_samples_before_shuffling(shuffle):
    model, seen = _recording_model()
    x, y = _ids_data(10)
    _compiled(model).fit(x, y, batch_size=4, epochs=2, validation_split=0.3, shuffle=shuffle,
                         verbose=0)
    trained = {i for batch in seen[True] for i in batch}
    validated = [i for batch in seen[False] for i in batch]
    # int(10 * (1 - 0.3)) = 7 samples train; the last 3 validate, in order, every epoch.
    assert trained == set(range(7))
    assert validated == [7, 8, 9] * 2
