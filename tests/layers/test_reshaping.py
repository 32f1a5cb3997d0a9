"""Reshaping layers: Flatten, Reshape, Permute, RepeatVector, against torch view/permute
references and Keras's output shapes."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from support.layer_test import (
    LayerCase,
    generic_layer_tests,
    single_thread,  # noqa: F401 - a fixture
)

import lamina
from lamina import layers
from lamina.errors import ShapeError

CASES = [
    LayerCase("flatten", layers.Flatten, (2, 3, 4), (2, 12),
              reference=lambda layer, x: x.reshape(x.shape[0], -1)),
    LayerCase("flatten_4d", layers.Flatten, (2, 3, 4, 5), (2, 60),
              reference=lambda layer, x: x.reshape(x.shape[0], -1)),
    LayerCase("flatten_channels_first",
              functools.partial(layers.Flatten, data_format="channels_first"), (2, 3, 4, 5),
              (2, 60), reference=lambda layer, x: x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)),
    LayerCase("flatten_2d", layers.Flatten, (2, 3), (2, 3), reference=lambda layer, x: x),
    LayerCase("reshape", functools.partial(layers.Reshape, (4, 3), name="r"), (2, 3, 4), (2, 4, 3),
              reference=lambda layer, x: x.reshape(2, 4, 3),
              bad_inputs=[((2, 3, 5), ShapeError,
                           re.escape("Layer 'r' (Reshape) cannot reshape an input of shape "
                                     "(2, 3, 5) to target_shape (4, 3)."))]),
    LayerCase("reshape_inferred_axis", functools.partial(layers.Reshape, (-1, 2)), (2, 3, 4),
              (2, 6, 2), reference=lambda layer, x: x.reshape(2, 6, 2)),
    LayerCase("permute", functools.partial(layers.Permute, (2, 1)), (2, 3, 4), (2, 4, 3),
              reference=lambda layer, x: x.transpose(1, 2)),
    LayerCase("permute_3", functools.partial(layers.Permute, (3, 1, 2)), (2, 3, 4, 5),
              (2, 5, 3, 4), reference=lambda layer, x: x.permute(0, 3, 1, 2)),
    LayerCase("repeat_vector", functools.partial(layers.RepeatVector, 3, name="rv"), (2, 4),
              (2, 3, 4), reference=lambda layer, x: x[:, None, :].repeat(1, 3, 1)),
]


globals().update(generic_layer_tests(CASES))


def test_flatten_channels_first_matches_the_channels_last_model():
    # A Dense after Flatten sees features in the same order whatever the data format (Keras).
    channels_first = torch.randn(2, 3, 4, 5)
    channels_last = channels_first.permute(0, 2, 3, 1)
    torch.testing.assert_close(layers.Flatten(data_format="channels_first")(channels_first),
                               layers.Flatten()(channels_last))


def test_flatten_follows_the_global_image_data_format():
    lamina.config.set_image_data_format("channels_first")
    try:
        assert layers.Flatten().data_format == "channels_first"
    finally:
        lamina.config.set_image_data_format("channels_last")
    assert layers.Flatten().get_config()["data_format"] == "channels_last"


def test_reshape_declares_unknown_axes_as_none():
    inputs = lamina.Input(shape=(None, 4))
    assert layers.Reshape((-1, 2))(inputs).shape == (None, None, 2)
    assert layers.Flatten().compute_output_shape((None, None, 4)) == (None, None)


@pytest.mark.parametrize("make, message", [
    (lambda: layers.Reshape((0, 3)), "`target_shape` must hold positive sizes and at most one -1. Received: target_shape=(0, 3)."),
    (lambda: layers.Reshape((-1, -1)), "`target_shape` must hold positive sizes and at most one -1. Received: target_shape=(-1, -1)."),
    (lambda: layers.Permute((1, 1)), "`dims` must be a permutation of 1..N (the batch axis 0 is not included). Received: dims=(1, 1)."),
    (lambda: layers.Permute((0, 1)), "`dims` must be a permutation of 1..N (the batch axis 0 is not included). Received: dims=(0, 1)."),
    (lambda: layers.RepeatVector(0), "`n` must be a positive integer. Received: n=0."),
    (lambda: layers.Flatten(data_format="nhwc"), "`data_format` must be 'channels_last' or 'channels_first'. Received: data_format='nhwc'."),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_reshape_to_an_incompatible_size_names_the_layer_and_the_sizes():
    with pytest.raises(ShapeError, match=re.escape("Layer 'r' (Reshape) cannot reshape an input of shape (None, 3, 4) (12 values per sample) to target_shape (5,).")):
        layers.Reshape((5,), name="r")(lamina.Input(shape=(3, 4)))
    with pytest.raises(ShapeError, match=r"to target_shape \(5, -1\)"):
        layers.Reshape((5, -1))(torch.zeros(2, 3, 4))


def test_repeat_vector_needs_rank_two():
    with pytest.raises(ShapeError, match=re.escape("Input 0 of layer 'rv' (RepeatVector) is incompatible: expected rank 2 (batch, features), but received an input of shape (2, 3, 4).")):
        layers.RepeatVector(2, name="rv")(torch.zeros(2, 3, 4))
