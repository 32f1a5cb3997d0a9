"""Streamed NaN/Inf: the error names the batch, and the model equals its state before the bad
step (or, in deferred mode, at the last check), recorded by a callback as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lamina as keras
from lamina import layers
from lamina.callbacks import Callback, TerminateOnNaN
from lamina.errors import DataError, NonFiniteError
from lamina.utils import PyDataset

BATCH, BATCHES, FEATURES, CLASSES = 8, 6, 4, 3
RNG = np.random.default_rng(1)
X = RNG.normal(size=(BATCH * BATCHES, FEATURES)).astype("float32")
Y = RNG.integers(0, CLASSES, BATCH * BATCHES)


def poisoned(bad_batch, value=np.nan):
    x = X.copy()
    x[bad_batch * BATCH + 2, 1] = value
    return x


def model():
    torch.manual_seed(0)
    net = keras.Sequential([layers.Dense(8, input_shape=(FEATURES,)), layers.BatchNormalization(),
                            layers.Dense(CLASSES)])
    net.compile(optimizer="adam",
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(X, Y, batch_size=BATCH, epochs=1, verbose=0)
    return net


class Recorder(Callback):
    """The model's weights, statistics and optimizer moments at the start of every batch."""

    def __init__(self):
        super().__init__()
        self.states = {}

    def on_train_batch_begin(self, batch, logs=None):
        self.states[batch] = state_of(self.model)


def state_of(net):
    weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
    optimizer = net.optimizer.state_dict()
    torch_state = optimizer["optimizer"]["state"] if optimizer["optimizer"] else {}
    moments = {(i, name): v.clone() for i, entry in torch_state.items() for name, v in entry.items()}
    return weights, moments, optimizer["iterations"]


def assert_state(net, expected):
    weights, moments, iterations = state_of(net)
    assert iterations == expected[2]
    for key, value in expected[0].items():
        assert torch.equal(weights[key], value), key
    for key, value in expected[1].items():
        assert torch.equal(moments[key], value), key


def generator(x):
    def batches():
        for i in range(BATCHES):
            yield x[i * BATCH:(i + 1) * BATCH], Y[i * BATCH:(i + 1) * BATCH]
    return batches()


class Batches(PyDataset):
    def __init__(self, x):
        super().__init__()
        self.x = x

    def __len__(self):
        return BATCHES

    def __getitem__(self, index):
        return self.x[index * BATCH:(index + 1) * BATCH], Y[index * BATCH:(index + 1) * BATCH]


SOURCES = {
    "generator": generator,
    "DataLoader": lambda x: DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(Y)),
                                       batch_size=BATCH),
    "PyDataset": Batches,
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("bad_batch,value", [(2, np.nan), (BATCHES - 1, np.inf)])
def test_streamed_nonfinite_batch_is_named_and_never_applied(source, bad_batch, value):
    net = model()
    recorder = Recorder()
    with pytest.raises(NonFiniteError, match=f"Training batch {bad_batch} of epoch 1") as raised:
        net.fit(SOURCES[source](poisoned(bad_batch, value)), epochs=1, verbose=0,
                callbacks=[recorder])
    assert "holds 1 NaN/Inf values" in str(raised.value)
    assert isinstance(raised.value, DataError) and isinstance(raised.value, FloatingPointError)
    assert_state(net, recorder.states[bad_batch])
    assert np.isfinite(net.predict(X, verbose=0)).all()


def test_overflowing_normalization_statistics_are_caught_with_finite_loss():
    # Inputs of 1e20 overflow BatchNormalization's variance (1e40 > float32 max) while the
    # normalized output, the loss and the gradients stay finite.
    net = model()
    x = X.copy()
    x[3 * BATCH:4 * BATCH] *= 1e20
    recorder = Recorder()
    with pytest.raises(NonFiniteError, match="batch 3 .* normalization statistics"):
        net.fit(generator(x), epochs=1, verbose=0, callbacks=[recorder])
    assert_state(net, recorder.states[3])
    assert torch.isfinite(net.layers[1].moving_variance).all()


def test_deferred_mode_rolls_back_to_the_last_check():
    # As on an accelerator: the flag is read every 2 steps, no host sync in between.
    net = model()
    net._lamina_trainer.nonfinite_check_every = 2
    recorder = Recorder()
    with pytest.raises(NonFiniteError, match="batch 3 of epoch 1.*rolled back to epoch 1, batch 1"):
        net.fit(generator(poisoned(3)), epochs=1, verbose=0, callbacks=[recorder])
    assert_state(net, recorder.states[2])  # the check after batch 1 is the state before batch 2
    assert np.isfinite(net.predict(X, verbose=0)).all()


@pytest.mark.parametrize("steps,message", [
    (None, "batch 1 of epoch 1 made the loss.*rolled back to the start of fit"),
    (1, "weights became NaN or infinite during epoch 1.*updates overflowed"),
])
def test_overflowing_updates_roll_back_to_the_last_snapshot(steps, message):
    # Finite loss and gradients, but a learning rate of 1e38 pushes the weights to Inf: only
    # the start-of-fit snapshot predates the overflow. It shows in the next step's loss, or
    # (one step per epoch) in the weights checked at the epoch's end.
    torch.manual_seed(0)
    net = keras.Sequential([layers.Dense(CLASSES, input_shape=(FEATURES,))])
    net.compile(optimizer=keras.optimizers.SGD(learning_rate=1e38),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = state_of(net)
    with pytest.raises(NonFiniteError, match=message):
        net.fit(X * 1e3, Y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                steps_per_epoch=steps)
    assert_state(net, before)


def test_terminate_on_nan_stops_training_without_corrupting_the_model():
    net = model()
    recorder, terminate = Recorder(), TerminateOnNaN()
    net.fit(generator(poisoned(3)), epochs=2, verbose=0, callbacks=[recorder, terminate])
    assert terminate.terminated_at == (0, 3)
    assert net.stop_training and max(recorder.states) == 3
    assert_state(net, recorder.states[3])
    assert np.isfinite(net.predict(X, verbose=0)).all()


def test_an_out_of_range_label_in_a_later_streamed_batch_is_a_data_error():
    net = model()
    labels = Y.copy()
    labels[BATCH * 4 + 1] = 7
    batches = [(X[i * BATCH:(i + 1) * BATCH], labels[i * BATCH:(i + 1) * BATCH])
               for i in range(BATCHES)]
    recorder = Recorder()
    with pytest.raises(DataError, match="training batch 4 of epoch 1"):
        net.fit(iter(batches), epochs=1, verbose=0, callbacks=[recorder])
    assert_state(net, recorder.states[4])
