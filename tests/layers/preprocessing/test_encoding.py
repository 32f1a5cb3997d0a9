"""CategoryEncoding and Discretization: Keras's documented outputs, encodings against numpy,
bin edges, the quantile sketch of adapt(), config and save/load, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.utils.py_dataset import PyDataset

from .harness import config_round_trip, save_load

DOC_VALUES = np.array([[-1.5, 1.0, 3.4, 0.5], [0.0, 3.0, 1.3, 0.0]])


def test_category_encoding_keras_documented_examples():
    one_hot = layers.CategoryEncoding(num_tokens=4, output_mode="one_hot")
    np.testing.assert_array_equal(one_hot(np.array([3, 2, 0, 1])).numpy(), np.eye(4)[[3, 2, 0, 1]])
    multi_hot = layers.CategoryEncoding(num_tokens=4, output_mode="multi_hot")
    np.testing.assert_array_equal(multi_hot(np.array([[0, 1], [0, 0], [1, 2], [3, 1]])).numpy(),
                                  [[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1]])
    count = layers.CategoryEncoding(num_tokens=4, output_mode="count")
    weights = np.array([[0.1, 0.2], [0.1, 0.1], [0.2, 0.3], [0.4, 0.2]])
    np.testing.assert_allclose(
        count(np.array([[0, 1], [0, 0], [1, 2], [3, 1]]), count_weights=weights).numpy(),
        [[0.1, 0.2, 0, 0], [0.2, 0, 0, 0], [0, 0.2, 0.3, 0], [0, 0.2, 0, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("mode", ["multi_hot", "count"])
def test_bag_encodings_match_numpy_bincount(mode):
    indices = np.random.default_rng(0).integers(0, 6, size=(5, 7))
    counts = np.stack([np.bincount(row, minlength=6) for row in indices])
    expected = counts if mode == "count" else (counts > 0)
    out = layers.CategoryEncoding(num_tokens=6, output_mode=mode)(torch.from_numpy(indices))
    np.testing.assert_array_equal(out.numpy(), expected.astype(np.float32))
    assert out.dtype == torch.float32


@pytest.mark.parametrize("mode,shape,expected", [
    ("one_hot", (), (5,)), ("one_hot", (3,), (3, 5)), ("one_hot", (3, 1), (3, 5)),
    ("one_hot", (3, 2), (3, 2, 5)), ("multi_hot", (), (5,)), ("multi_hot", (3,), (5,)),
    ("multi_hot", (3, 2), (3, 5)), ("count", (3, 1), (3, 5)),
])
def test_category_encoding_shapes(mode, shape, expected):
    layer = layers.CategoryEncoding(num_tokens=5, output_mode=mode)
    assert layer(torch.zeros(shape, dtype=torch.int64)).shape == expected
    assert layer.compute_output_shape(shape) == expected


def test_count_weights_gradcheck():
    layer = layers.CategoryEncoding(num_tokens=4, output_mode="count", dtype="float64")
    indices = torch.tensor([[0, 1, 1], [3, 3, 2]])
    weights = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: layer(indices, count_weights=w), (weights,))


def test_category_encoding_config_and_save_load(tmp_path):
    layer = layers.CategoryEncoding(num_tokens=5, output_mode="count")
    x = torch.tensor([[1, 1, 4], [0, 2, 2]])
    torch.testing.assert_close(config_round_trip(layer)(x), layer(x))
    model = lamina.Sequential([lamina.Input(shape=(3,), dtype="int64"),
                               layers.CategoryEncoding(num_tokens=5), layers.Dense(2)])
    before, after = save_load(tmp_path, model, x)
    torch.testing.assert_close(after, before)
    assert model.layers[0].count_params() == 0


@pytest.mark.parametrize("make,error,match", [
    (lambda: layers.CategoryEncoding(), ValueError, r"`num_tokens` must be set"),
    (lambda: layers.CategoryEncoding(num_tokens=0), ValueError,
     r"`num_tokens` must be an integer >= 1. Received: num_tokens=0"),
    (lambda: layers.CategoryEncoding(3, output_mode="int"), ValueError,
     r"`output_mode` must be one of 'one_hot', 'multi_hot', 'count'"),
    (lambda: layers.CategoryEncoding(3, sparse=True), ValueError, r"`sparse=True` is not"),
    (lambda: layers.CategoryEncoding(3)(torch.tensor([[0, 3]])), ValueError,
     r"takes integers in \[0, 3\) \(num_tokens=3\). Received values from 0 to 3"),
    (lambda: layers.CategoryEncoding(3)(torch.tensor([[-1, 0]])), ValueError,
     r"Received values from -1 to 0"),
    (lambda: layers.CategoryEncoding(3)(torch.tensor([[0, 1]]), count_weights=torch.ones(1, 2)),
     ValueError, r"`count_weights` only applies to output_mode='count'"),
    (lambda: layers.CategoryEncoding(3, "count")(torch.tensor([[0, 1]]),
                                                 count_weights=torch.ones(2)),
     ValueError, r"`count_weights` must have the shape of the inputs, \(1, 2\)"),
])
def test_category_encoding_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ----------------------------------------------------------------------------- Discretization


def test_discretization_keras_documented_examples():
    layer = layers.Discretization(bin_boundaries=[0.0, 1.0, 2.0])
    out = layer(DOC_VALUES)
    assert out.dtype == torch.int64
    assert out.tolist() == [[0, 2, 3, 1], [1, 3, 2, 1]]
    layer = layers.Discretization(num_bins=4, epsilon=0.01)
    layer.adapt(DOC_VALUES)
    assert layer(DOC_VALUES).tolist() == [[0, 2, 3, 2], [1, 3, 3, 1]]
    np.testing.assert_allclose(layer.bin_boundaries, [0.0, 0.5, 1.3], rtol=1e-6)


def test_values_on_a_boundary_go_to_the_upper_bin():
    layer = layers.Discretization(bin_boundaries=[-1.0, 0.0, 2.5])
    x = torch.tensor([-5.0, -1.0, -0.5, 0.0, 2.4999, 2.5, 100.0])
    assert layer(x).tolist() == np.digitize(x.numpy(), [-1.0, 0.0, 2.5]).tolist() == \
        [0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
def test_discretization_encodings(mode):
    layer = layers.Discretization(bin_boundaries=[0.0, 1.0, 2.0], output_mode=mode)
    bins = np.array([[0, 2, 3, 1], [1, 3, 2, 1]])
    expected = np.eye(4)[bins] if mode == "one_hot" else np.stack(
        [np.bincount(row, minlength=4) for row in bins])
    expected = np.minimum(expected, 1) if mode == "multi_hot" else expected
    out = layer(DOC_VALUES)
    np.testing.assert_array_equal(out.numpy(), expected)
    assert out.dtype == torch.float32 and layer.compute_output_shape((None, 4)) == \
        ((None, 4, 4) if mode == "one_hot" else (None, 4))


class Batches(PyDataset):
    def __init__(self, values, size):
        super().__init__(workers=0)
        self.values, self.size = values, size

    def __len__(self):
        return len(self.values) // self.size

    def __getitem__(self, index):
        return self.values[index * self.size:(index + 1) * self.size]


@pytest.mark.parametrize("name,source", [
    ("array", lambda v: v), ("tensor", lambda v: torch.from_numpy(v)),
    ("batches", lambda v: [v[:3000], v[3000:7000], v[7000:]]),
    ("generator", lambda v: (v[i:i + 2500] for i in range(0, len(v), 2500))),
    ("py_dataset", lambda v: Batches(v, 2000)),
], ids=lambda value: value if isinstance(value, str) else "")
def test_adapted_boundaries_are_quantiles_within_epsilon(name, source):
    values = np.random.default_rng(1).normal(size=10_000)
    layer = layers.Discretization(num_bins=5, epsilon=0.01)
    layer.adapt(source(values))
    assert len(layer.bin_boundaries) == 4
    # Each learned boundary sits within epsilon (in rank) of the true quantile.
    ranks = np.searchsorted(np.sort(values), layer.bin_boundaries) / len(values)
    np.testing.assert_allclose(ranks, [0.2, 0.4, 0.6, 0.8], atol=0.01)
    counts = np.bincount(layer(values).numpy(), minlength=5) / len(values)
    np.testing.assert_allclose(counts, 0.2, atol=0.02)


def test_discretization_config_round_trip_and_save_load(tmp_path):
    layer = layers.Discretization(num_bins=3, output_mode="one_hot")
    layer.adapt(np.arange(30.0))
    clone = config_round_trip(layer)
    assert clone.bin_boundaries == layer.bin_boundaries
    x = torch.tensor([[1.0, 12.0, 29.0]])
    torch.testing.assert_close(clone(x), layer(x))
    model = lamina.Sequential([lamina.Input(shape=(3,)), layer, layers.Flatten(),
                               layers.Dense(2)])
    before, after = save_load(tmp_path, model, x)
    torch.testing.assert_close(after, before)


@pytest.mark.parametrize("make,error,match", [
    (lambda: layers.Discretization(), ValueError, r"Set exactly one of `bin_boundaries`"),
    (lambda: layers.Discretization([0.0], num_bins=2), ValueError,
     r"Received: bin_boundaries=\[0.0\], num_bins=2"),
    (lambda: layers.Discretization(num_bins=0), ValueError, r"`num_bins` must be an integer >= 1"),
    (lambda: layers.Discretization(num_bins=2, epsilon=0), ValueError,
     r"`epsilon` must be a number in \(0, 1\]"),
    (lambda: layers.Discretization([1.0, 0.0]), ValueError,
     r"`bin_boundaries` must be finite and sorted in increasing order"),
    (lambda: layers.Discretization([0.0], output_mode="tf_idf"), ValueError,
     r"`output_mode` must be one of 'int', 'one_hot', 'multi_hot', 'count'"),
    (lambda: layers.Discretization(num_bins=3)(torch.zeros(2)), ValueError,
     r"has no bin boundaries yet. Pass `bin_boundaries=` or call adapt\(data\) first"),
    (lambda: layers.Discretization([0.0]).adapt(np.zeros(3)), ValueError,
     r"was given `bin_boundaries`; create it with `num_bins`"),
    (lambda: layers.Discretization(num_bins=3).adapt(np.zeros(0)), ValueError,
     r"received no values"),
    (lambda: layers.Discretization(num_bins=3).adapt(np.array([1.0, np.nan])), ValueError,
     r"contains NaN or infinite values"),
    (lambda: layers.Discretization(num_bins=3).adapt("values"), TypeError,
     r"Discretization.adapt\(\) takes a numpy array, a tensor, or an iterable of batches"),
])
def test_discretization_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()
