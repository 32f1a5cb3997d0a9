"""lamina.random: sample statistics against the distributions' closed forms, determinism with
int seeds and SeedGenerators, ranges, and a SeedGenerator's state saved with its layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

import lamina
from lamina import random


def test_normal_and_uniform_moments_and_ranges():
    x = random.normal((200_000,), mean=2.0, stddev=3.0, seed=1).numpy()
    assert x.dtype == np.float32
    assert abs(x.mean() - 2.0) < 0.03 and abs(x.std() - 3.0) < 0.03
    u = random.uniform((200_000,), minval=-1.0, maxval=3.0, seed=2).numpy()
    assert u.min() >= -1.0 and u.max() < 3.0
    assert abs(u.mean() - 1.0) < 0.02 and abs(u.var() - 16 / 12) < 0.02


def test_truncated_normal_matches_scipy():
    x = random.truncated_normal((100_000,), mean=1.0, stddev=2.0, seed=3, dtype="float64")
    assert x.dtype == torch.float64
    x = x.numpy()
    assert x.min() >= -3.0 and x.max() <= 5.0
    reference = scipy.stats.truncnorm(-2, 2, loc=1.0, scale=2.0)
    assert abs(x.mean() - reference.mean()) < 0.02 and abs(x.std() - reference.std()) < 0.02
    assert scipy.stats.kstest(x[:5000], reference.cdf).pvalue > 1e-3


def test_randint_range_dtype_and_uniformity():
    x = random.randint((60_000,), 3, 9, seed=4)
    assert x.dtype == torch.int32
    counts = np.bincount(x.numpy() - 3, minlength=6)
    assert x.min() >= 3 and x.max() <= 8
    assert scipy.stats.chisquare(counts).pvalue > 1e-3
    with pytest.raises(ValueError, match="maxval"):
        random.randint((2,), 5, 5)


def test_gamma_beta_binomial_moments():
    g = random.gamma((100_000,), alpha=3.0, seed=5).numpy()
    assert abs(g.mean() - 3.0) < 0.05 and abs(g.var() - 3.0) < 0.1
    b = random.beta((100_000,), alpha=2.0, beta=5.0, seed=6).numpy()
    assert abs(b.mean() - 2 / 7) < 0.005 and abs(b.var() - 10 / (49 * 8)) < 0.002
    n = random.binomial((100_000,), counts=10, probabilities=0.3, seed=7).numpy()
    assert abs(n.mean() - 3.0) < 0.03 and abs(n.var() - 2.1) < 0.05
    assert n.min() >= 0 and n.max() <= 10 and np.all(n == np.round(n))


def test_categorical_follows_softmax():
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, -5.0]])
    samples = random.categorical(logits, 20_000, seed=8)
    assert samples.shape == (2, 20_000) and samples.dtype == torch.int32
    assert abs(samples[0].float().mean().item() - 0.75) < 0.02
    assert samples[1].float().mean().item() < 0.01


def test_dropout_rate_scale_and_noise_shape():
    x = torch.ones(400, 500)
    y = random.dropout(x, 0.3, seed=9)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    shared = random.dropout(torch.ones(4, 6, 5), 0.5, noise_shape=(None, 1, 5), seed=10)
    assert torch.equal(shared, shared[:, :1].expand_as(shared))


def test_shuffle_is_a_permutation_along_the_axis():
    x = torch.arange(40).reshape(8, 5)
    y = random.shuffle(x, axis=0, seed=11)
    assert sorted(map(tuple, y.tolist())) == sorted(map(tuple, x.tolist()))
    assert not torch.equal(x, y)
    z = random.shuffle(x, axis=1, seed=11)
    assert torch.equal(torch.sort(z, dim=1).values, x)


def test_int_seeds_are_deterministic_and_independent_of_global_state():
    a = random.normal((5,), seed=42)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    b = random.normal((5,), seed=42)
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())  # a seeded draw leaves the global RNG alone
    assert not torch.equal(a, random.normal((5,), seed=43))


def test_seed_generator_advances_and_repeats_from_the_same_seed():
    gen = random.SeedGenerator(7)
    first, second = random.uniform((4,), seed=gen), random.uniform((4,), seed=gen)
    assert not torch.equal(first, second)
    assert gen.state.tolist() == [7, 2]
    again = random.SeedGenerator(7)
    assert torch.equal(random.uniform((4,), seed=again), first)
    with pytest.raises(ValueError, match="seed"):
        random.normal((2,), seed="7")


def test_none_seed_follows_set_random_seed():
    lamina.set_random_seed(3)
    a = random.normal((4,))
    lamina.set_random_seed(3)
    assert torch.equal(a, random.normal((4,)))


class NoisyLayer(lamina.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = random.SeedGenerator(5)

    def call(self, inputs):
        return inputs + random.normal(inputs.shape, seed=self.seed_generator)


def test_seed_generator_state_is_a_saved_non_trainable_weight():
    layer = NoisyLayer()
    layer(torch.zeros(2, 3))
    assert any(w is layer.seed_generator.state for w in layer.non_trainable_weights)
    assert not layer.trainable_weights
    layer(torch.zeros(2, 3))
    saved = layer.get_weights()
    expected = layer(torch.zeros(2, 3))
    fresh = NoisyLayer()
    fresh(torch.zeros(2, 3))
    fresh.set_weights(saved)
    torch.testing.assert_close(fresh(torch.zeros(2, 3)), expected)


def test_random_ops_refuse_symbolic_tensors():
    x = lamina.Input((3,))
    with pytest.raises(TypeError, match="layers.Dropout"):
        random.dropout(x, 0.5)
