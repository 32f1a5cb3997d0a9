"""Keras's Variable API on the weights `add_weight` creates, and what torch still sees."""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import lamina
from lamina import layers
from lamina.layers.variable import StateVariable, Variable


def _built(layer, shape):
    layer.build(shape)
    return layer


def test_trainable_weights_are_parameters_and_state_is_buffers():
    bn = _built(layers.BatchNormalization(name="bn"), (None, 3))
    assert set(bn._parameters) == {"gamma", "beta"}
    assert set(bn._buffers) == {"moving_mean", "moving_variance"}
    assert all(type(w) is Variable and w.requires_grad for w in bn.trainable_weights)
    assert all(type(w) is StateVariable and not w.requires_grad for w in bn.non_trainable_weights)
    assert [w.path for w in bn.weights] == ["bn/gamma", "bn/beta", "bn/moving_mean",
                                            "bn/moving_variance"]
    # Ops return plain tensors and state_dict holds plain tensors (weights_only loads take them).
    assert type(bn.gamma * 2) is torch.Tensor
    assert all(type(t) is torch.Tensor for t in bn.state_dict().values())
    buffer = io.BytesIO()
    torch.save(bn.state_dict(), buffer)
    buffer.seek(0)
    assert set(torch.load(buffer, weights_only=True)) == set(bn.state_dict())


def test_assign_is_in_place_without_gradient_and_checks_the_shape():
    dense = _built(layers.Dense(2, name="d"), (None, 3))
    kernel = dense.kernel
    storage = kernel.data_ptr()
    kernel.assign(torch.ones(3, 2, requires_grad=True) * 3)
    kernel.assign_sub(1.0)
    kernel.assign_add(np.full((3, 2), 0.5))
    assert kernel.data_ptr() == storage and kernel.grad_fn is None and kernel.is_leaf
    np.testing.assert_array_equal(kernel.numpy(), np.full((3, 2), 2.5, np.float32))
    assert kernel.numpy() is not kernel.numpy()  # copies: editing one leaves the weight
    with pytest.raises(ValueError, match=r"shape \(3,\) to variable 'd/kernel' of shape \(3, 2\)"):
        kernel.assign(np.zeros(3))
    kernel.trainable = False
    assert not kernel.requires_grad and dense.trainable_weights == [dense.bias]
    bn = _built(layers.BatchNormalization(name="bn"), (None, 2))
    with pytest.raises(ValueError, match="'bn/moving_mean' is a non-trainable weight"):
        bn.moving_mean.trainable = True


def test_conversion_copy_and_pickle_keep_the_api():
    bn = _built(layers.BatchNormalization(name="bn"), (None, 2))
    bn.moving_mean.assign([1.0, 2.0])
    bn.double()
    assert [type(w).__name__ for w in bn.weights] == ["Variable"] * 2 + ["StateVariable"] * 2
    assert bn.moving_mean.dtype == torch.float64 and bn.moving_mean.path == "bn/moving_mean"
    for clone in (copy.deepcopy(bn), pickle.loads(pickle.dumps(bn))):
        assert [w.path for w in clone.weights] == [w.path for w in bn.weights]
        assert set(clone._buffers) == {"moving_mean", "moving_variance"}
        np.testing.assert_array_equal(clone.moving_mean.numpy(), [1.0, 2.0])
        clone.moving_mean.assign([5.0, 5.0])
        np.testing.assert_array_equal(bn.moving_mean.numpy(), [1.0, 2.0])


def test_an_optimizer_trains_variables_and_reassigning_an_attribute_keeps_the_kind():
    class Counter(layers.Layer):
        def build(self, input_shape):
            self.count = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                         name="count")
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                         name="scale")

        def call(self, inputs):
            self.count.assign_add(1.0)
            return inputs * self.scale

    model = lamina.Sequential([lamina.Input((2,)), Counter()])
    counter = model.layers[0]
    assert set(counter._buffers) == {"count"} and set(counter._parameters) == {"scale"}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = model(torch.ones(4, 2)).sum()
    loss.backward()
    optimizer.step()
    np.testing.assert_allclose(counter.scale.numpy(), [-1.0, -1.0])  # 1 - 0.5 * 4
    assert counter.count.numpy() == 1.0
    assert [n for n, _ in model.named_parameters()] == ["counter.scale"]
    assert isinstance(counter.scale, nn.Parameter)
