"""Normalization: adapt() equals numpy's mean/var for every kind of data, the output formula with
Keras's epsilon, fixed statistics, weights, config and save/load, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import DataError, ShapeError
from lamina.utils.py_dataset import PyDataset

from .harness import config_round_trip, gradcheck_fresh, save_load


class Batches(PyDataset):
    def __init__(self, data, batch_size):
        super().__init__(workers=0)
        self.data, self.batch_size = data, batch_size

    def __len__(self):
        return -(-len(self.data) // self.batch_size)

    def __getitem__(self, index):
        batch = self.data[index * self.batch_size:(index + 1) * self.batch_size]
        return batch, np.zeros(len(batch))


# (id, how the data is handed to adapt)
SOURCES = [
    ("array", lambda d: d),
    ("tensor", lambda d: torch.from_numpy(d)),
    ("list_of_batches", lambda d: [d[:7], d[7:20], d[20:]]),
    ("generator", lambda d: (d[i:i + 9] for i in range(0, len(d), 9))),
    ("xy_batches", lambda d: [(d[:10], np.zeros(10)), (d[10:], np.zeros(len(d) - 10))]),
    ("py_dataset", lambda d: Batches(d, 8)),
    ("nested_lists", lambda d: d.tolist()),
]
# (axis, data shape, the axes numpy reduces)
AXES = [(-1, (30, 4), (0,)), (None, (30, 4), (0, 1)), ((1, 2), (30, 3, 4), (0,)),
        (1, (30, 3, 4), (0, 2)), (-1, (30, 3, 4), (0, 1))]


def data(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape) * rng.uniform(0.5, 3.0, size=shape[1:]) + 5.0


@pytest.mark.parametrize("name,source", SOURCES, ids=[s[0] for s in SOURCES])
@pytest.mark.parametrize("axis,shape,reduce", AXES, ids=[f"axis={a[0]}-{len(a[1])}d" for a in AXES])
def test_adapt_equals_numpy_mean_and_variance(name, source, axis, shape, reduce):
    values = data(shape)
    layer = layers.Normalization(axis=axis)
    layer.adapt(source(values))
    mean, variance, count = layer.get_weights()
    np.testing.assert_allclose(mean, values.mean(axis=reduce), rtol=1e-6)
    np.testing.assert_allclose(variance, values.var(axis=reduce), rtol=1e-5)
    assert count == np.prod([shape[d] for d in reduce])
    expected = (values - values.mean(axis=reduce, keepdims=True)) / values.std(axis=reduce,
                                                                                keepdims=True)
    np.testing.assert_allclose(layer(torch.from_numpy(values)).numpy(), expected, atol=1e-5)


def test_keras_documented_examples():
    layer = layers.Normalization(axis=None)
    layer.adapt(np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype="float32"))
    np.testing.assert_allclose(layer(np.array([1.0, 2.0, 3.0])).numpy(),
                               [-1.4142135, -0.70710677, 0.0], rtol=1e-6)
    adapt_data = np.array([[0.0, 7.0, 4.0], [2.0, 9.0, 6.0], [0.0, 7.0, 4.0], [2.0, 9.0, 6.0]])
    layer = layers.Normalization(axis=-1)
    layer.adapt(adapt_data)
    np.testing.assert_allclose(layer(np.array([[0.0, 7.0, 4.0]])).numpy(), [[-1.0, -1.0, -1.0]])
    layer = layers.Normalization(axis=-1, invert=True)
    layer.adapt(adapt_data)
    np.testing.assert_allclose(layer(np.array([[1.0, 2.0, 3.0]])).numpy(), [[2.0, 10.0, 8.0]])
    layer = layers.Normalization(mean=3.0, variance=2.0)
    np.testing.assert_allclose(layer(np.array([[1.0], [2.0], [3.0]])).numpy(),
                               [[-1.4142135], [-0.70710677], [0.0]], rtol=1e-6)


def test_a_constant_feature_divides_by_epsilon_not_zero():
    values = np.array([[1.0, 3.0], [2.0, 3.0], [3.0, 3.0]])
    layer = layers.Normalization(dtype="float64")
    layer.adapt(values)
    out = layer(torch.tensor([[2.0, 3.0], [2.0, 3.5]], dtype=torch.float64))
    epsilon = lamina.config.epsilon()
    np.testing.assert_allclose(out.numpy(), [[0.0, 0.0], [0.0, 0.5 / epsilon]])


def test_invert_undoes_the_normalization():
    values = data((20, 3))
    forward, inverse = layers.Normalization(), layers.Normalization(invert=True)
    forward.adapt(values)
    inverse.adapt(values)
    x = torch.from_numpy(values[:5]).float()
    torch.testing.assert_close(inverse(forward(x)), x)


def test_fixed_statistics_align_with_the_kept_axes_from_the_right():
    layer = layers.Normalization(axis=(1, 2), mean=[1.0, 2.0, 3.0, 4.0],
                                 variance=[1.0, 4.0, 9.0, 16.0])
    x = torch.from_numpy(data((2, 3, 4))).float()
    expected = (x.numpy() - np.array([1.0, 2.0, 3.0, 4.0])) / np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)
    assert layer.get_weights() == [] and layer.count_params() == 0


def test_learned_statistics_are_non_trainable_weights_in_keras_order():
    layer = layers.Normalization()
    layer.adapt(data((10, 3)))
    assert [w.shape for w in layer.get_weights()] == [(3,), (3,), ()]
    assert layer.count_params() == 7  # Keras: mean (3) + variance (3) + count (1)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 3


def test_adapt_again_starts_afresh():
    layer = layers.Normalization()
    layer.adapt(data((10, 3), seed=1))
    second = data((12, 3), seed=2)
    layer.adapt(second)
    np.testing.assert_allclose(layer.get_weights()[0], second.mean(axis=0), rtol=1e-6)


def test_integer_and_numpy_inputs_are_cast_to_the_layer_dtype():
    layer = layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 4.0])
    out = layer(np.array([[3, 4]]))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), [[1.0, 1.0]])


def test_gradcheck_float64():
    values = data((10, 3))

    def make():
        layer = layers.Normalization(dtype="float64")
        layer.adapt(values)
        return layer

    assert gradcheck_fresh(make, torch.from_numpy(values[:4]))
    assert gradcheck_fresh(lambda: layers.Normalization(mean=[1.0, 2.0, 3.0],
                                                        variance=[1.0, 2.0, 3.0],
                                                        invert=True, dtype="float64"),
                           torch.from_numpy(values[:4]))


@pytest.mark.parametrize("make", [
    lambda: layers.Normalization(mean=[0.5, 1.0, 1.5], variance=[1.0, 2.0, 3.0]),
    lambda: layers.Normalization(axis=None, mean=2.0, variance=0.5, invert=True),
], ids=["per_feature", "scalar_inverted"])
def test_config_round_trip_with_fixed_statistics(make):
    layer = make()
    x = torch.from_numpy(data((4, 3))).float()
    torch.testing.assert_close(config_round_trip(layer)(x), layer(x))


def test_config_round_trip_with_learned_statistics():
    layer = layers.Normalization(axis=(1, 2))
    layer.adapt(data((10, 3, 2)))
    clone = config_round_trip(layer)
    x = torch.from_numpy(data((4, 3, 2), seed=3)).float()
    clone(x)
    clone.set_weights(layer.get_weights())
    torch.testing.assert_close(clone(x), layer(x))


@pytest.mark.parametrize("make", [
    lambda: layers.Normalization(mean=[0.5, 1.0, 1.5], variance=[1.0, 2.0, 3.0]),
    lambda: layers.Normalization(),
], ids=["fixed", "adapted"])
def test_save_load_inside_a_sequential(tmp_path, make):
    layer = make()
    if layer.input_mean is None:
        layer.adapt(data((20, 3)))
    model = lamina.Sequential([lamina.Input(shape=(3,)), layer, layers.Dense(2)])
    x = torch.from_numpy(data((5, 3), seed=4)).float()
    before, after = save_load(tmp_path, model, x)
    torch.testing.assert_close(after, before)


BAD_ARGUMENTS = [
    (dict(mean=1.0), ValueError, r"`mean` and `variance` must be given together"),
    (dict(mean=[1.0, 2.0], variance=[1.0]), ValueError,
     r"must have the same shape. Received: mean of shape \(2,\) and variance of shape \(1,\)"),
    (dict(mean=[[1.0, 2.0]], variance=[[1.0, 2.0]]), ValueError,
     r"`mean` has rank 2, more than the 1 kept axes of axis=-1"),
    (dict(mean=[0.0], variance=[-1.0]), ValueError, r"`variance` must be non-negative"),
    (dict(mean="zero", variance="one"), TypeError, r"`mean` must hold numbers"),
    (dict(axis="features"), TypeError, r"`axis` must be an integer, a list of integers, or None"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD_ARGUMENTS)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        layers.Normalization(**kwargs)


def test_bad_shapes_name_the_layer():
    with pytest.raises(ShapeError, match=r"'norm' \(Normalization\): axis=3 is out of range for "
                                         r"an input of shape \(2, 3\)"):
        layers.Normalization(axis=3, name="norm")(torch.zeros(2, 3))
    with pytest.raises(ShapeError, match=r"needs the kept axes -1 to have known sizes"):
        lamina.Sequential([lamina.Input(shape=(None,)), layers.Normalization()])
    with pytest.raises(ValueError, match=r"given mean/variance of shape \(2,\) cannot be "
                                         r"broadcast .* of sizes \(3,\)"):
        layers.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0])(torch.zeros(2, 3))


def test_bad_adapt_data():
    with pytest.raises(ValueError, match=r"adapt\(\) received no batches"):
        layers.Normalization().adapt([])
    with pytest.raises(ValueError, match=r"received only empty batches"):
        layers.Normalization().adapt(np.zeros((0, 3)))
    with pytest.raises(TypeError, match=r"needs numeric data .* Received data of dtype <U1"):
        layers.Normalization().adapt(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match=r"takes a numpy array, a tensor, or an iterable of "
                                        r"batches. Received: dict"):
        layers.Normalization().adapt({"x": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"was given a fixed mean and variance, so it cannot "
                                         r"adapt"):
        layers.Normalization(mean=0.0, variance=1.0).adapt(np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"contains NaN or infinite values"):
        layers.Normalization().adapt(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ShapeError, match=r"built for inputs of shape \(None, 3\), but adapt\(\) "
                                         r"received a batch of shape \(2, 4\)"):
        layers.Normalization().adapt([np.zeros((2, 3)), np.zeros((2, 4))])
