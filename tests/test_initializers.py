"""Initializers by Keras name: statistical checks on large samples (bounds, standard deviations,
truncation, orthogonality), seeds, Keras's fans, configs and name errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from lamina import initializers, layers
from lamina.errors import UnknownNameError

SHAPE = (400, 600)  # fan_in 400, fan_out 600: 240,000 samples
FAN_IN, FAN_OUT = SHAPE
# The stddev of a unit normal truncated to [-2, 2] (Keras divides by it to keep the variance).
TRUNCATED_STD = 0.87962566103423978


def uniform(limit):
    return {"kind": "uniform", "limit": limit}


def truncated(std):
    return {"kind": "truncated", "std": std}


# name -> what Keras's definition implies for SHAPE
DISTRIBUTIONS = {
    "glorot_uniform": uniform(math.sqrt(6 / (FAN_IN + FAN_OUT))),
    "glorot_normal": truncated(math.sqrt(2 / (FAN_IN + FAN_OUT))),
    "he_uniform": uniform(math.sqrt(6 / FAN_IN)),
    "he_normal": truncated(math.sqrt(2 / FAN_IN)),
    "lecun_uniform": uniform(math.sqrt(3 / FAN_IN)),
    "lecun_normal": truncated(math.sqrt(1 / FAN_IN)),
    "random_uniform": uniform(0.05),
    "uniform": uniform(0.05),
    "random_normal": {"kind": "normal", "std": 0.05},
    "normal": {"kind": "normal", "std": 0.05},
    # TruncatedNormal's stddev is that of the normal before truncation.
    "truncated_normal": truncated(0.05 * TRUNCATED_STD),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_distribution_by_name(name):
    values = initializers.get(name)(SHAPE).numpy().astype(np.float64)
    assert values.shape == SHAPE
    spec = DISTRIBUTIONS[name]
    std = spec["limit"] / math.sqrt(3) if spec["kind"] == "uniform" else spec["std"]
    assert abs(values.mean()) < 5 * std / math.sqrt(values.size)  # five standard errors
    if spec["kind"] == "uniform":
        limit = spec["limit"]
        assert values.min() >= -limit and values.max() <= limit
        assert values.min() < -0.99 * limit and values.max() > 0.99 * limit
        np.testing.assert_allclose(values.std(), limit / math.sqrt(3), rtol=0.01)
    else:
        np.testing.assert_allclose(values.std(), spec["std"], rtol=0.01)
    if spec["kind"] == "truncated":
        # Truncated at two standard deviations of the underlying normal, and filled up to them.
        bound = 2 * spec["std"] / TRUNCATED_STD
        assert np.abs(values).max() <= bound * (1 + 1e-6)
        assert np.abs(values).max() > 0.98 * bound
    if spec["kind"] == "normal":
        assert np.abs(values).max() > 3.5 * spec["std"]  # not truncated


def test_defaults_float32():
    assert initializers.get("glorot_uniform")((3, 4)).dtype == torch.float32
    assert initializers.get("he_normal")((3, 4), dtype="float64").dtype == torch.float64


@pytest.mark.parametrize("name, value", [("zeros", 0.0), ("zero", 0.0), ("ones", 1.0),
                                         ("one", 1.0)])
def test_constant_initializers(name, value):
    assert torch.equal(initializers.get(name)((2, 3)), torch.full((2, 3), value))
    assert torch.equal(initializers.Constant(3.5)((4,)), torch.full((4,), 3.5))


@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (3, 3, 4, 8)])
def test_orthogonal(shape):
    values = initializers.get("orthogonal")(shape, dtype="float64")
    rows = values.reshape(-1, shape[-1])  # Keras flattens leading axes into rows
    if rows.shape[0] >= rows.shape[1]:
        torch.testing.assert_close(rows.T @ rows, torch.eye(rows.shape[1], dtype=torch.float64))
    else:
        torch.testing.assert_close(rows @ rows.T, torch.eye(rows.shape[0], dtype=torch.float64))
    scaled = initializers.Orthogonal(gain=2.0, seed=1)((10, 10), dtype="float64")
    torch.testing.assert_close(scaled.T @ scaled, 4 * torch.eye(10, dtype=torch.float64))


def test_identity():
    torch.testing.assert_close(initializers.Identity(gain=3.0)((2, 3)),
                               torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]]))


@pytest.mark.parametrize("mode, distribution, fans, check", [
    ("fan_in", "untruncated_normal", FAN_IN, "std"),
    ("fan_out", "uniform", FAN_OUT, "uniform"),
    ("fan_avg", "truncated_normal", (FAN_IN + FAN_OUT) / 2, "std"),
])
def test_variance_scaling(mode, distribution, fans, check):
    values = initializers.VarianceScaling(scale=3.0, mode=mode, distribution=distribution,
                                          seed=0)(SHAPE, dtype="float64").numpy()
    std = math.sqrt(3.0 / fans)
    if check == "uniform":
        limit = math.sqrt(3 * 3.0 / fans)
        assert np.abs(values).max() <= limit
    np.testing.assert_allclose(values.std(), std, rtol=0.01)


def test_fans_follow_keras_for_convolution_kernels():
    # Conv2D kernel (kh, kw, in, out): receptive field 3*3.
    assert initializers.compute_fans((3, 3, 16, 32)) == (144, 288)
    assert initializers.compute_fans((5, 7)) == (5, 7)
    assert initializers.compute_fans((4,)) == (4, 4)
    values = initializers.get("he_uniform")((3, 3, 16, 32))
    assert values.abs().max() <= math.sqrt(6 / 144)


@pytest.mark.parametrize("cls", [initializers.GlorotUniform, initializers.HeNormal,
                                 initializers.RandomNormal, initializers.TruncatedNormal,
                                 initializers.Orthogonal, initializers.LecunUniform])
def test_seeds_reproduce_and_distinguish(cls):
    seeded = cls(seed=3)
    assert torch.equal(seeded((6, 5)), cls(seed=3)((6, 5)))
    assert torch.equal(seeded((6, 5)), seeded((6, 5)))  # Keras 3: a seeded initializer repeats
    assert not torch.equal(cls(seed=3)((6, 5)), cls(seed=4)((6, 5)))
    unseeded = cls()
    assert not torch.equal(unseeded((6, 5)), unseeded((6, 5)))


def test_seeded_initializer_makes_reproducible_layers():
    def make():
        dense = layers.Dense(4, kernel_initializer=initializers.GlorotUniform(seed=42))
        dense(torch.zeros(1, 3))
        return dense.get_weights()[0]

    np.testing.assert_array_equal(make(), make())


@pytest.mark.parametrize("initializer", [
    initializers.GlorotNormal(seed=1), initializers.RandomUniform(-1.0, 2.0, seed=2),
    initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=3), initializers.Constant(0.5),
    initializers.Orthogonal(gain=0.5, seed=4), initializers.TruncatedNormal(1.0, 0.2, seed=5),
])
def test_config_round_trip(initializer):
    clone = type(initializer).from_config(initializer.get_config())
    assert clone.get_config() == initializer.get_config()
    assert torch.equal(clone((5, 4)), initializer((5, 4)))
    assert initializers.get(initializers.serialize(initializer)).get_config() == \
        initializer.get_config()


def test_get_accepts_classes_and_callables():
    assert isinstance(initializers.get(initializers.HeUniform), initializers.HeUniform)
    assert initializers.get(None) is None

    def custom(shape, dtype=None):
        return torch.full(shape, 7.0)

    assert initializers.get(custom) is custom


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError, match=r"Unknown initializer name 'glorot'. Did you mean .*'glorot_uniform'.*Valid names are: .*he_normal.*zeros"):
        initializers.get("glorot")


@pytest.mark.parametrize("make, message", [
    (lambda: initializers.RandomUniform(1.0, 0.0), "`maxval` must be >= `minval`. Received: minval=1.0, maxval=0.0."),
    (lambda: initializers.VarianceScaling(scale=0), "`scale` must be positive. Received: scale=0."),
    (lambda: initializers.VarianceScaling(mode="fan"), "`mode` must be one of ('fan_in', 'fan_out', 'fan_avg'). Received: mode='fan'."),
    (lambda: initializers.VarianceScaling(distribution="gamma"), "`distribution` must be one of"),
    (lambda: initializers.Orthogonal()((5,)), "The Orthogonal initializer needs a shape of at least 2 dimensions. Received: shape=(5,)."),
    (lambda: initializers.Identity()((2, 2, 2)), "The Identity initializer needs a 2-D shape. Received: shape=(2, 2, 2)."),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()
