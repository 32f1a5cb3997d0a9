"""The learning-rate range test: the curve, the suggestions, the restore, and their worth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import NotCompiledError
from lamina.training.lr_finder import suggest


@pytest.fixture(scope="module")
def digits():
    (x, y), (xv, yv) = lamina.datasets.digits.load_data()
    return x.reshape(len(x), -1), y, xv.reshape(len(xv), -1), yv


def mlp(optimizer, seed=0, batch_norm=False):
    lamina.set_random_seed(seed)
    stack = [layers.Input((64,)), layers.Dense(64, activation="relu")]
    if batch_norm:
        stack += [layers.BatchNormalization(), layers.Dropout(0.2)]
    model = lamina.Sequential([*stack, layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_the_sweep_is_exponential_and_the_loss_a_debiased_average(digits):
    x, y, _, _ = digits
    result = mlp("sgd").find_learning_rate(x, y, start=1e-4, end=1.0, steps=30)
    assert not result.diverged and len(result.learning_rates) == 30
    np.testing.assert_allclose(result.learning_rates,
                               [1e-4 * (1.0 / 1e-4) ** (i / 30) for i in range(30)], rtol=1e-12)
    average, expected = 0.0, []
    for i, loss in enumerate(result.raw_losses):
        average = 0.98 * average + 0.02 * loss
        expected.append(average / (1 - 0.98 ** (i + 1)))
    np.testing.assert_allclose(result.losses, expected, rtol=1e-12)
    # Cross-entropy of 10 classes starts near log(10).
    assert abs(result.raw_losses[0] - math.log(10)) < 0.3


def test_the_sweep_stops_when_the_loss_diverges():
    # Least squares blows up once lr passes 2 / (largest Hessian eigenvalue); a clipped
    # cross-entropy would only saturate.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(8, 1))).astype(np.float32)
    lamina.set_random_seed(0)
    model = lamina.Sequential([layers.Input((8,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    result = model.find_learning_rate(x, y, start=1e-4, end=1e3, steps=120)
    assert result.diverged and len(result.losses) < 120
    last = result.losses[-1]
    assert not math.isfinite(last) or last > 4 * min(result.losses[:-1])
    assert all(s <= 4 * min(result.losses[:i + 1]) for i, s in enumerate(result.losses[:-1]))


def test_suggestions_on_curves_with_known_answers():
    rates = list(10 ** np.linspace(-6, 1, 141))
    logs = np.log10(rates)
    # Steepest descent of -tanh(log10(lr) + 2) is at lr = 1e-2; its least value lies at the
    # end, which the last five points dropped move to 10**0.75.
    steep, _ = suggest(rates, list(-np.tanh(logs + 2)))
    assert steep == pytest.approx(1e-2, rel=0.06)
    # A bowl with its bottom at 1e-1: minimum/10 is 1e-2.
    _, minimum = suggest(rates, list((logs + 1) ** 2))
    assert minimum == pytest.approx(1e-2, rel=1e-9)


def test_the_suggestion_lies_in_the_decade_where_training_works_best(digits):
    x, y, xv, yv = digits
    suggestion = mlp("sgd").find_learning_rate(x, y).suggestion

    def accuracy(rate):
        model = mlp(lamina.optimizers.SGD(rate))
        model.fit(x, y, epochs=3, batch_size=32, verbose=0)
        return model.evaluate(xv, yv, verbose=0)[1]

    at_suggestion, hundredfold = accuracy(suggestion), accuracy(100 * suggestion)
    assert at_suggestion > 0.85 and at_suggestion - hundredfold > 0.5
    # No decade of the grid trains clearly better than the suggestion.
    grid = {rate: accuracy(rate) for rate in (1e-3, 1e-2, 1e-1, 1.0, 10.0)}
    assert at_suggestion >= max(grid.values()) - 0.06, (suggestion, at_suggestion, grid)


def test_weights_statistics_optimizer_and_rng_are_restored(digits):
    x, y, xv, yv = digits
    model = mlp("adam", batch_norm=True)
    model.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0)
    optimizer = model.optimizer
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [{k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
               for s in optimizer.torch_optimizer.state.values()]
    iterations, rng = optimizer.iterations, torch.get_rng_state()
    numpy_draw = np.random.get_state()[1].copy()

    result = model.find_learning_rate(x, y, steps=40, batch_size=64)
    assert len(result.losses) > 10

    assert model.optimizer is optimizer and optimizer.iterations == iterations
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key    # BN's moving statistics included
    for saved, state in zip(moments, optimizer.torch_optimizer.state.values()):
        assert all(torch.equal(state[k], v) for k, v in saved.items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert np.array_equal(np.random.get_state()[1], numpy_draw)
    # So training on after the sweep is bit for bit training without it.
    twin = mlp("adam", batch_norm=True)
    twin.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0)
    torch.manual_seed(7)
    model.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0)
    torch.manual_seed(7)
    twin.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_plot_is_a_matplotlib_figure_saved_as_png(digits, tmp_path):
    from matplotlib.figure import Figure

    x, y, _, _ = digits
    result = mlp("sgd").find_learning_rate(x, y, steps=30)
    figure = result.plot(tmp_path / "lr.png")
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log" and axes.get_xlabel() == "Learning rate"
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_are_named(digits):
    x, y, _, _ = digits
    model = mlp("sgd")
    with pytest.raises(ValueError, match=r"`end` must be greater than `start`\. Received: start=1\.0, end=0\.1"):
        model.find_learning_rate(x, y, start=1.0, end=0.1)
    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 2\. Received: steps=1"):
        model.find_learning_rate(x, y, steps=1)
    with pytest.raises(ValueError, match=r"`start` must be a positive finite number\. Received: start=0"):
        model.find_learning_rate(x, y, start=0)
    bare = lamina.Sequential([layers.Input((64,)), layers.Dense(10)])
    with pytest.raises(NotCompiledError, match="compile"):
        bare.find_learning_rate(x, y)


def test_a_wrapped_torch_optimizer_instance_is_restored_too(digits):
    from lamina.optimizers.torch_optimizer import TorchOptimizer

    x, y, _, _ = digits
    lamina.set_random_seed(0)
    model = lamina.Sequential([layers.Input((64,)), layers.Dense(10, activation="softmax")])
    inner = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.compile(optimizer=TorchOptimizer(inner), loss="sparse_categorical_crossentropy")
    model.fit(x[:128], y[:128], epochs=1, verbose=0)
    buffers = [s["momentum_buffer"].clone() for s in inner.state.values()]
    model.find_learning_rate(x, y, steps=20)
    assert inner.param_groups[0]["lr"] == 0.05
    assert all(torch.equal(s["momentum_buffer"], b) for s, b in zip(inner.state.values(), buffers))
