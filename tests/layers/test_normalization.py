"""Normalization layers: BatchNormalization (against a hand-written Keras-semantics reference over
several training steps), LayerNormalization, GroupNormalization, UnitNormalization."""

from __future__ import annotations

import functools
import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.layer_test import (
    LayerCase,
    generic_layer_tests,
    check_bad_inputs,
    ids,
    single_thread,  # noqa: F401 - a fixture
)

import lamina
from lamina import layers
from lamina.errors import ShapeError


def _weights(layer):
    return [torch.as_tensor(w) for w in layer.get_weights()]


def batch_norm_inference(axis):
    def reference(layer, x):
        gamma, beta, mean, variance = _weights(layer)
        shape = [1] * x.ndim
        shape[axis] = -1
        return (gamma.reshape(shape) * (x - mean.reshape(shape))
                / torch.sqrt(variance.reshape(shape) + layer.epsilon) + beta.reshape(shape))

    return reference


# The references below are the formulas with Keras's defaults written in (epsilon=1e-3,
# groups=32, the last axis), never read back from the layer: a changed default fails them.
KERAS_EPSILON = 1e-3


def _over(axes, x, weight):
    """`weight`, whose shape is that of x's `axes`, broadcast against x."""
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    return weight.reshape(shape)


def layer_norm(axes, epsilon=KERAS_EPSILON):
    def reference(layer, x):
        gamma, beta = _weights(layer)
        positive = [a % x.ndim for a in axes]
        mean = x.mean(dim=positive, keepdim=True)
        variance = ((x - mean) ** 2).mean(dim=positive, keepdim=True)
        return (x - mean) / torch.sqrt(variance + epsilon) * _over(positive, x, gamma) + _over(
            positive, x, beta)

    return reference


def rms_norm(epsilon):
    def reference(layer, x):
        (gamma,) = _weights(layer)
        return x / torch.sqrt(x.square().mean(-1, keepdim=True) + epsilon) * gamma

    return reference


def group_norm(groups, epsilon=KERAS_EPSILON):
    """Wu & He's group normalization over a channels-last input: channels split into `groups`
    contiguous blocks, each normalized over its channels and every spatial position."""
    def reference(layer, x):
        gamma, beta = _weights(layer)
        channels = x.shape[-1]
        grouped = x.reshape(*x.shape[:-1], groups, channels // groups)
        axes = [*range(1, x.ndim - 1), x.ndim]  # spatial axes and the channels within a group
        mean = grouped.mean(dim=axes, keepdim=True)
        variance = ((grouped - mean) ** 2).mean(dim=axes, keepdim=True)
        normalized = ((grouped - mean) / torch.sqrt(variance + epsilon)).reshape(x.shape)
        return normalized * gamma + beta

    return reference


CASES = [
    LayerCase("batch_norm", layers.BatchNormalization, (8, 5), (8, 5), params=20,
              reference=batch_norm_inference(-1)),
    LayerCase("batch_norm_images", functools.partial(layers.BatchNormalization, momentum=0.9),
              (4, 3, 3, 2), (4, 3, 3, 2), params=8, reference=batch_norm_inference(-1)),
    LayerCase("batch_norm_axis_1", functools.partial(layers.BatchNormalization, axis=1),
              (4, 3, 5), (4, 3, 5), params=12, reference=batch_norm_inference(1)),
    LayerCase("layer_norm", layers.LayerNormalization, (2, 3, 6), (2, 3, 6), params=12,
              reference=layer_norm([-1])),
    LayerCase("layer_norm_two_axes", functools.partial(layers.LayerNormalization, axis=[1, 2],
                                                       epsilon=1e-6),
              (2, 3, 4), (2, 3, 4), params=24, reference=layer_norm([1, 2], epsilon=1e-6)),
    LayerCase("layer_norm_axis_1", functools.partial(layers.LayerNormalization, axis=1),
              (2, 3, 4), (2, 3, 4), params=6, reference=layer_norm([1])),
    LayerCase("rms_norm", functools.partial(layers.LayerNormalization, rms_scaling=True),
              (2, 5), (2, 5), params=5, reference=rms_norm(KERAS_EPSILON)),
    LayerCase("group_norm", functools.partial(layers.GroupNormalization, groups=2, name="gn",
                                              gamma_regularizer="l2", beta_constraint="max_norm"),
              (2, 3, 4), (2, 3, 4), params=8, reference=group_norm(2),
              bad_inputs=[((2, 3, 6), ShapeError, re.escape(
                  "Input 0 of layer 'gn' (GroupNormalization) is incompatible: expected axis 2 to "
                  "have size 4, but received an input of shape (2, 3, 6)."))]),
    LayerCase("group_norm_keras_defaults", layers.GroupNormalization, (2, 3, 64), (2, 3, 64),
              params=128, reference=group_norm(32)),
    LayerCase("group_norm_instance", functools.partial(layers.GroupNormalization, groups=4),
              (2, 5, 4), (2, 5, 4), params=8, reference=group_norm(4)),
    LayerCase("group_norm_minus_one_is_instance_norm",
              functools.partial(layers.GroupNormalization, groups=-1),
              (2, 5, 4), (2, 5, 4), params=8, reference=group_norm(4)),
    LayerCase("rms_normalization", layers.RMSNormalization, (2, 3, 6), (2, 3, 6), params=6,
              reference=lambda layer, x: x / torch.sqrt(
                  x.square().mean(-1, keepdim=True) + 1e-6) * _weights(layer)[0]),
    LayerCase("rms_normalization_axis_1", functools.partial(layers.RMSNormalization, axis=1,
                                                            epsilon=1e-3),
              (2, 3, 4), (2, 3, 4), params=3,
              reference=lambda layer, x: x / torch.sqrt(
                  x.square().mean(1, keepdim=True) + 1e-3) * _weights(layer)[0][:, None]),
    LayerCase("unit_norm", layers.UnitNormalization, (2, 3, 4), (2, 3, 4),
              reference=lambda layer, x: F.normalize(x, dim=-1)),
]
BAD_INPUT_CASES = [
    LayerCase("batch_norm_features", functools.partial(layers.BatchNormalization, name="bn"),
              (4, 3), (4, 3), bad_inputs=[((4, 5), ShapeError, re.escape(
                  "Input 0 of layer 'bn' (BatchNormalization) is incompatible: expected axis 1 to "
                  "have size 3, but received an input of shape (4, 5)."))]),
    LayerCase("layer_norm_features", functools.partial(layers.LayerNormalization, name="ln"),
              (2, 3, 4), (2, 3, 4), bad_inputs=[((2, 3, 5), ShapeError, re.escape(
                  "Input 0 of layer 'ln' (LayerNormalization) is incompatible: expected axis 2 to "
                  "have size 4, but received an input of shape (2, 3, 5)."))]),
]


globals().update(generic_layer_tests(CASES))


def test_rms_normalization_against_numpy_float64_and_its_errors():
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    layer = layers.RMSNormalization(axis=[1, 2])
    layer.build(x.shape)
    scale = np.random.default_rng(1).normal(size=(4, 5))
    layer.set_weights([scale.astype(np.float32)])
    expected = x / np.sqrt((x ** 2).mean(axis=(1, 2), keepdims=True) + 1e-6) * scale
    got = layer(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"`epsilon` must be a positive number. Received: "
                                         r"epsilon=0"):
        layers.RMSNormalization(epsilon=0)
    with pytest.raises(ShapeError, match=r"axis=3 is out of range for an input of shape"):
        layers.RMSNormalization(axis=3)(torch.zeros(2, 3))


# ---------------------------------------------------------- BatchNormalization, step by step


def keras_batch_norm(batches, gamma, beta, momentum, epsilon, axis):
    """Keras's BatchNormalization written out in numpy float64: batch statistics in training,
    `moving = moving * momentum + batch * (1 - momentum)` with the biased batch variance."""
    moving_mean, moving_variance = np.zeros_like(gamma), np.ones_like(gamma)
    outputs = []
    for x in batches:
        reduce = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        shape = [1] * x.ndim
        shape[axis] = -1
        mean, variance = x.mean(axis=reduce), x.var(axis=reduce)
        outputs.append(gamma.reshape(shape) * (x - mean.reshape(shape))
                       / np.sqrt(variance.reshape(shape) + epsilon) + beta.reshape(shape))
        moving_mean = moving_mean * momentum + mean * (1 - momentum)
        moving_variance = moving_variance * momentum + variance * (1 - momentum)
    return outputs, moving_mean, moving_variance


@pytest.mark.parametrize("shape, axis, momentum, epsilon", [
    ((16, 5), -1, 0.99, 1e-3),
    ((6, 4, 4, 3), -1, 0.9, 1e-3),
    ((6, 3, 7), 1, 0.5, 1e-5),
])
def test_batch_norm_follows_keras_over_several_training_steps(shape, axis, momentum, epsilon):
    rng = np.random.default_rng(0)
    batches = [rng.normal(2.0, 3.0, size=shape) for _ in range(4)]
    features = shape[axis]
    gamma, beta = rng.uniform(0.5, 2.0, features), rng.normal(size=features)
    layer = layers.BatchNormalization(axis=axis, momentum=momentum, epsilon=epsilon,
                                      dtype="float64")
    layer(torch.as_tensor(batches[0]))
    layer.set_weights([gamma, beta, np.zeros(features), np.ones(features)])
    layer.train()
    got = [layer(torch.as_tensor(x)).detach().numpy() for x in batches]
    expected, moving_mean, moving_variance = keras_batch_norm(batches, gamma, beta, momentum,
                                                              epsilon, axis)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.get_weights()[2], moving_mean, rtol=1e-10)
    np.testing.assert_allclose(layer.get_weights()[3], moving_variance, rtol=1e-10)
    # Inference uses the moving statistics.
    layer.eval()
    x = batches[0]
    bshape = [1] * x.ndim
    bshape[axis] = -1
    inference = gamma.reshape(bshape) * (x - moving_mean.reshape(bshape)) / np.sqrt(
        moving_variance.reshape(bshape) + epsilon) + beta.reshape(bshape)
    np.testing.assert_allclose(layer(torch.as_tensor(x)).detach().numpy(), inference,
                               rtol=1e-10)


def test_batch_norm_keras_defaults():
    config = layers.BatchNormalization().get_config()
    assert (config["axis"], config["momentum"], config["epsilon"]) == (-1, 0.99, 1e-3)
    assert config["center"] and config["scale"]


def test_frozen_batch_norm_runs_in_inference_mode_and_keeps_its_statistics():
    layer = layers.BatchNormalization()
    x = torch.randn(8, 3) * 4 + 2
    layer(x)
    layer.train()
    layer(x)  # one training step moves the statistics away from (0, 1)
    layer.trainable = False
    before = [w.copy() for w in layer.get_weights()]
    out = layer(x)  # still in train() mode, but frozen: inference
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    gamma, beta, mean, variance = (torch.as_tensor(w) for w in before)
    torch.testing.assert_close(out, gamma * (x - mean) / torch.sqrt(variance + 1e-3) + beta)


def test_batch_norm_in_a_frozen_model_does_not_update():
    model = lamina.Sequential([layers.Dense(3, input_shape=(2,)), layers.BatchNormalization()])
    model.trainable = False
    model.train()
    model(torch.randn(16, 2))
    bn = model.layers[1]
    np.testing.assert_array_equal(bn.get_weights()[2], np.zeros(3, dtype=np.float32))


def test_batch_norm_without_center_and_scale_has_only_statistics():
    layer = layers.BatchNormalization(center=False, scale=False)
    layer(torch.zeros(2, 4))
    assert layer.trainable_weights == [] and layer.count_params() == 8


# ------------------------------------------------------------------------------- the sheet


def test_the_sheets_normalization_arguments():
    bn = layers.BatchNormalization(momentum=0.99, epsilon=0.001)
    ln = layers.LayerNormalization(epsilon=1e-6)
    x = torch.randn(4, 6, dtype=torch.float64)
    bn.to(torch.float64)
    bn.train()
    torch.testing.assert_close(bn(x), (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-3))
    torch.testing.assert_close(ln(x.float()).double(), F.layer_norm(x, (6,), eps=1e-6),
                               atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("case", BAD_INPUT_CASES, ids=ids(BAD_INPUT_CASES))
def test_wrong_feature_size_after_build(case):
    check_bad_inputs(case)


@pytest.mark.parametrize("make, error, message", [
    (lambda: layers.BatchNormalization(momentum=1.5), ValueError,
     "`momentum` must be in [0, 1]. Received: momentum=1.5."),
    (lambda: layers.BatchNormalization(epsilon=0), ValueError,
     "`epsilon` must be positive. Received: epsilon=0."),
    (lambda: layers.BatchNormalization(axis=[1, 2]), TypeError,
     "`axis` must be an integer. Received: axis=[1, 2]."),
    (lambda: layers.LayerNormalization(epsilon=-1.0), ValueError,
     "`epsilon` must be positive. Received: epsilon=-1.0."),
    (lambda: layers.GroupNormalization(groups=0), ValueError,
     "`groups` must be a positive integer. Received: groups=0."),
])
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


def test_shape_errors_name_the_layer():
    with pytest.raises(ShapeError, match=re.escape("Layer 'bn' (BatchNormalization): axis 3 is out of range for an input of shape (2, 3).")):
        layers.BatchNormalization(axis=3, name="bn")(torch.zeros(2, 3))
    with pytest.raises(ShapeError, match=re.escape("Layer 'bn2' (BatchNormalization) needs the feature axis -1 to be known. Received an input of shape (None, None).")):
        layers.BatchNormalization(name="bn2")(lamina.Input(shape=(None,)))
    with pytest.raises(ShapeError, match=re.escape("Layer 'gn' (GroupNormalization): the number of channels (6) must be a multiple of groups=4.")):
        layers.GroupNormalization(groups=4, name="gn")(torch.zeros(2, 6))
    with pytest.raises(ShapeError, match=r"Layer 'ln' \(LayerNormalization\) needs the normalized axes -1 to be known"):
        layers.LayerNormalization(name="ln")(lamina.Input(shape=(None,)))


def test_batch_norm_moving_variance_is_exact_when_the_variance_is_far_below_epsilon():
    # var ~1e-10 against eps 1e-3: 1/sqrt(var + eps) keeps no digit of var in float32.
    rng = np.random.default_rng(5)
    x = (1.0 + 1e-5 * rng.normal(size=(64, 3))).astype("float32")
    layer = layers.BatchNormalization(momentum=0.0)
    layer.train()
    layer(torch.as_tensor(x), training=True)
    x64 = x.astype("float64")
    np.testing.assert_allclose(layer.moving_variance.detach().numpy(), x64.var(axis=0),
                               rtol=1e-3)
    np.testing.assert_allclose(layer.moving_mean.detach().numpy(), x64.mean(axis=0), rtol=1e-6)


def test_synchronized_batch_norm_without_a_process_group_is_the_local_batch_norm():
    rng = np.random.default_rng(6)
    x = torch.as_tensor(rng.normal(size=(8, 3)))
    plain = layers.BatchNormalization(dtype="float64")
    synced = layers.BatchNormalization(dtype="float64", synchronized=True)
    assert torch.equal(plain(x, training=True), synced(x, training=True))


@pytest.mark.skipif(not hasattr(os, "fork") or not torch.distributed.is_available(),
                    reason="needs fork and torch.distributed")
def test_synchronized_batch_norm_normalizes_the_global_batch_of_two_processes(tmp_path):
    import multiprocessing

    from tests.layers import bn_sync_worker

    rng = np.random.default_rng(7)
    data = rng.normal(1.0, 2.0, size=(10, 3))  # uneven halves would do too: 5 and 5
    data[:5] += 4.0  # the two processes' halves have different statistics
    gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
    upstream = rng.normal(size=(10, 3))
    # fork: the children share the imported library (spawn would import it twice more).
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=bn_sync_worker.run, args=(
        rank, 2, str(tmp_path / "init"), data, gamma, beta, upstream, results))
        for rank in range(2)]
    for worker in workers:
        worker.start()
    found = sorted(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    outputs = np.concatenate([r[1] for r in found])
    input_grad = np.concatenate([r[2] for r in found])
    expected, moving_mean, moving_variance = keras_batch_norm([data], gamma, beta, 0.5, 1e-3, -1)
    np.testing.assert_allclose(outputs, expected[0], rtol=1e-10, atol=1e-12)
    # The gradients of the global loss, from torch's batch norm over the whole batch.
    x = torch.tensor(data, requires_grad=True)
    g = torch.tensor(gamma, requires_grad=True)
    reference = torch.nn.functional.batch_norm(x, None, None, g, torch.as_tensor(beta), True,
                                               0.0, 1e-3)
    (reference * torch.as_tensor(upstream)).sum().backward()
    np.testing.assert_allclose(input_grad, x.grad.numpy(), rtol=1e-8, atol=1e-10)
    # Each process's gamma gradient is its share; DDP's all-reduce sums them into the global one.
    np.testing.assert_allclose(found[0][3] + found[1][3], g.grad.numpy(), rtol=1e-8)
    for rank in range(2):
        np.testing.assert_allclose(found[rank][4], moving_mean, rtol=1e-10)
        np.testing.assert_allclose(found[rank][5], moving_variance, rtol=1e-10)


def test_batch_norm_trains_on_a_single_value_per_feature_as_keras_does():
    # Zero batch variance: the output is beta and the moving variance decays towards 0.
    layer = layers.BatchNormalization(momentum=0.5, dtype="float64")
    x = torch.tensor([[1.5, -2.0]], dtype=torch.float64)
    layer(x)
    layer.set_weights([np.array([2.0, 3.0]), np.array([0.25, -1.0]), np.zeros(2), np.ones(2)])
    np.testing.assert_allclose(layer(x, training=True).detach().numpy(), [[0.25, -1.0]])
    np.testing.assert_allclose(layer.get_weights()[2], [0.75, -1.0])
    np.testing.assert_allclose(layer.get_weights()[3], [0.5, 0.5])
