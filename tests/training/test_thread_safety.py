"""predict/evaluate from several threads on one model left in training mode: every result is
the eval-mode result of the same torch modules, and the model's modes are kept."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

import lamina as keras
from lamina import layers
from lamina.callbacks import Callback

FEATURES, UNITS, CLASSES = 6, 16, 4
RNG = np.random.default_rng(2)
X = RNG.normal(size=(96, FEATURES)).astype("float32")
Y = RNG.integers(0, CLASSES, 96)


def trained_model():
    torch.manual_seed(0)
    net = keras.Sequential([layers.Dense(UNITS, input_shape=(FEATURES,)),
                            layers.BatchNormalization(), layers.Dropout(0.5),
                            layers.Dense(CLASSES)])
    net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(X, Y, batch_size=16, epochs=2, verbose=0)
    return net


def torch_reference(net):
    """The same weights in plain torch modules, in eval mode: the oracle."""
    dense0, norm, _, dense1 = net.layers
    reference = nn.Sequential(nn.Linear(FEATURES, UNITS), nn.BatchNorm1d(UNITS, eps=norm.epsilon),
                              nn.Dropout(0.5), nn.Linear(UNITS, CLASSES)).eval()
    with torch.no_grad():
        reference[0].weight.copy_(dense0.kernel.t()); reference[0].bias.copy_(dense0.bias)
        reference[1].weight.copy_(norm.gamma); reference[1].bias.copy_(norm.beta)
        reference[1].running_mean.copy_(norm.moving_mean)
        reference[1].running_var.copy_(norm.moving_variance)
        reference[3].weight.copy_(dense1.kernel.t()); reference[3].bias.copy_(dense1.bias)
    return reference


def run_threads(work, threads=4):
    errors = []

    def target(index):
        try:
            work(index)
        except Exception as error:  # reported to the main thread
            errors.append(error)

    pool = [threading.Thread(target=target, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors


def test_threaded_predict_equals_eval_mode_torch_and_keeps_the_mode():
    net = trained_model()
    with torch.no_grad():
        expected = torch_reference(net)(torch.from_numpy(X)).numpy()
    net.train()
    net.layers[2].eval()  # a mixed mode the user chose must survive too
    modes = {name: m.training for name, m in net.named_modules()}
    wrong = []

    def work(index):
        rng = np.random.default_rng(index)
        for _ in range(40):
            start = int(rng.integers(0, 80))
            size = int(rng.integers(1, 16))
            got = net.predict(X[start:start + size], batch_size=4, verbose=0)
            if not np.allclose(got, expected[start:start + size], atol=1e-5):
                wrong.append((start, size))

    run_threads(work, threads=6)
    assert wrong == []
    assert {name: m.training for name, m in net.named_modules()} == modes


def test_threaded_evaluate_equals_the_cross_entropy_of_the_reference():
    net = trained_model()
    with torch.no_grad():
        logits = torch_reference(net)(torch.from_numpy(X))
        expected = float(nn.functional.cross_entropy(logits, torch.from_numpy(Y)))
    net.train()
    results = []
    run_threads(lambda index: results.extend(
        net.evaluate(X, Y, batch_size=96, verbose=0) for _ in range(10)))
    assert len(results) == 40
    np.testing.assert_allclose(results, expected, rtol=1e-5)
    assert net.training and net.layers[2].training


def test_predict_from_another_thread_during_fit_is_refused():
    net = trained_model()
    seen = []

    class PredictElsewhere(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            def work():
                try:
                    net.predict(X, verbose=0)
                except RuntimeError as error:
                    seen.append(str(error))
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()

        def on_epoch_end(self, epoch, logs=None):
            seen.append(net.predict(X[:3], verbose=0).shape)  # same thread: allowed

    net.fit(X, Y, epochs=1, verbose=0, callbacks=[PredictElsewhere()])
    assert "being trained by fit() in another thread" in seen[0]
    assert seen[1] == (3, CLASSES)
    net.predict(X, verbose=0)  # fit has ended: allowed again


def test_fit_while_another_thread_predicts_is_refused():
    net = trained_model()
    entered, release = threading.Event(), threading.Event()

    class Blocking(Callback):
        def on_predict_begin(self, logs=None):
            pass

        def on_predict_batch_end(self, batch, logs=None):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=lambda: net.predict(X, batch_size=96, verbose=0,
                                                         callbacks=[Blocking()]))
    thread.start()
    entered.wait(10)
    try:
        with pytest.raises(RuntimeError, match="predict/evaluate is running"):
            net.fit(X, Y, epochs=1, verbose=0)
    finally:
        release.set()
        thread.join()
