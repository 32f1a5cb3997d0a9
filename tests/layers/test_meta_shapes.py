"""Shapes inferred on the meta device equal the shapes of real calls, for every registered layer.

One row per layer class of the registry: a fresh layer and its inputs (shape without the batch
axis, None for a free axis). The oracle is the layer itself on real data: called eagerly at two
batch sizes and two sizes of each free axis, an output axis whose size changes must be None in
the inferred shape, one that does not must be that size. Every row also says whether its shapes
are found on meta or need the real-tensor fallback, so a layer that silently stops running on
meta (and so costs real arithmetic at every model construction) fails here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn

import lamina
from lamina import _registry, _symbolic, layers
from lamina.applications._blocks import LayerScale, StochasticDepth
from lamina.applications.gpt import GPT
from lamina.applications.inception_resnet_v2 import CustomScaleLayer

Tensor = torch.Tensor


@dataclasses.dataclass
class Row:
    make: Callable[[], Any]
    inputs: list[tuple]            # shapes without the batch axis; None marks a free axis
    dtype: str = "float32"         # of every input
    high: int = 4                  # integer inputs are drawn from [1, high)
    as_list: bool = False          # the layer takes its inputs as one list (merging layers)
    needs_real: bool = False       # the shape is found on real tensors, not on meta
    strings: bool = False          # the layer takes strings (lookup, text vectorization)


def _rows() -> dict[str, Row]:
    seq, img, vol = [(6, 4)], [(8, 8, 3)], [(4, 4, 4, 2)]
    pair = [(6, 4), (6, 4)]
    return {
        "Activation": Row(lambda: layers.Activation("relu"), [(None, 4)]),
        "Add": Row(layers.Add, pair, as_list=True),
        "AdditiveAttention": Row(layers.AdditiveAttention, pair, as_list=True),
        "Attention": Row(layers.Attention, [(5, 4), (None, 4)], as_list=True),
        "Average": Row(layers.Average, pair, as_list=True),
        "AveragePooling1D": Row(layers.AveragePooling1D, [(None, 3)]),
        "AveragePooling2D": Row(layers.AveragePooling2D, img),
        "AveragePooling3D": Row(layers.AveragePooling3D, vol),
        "BatchNormalization": Row(layers.BatchNormalization, [(None, 4)]),
        "Bidirectional": Row(lambda: layers.Bidirectional(layers.LSTM(3, return_sequences=True)),
                             [(None, 4)]),
        "CategoryEncoding": Row(lambda: layers.CategoryEncoding(num_tokens=5,
                                                                output_mode="multi_hot"),
                                [(3,)], dtype="int64", needs_real=True),
        "CenterCrop": Row(lambda: layers.CenterCrop(4, 6), img),
        "Concatenate": Row(layers.Concatenate, [(6, 4), (6, 2)], as_list=True),
        "Conv1D": Row(lambda: layers.Conv1D(5, 3), [(None, 4)]),
        "Conv1DTranspose": Row(lambda: layers.Conv1DTranspose(5, 3, strides=2), [(None, 4)]),
        "Conv2D": Row(lambda: layers.Conv2D(5, 3, padding="same"), [(None, None, 3)]),
        "Conv2DTranspose": Row(lambda: layers.Conv2DTranspose(5, 3, strides=2), img),
        "Conv3D": Row(lambda: layers.Conv3D(3, 2), vol),
        "Conv3DTranspose": Row(lambda: layers.Conv3DTranspose(3, 2), vol),
        "CustomScaleLayer": Row(lambda: CustomScaleLayer(0.2), pair, as_list=True),
        "Cropping1D": Row(lambda: layers.Cropping1D((1, 2)), seq),
        "Cropping2D": Row(lambda: layers.Cropping2D(((1, 2), (0, 1))), img),
        "Cropping3D": Row(layers.Cropping3D, [(4, 4, 4, 2)]),
        "Dense": Row(lambda: layers.Dense(3), [(None, 4)]),
        "DepthwiseConv1D": Row(lambda: layers.DepthwiseConv1D(3, depth_multiplier=2), seq),
        "DepthwiseConv2D": Row(lambda: layers.DepthwiseConv2D(3), img),
        "Discretization": Row(lambda: layers.Discretization(bin_boundaries=[0.0, 1.0]),
                              [(None, 3)]),
        "Dot": Row(lambda: layers.Dot(axes=-1), pair, as_list=True),
        "Dropout": Row(lambda: layers.Dropout(0.5), [(None, 4)]),
        "ELU": Row(layers.ELU, seq),
        "Embedding": Row(lambda: layers.Embedding(10, 4, mask_zero=True), [(None,)],
                         dtype="int64", high=10),
        "Flatten": Row(layers.Flatten, img),
        "GPT": Row(lambda: GPT(vocab_size=12, max_length=8, d_model=8, num_heads=2,
                               num_layers=1), [(8,)], dtype="int64", high=12),
        "GRU": Row(lambda: layers.GRU(3), [(None, 4)]),
        "GlobalAveragePooling1D": Row(layers.GlobalAveragePooling1D, [(None, 4)]),
        "GlobalAveragePooling2D": Row(layers.GlobalAveragePooling2D, img),
        "GlobalAveragePooling3D": Row(layers.GlobalAveragePooling3D, vol),
        "GlobalMaxPooling1D": Row(layers.GlobalMaxPooling1D, seq),
        "GlobalMaxPooling2D": Row(layers.GlobalMaxPooling2D, [(None, None, 3)]),
        "GlobalMaxPooling3D": Row(layers.GlobalMaxPooling3D, vol),
        "GroupNormalization": Row(lambda: layers.GroupNormalization(groups=2), seq),
        "Hashing": Row(lambda: layers.Hashing(4, output_mode="multi_hot"), [(3,)],
                       strings=True),
        "Hashing": Row(lambda: layers.Hashing(num_bins=3), [(3,)], dtype="int64", high=9),
        "Identity": Row(layers.Identity, seq),
        "IntegerLookup": Row(lambda: layers.IntegerLookup(vocabulary=[1, 2, 3]), [(3,)],
                             dtype="int64"),
        "LSTM": Row(lambda: layers.LSTM(3, return_sequences=True, return_state=True),
                    [(None, 4)]),
        "Lambda": Row(lambda: layers.Lambda(lambda x: torch.cat([x, x * 2], dim=-1)),
                      [(None, 4)]),
        "LayerNormalization": Row(layers.LayerNormalization, seq),
        "LayerScale": Row(lambda: LayerScale(0.1, 4), seq),
        "LeakyReLU": Row(layers.LeakyReLU, seq),
        "Masking": Row(layers.Masking, [(None, 4)]),
        "MaxPooling1D": Row(layers.MaxPooling1D, seq),
        "MaxPooling2D": Row(lambda: layers.MaxPooling2D(padding="same"), [(None, None, 3)]),
        "MaxPooling3D": Row(layers.MaxPooling3D, vol),
        "Maximum": Row(layers.Maximum, pair, as_list=True),
        "Minimum": Row(layers.Minimum, pair, as_list=True),
        "MultiHeadAttention": Row(lambda: layers.MultiHeadAttention(2, 3), [(6, 4), (None, 5)]),
        "Multiply": Row(layers.Multiply, pair, as_list=True),
        "Normalization": Row(lambda: layers.Normalization(mean=1.0, variance=4.0), seq),
        "PReLU": Row(layers.PReLU, seq),
        "Permute": Row(lambda: layers.Permute((2, 1)), seq),
        "PositionEmbedding": Row(lambda: layers.PositionEmbedding(6), seq),
        "PositionalEmbedding": Row(lambda: layers.PositionalEmbedding(6, 10, 4), [(6,)],
                                   dtype="int64", high=10),
        "PositionalEncoding": Row(layers.PositionalEncoding, seq),
        "RMSNormalization": Row(layers.RMSNormalization, seq),
        "RNN": Row(lambda: layers.RNN(layers.StackedRNNCells(
            [layers.LSTMCell(3), layers.GRUCell(2)])), [(None, 4)]),
        "RandomBrightness": Row(lambda: layers.RandomBrightness(0.2), img),
        "RandomContrast": Row(lambda: layers.RandomContrast(0.2), img),
        "RandomCrop": Row(lambda: layers.RandomCrop(4, 6), img),
        "RandomFlip": Row(layers.RandomFlip, img),
        "RandomRotation": Row(lambda: layers.RandomRotation(0.2), img),
        "RandomTranslation": Row(lambda: layers.RandomTranslation(0.2, 0.2), img),
        "RandomZoom": Row(lambda: layers.RandomZoom(0.2), img),
        "ReLU": Row(layers.ReLU, seq),
        "RepeatVector": Row(lambda: layers.RepeatVector(3), [(4,)]),
        "Rescaling": Row(lambda: layers.Rescaling(1 / 255), img),
        "Reshape": Row(lambda: layers.Reshape((-1, 2)), seq),
        "Resizing": Row(lambda: layers.Resizing(4, 5), [(None, None, 3)]),
        "SeparableConv1D": Row(lambda: layers.SeparableConv1D(5, 3), [(None, 4)]),
        "SeparableConv2D": Row(lambda: layers.SeparableConv2D(5, 3), img),
        "SimpleRNN": Row(lambda: layers.SimpleRNN(3, return_sequences=True), [(None, 4)]),
        "SinePositionEncoding": Row(layers.SinePositionEncoding, [(None, 4)]),
        "Softmax": Row(layers.Softmax, seq),
        "SpatialDropout1D": Row(lambda: layers.SpatialDropout1D(0.5), seq),
        "SpatialDropout2D": Row(lambda: layers.SpatialDropout2D(0.5), img),
        "SpatialDropout3D": Row(lambda: layers.SpatialDropout3D(0.5), vol),
        "StochasticDepth": Row(lambda: StochasticDepth(0.5), seq),
        "StringLookup": Row(lambda: layers.StringLookup(vocabulary=["a", "b"]), [(3,)],
                            strings=True),
        "Subtract": Row(layers.Subtract, pair, as_list=True),
        "TextVectorization": Row(lambda: layers.TextVectorization(
            vocabulary=["a", "b"], output_sequence_length=4), [(1,)], strings=True),
        "TimeDistributed": Row(lambda: layers.TimeDistributed(layers.Dense(3)), [(None, 4)]),
        "TorchModuleWrapper": Row(lambda: layers.TorchModuleWrapper(nn.Linear(4, 3)),
                                  [(None, 4)]),
        "TransformerDecoder": Row(lambda: layers.TransformerDecoder(8, 2), seq),
        "TransformerEncoder": Row(lambda: layers.TransformerEncoder(8, 2), [(None, 4)]),
        "UnitNormalization": Row(layers.UnitNormalization, seq),
        "UpSampling1D": Row(layers.UpSampling1D, [(None, 4)]),
        "UpSampling2D": Row(layers.UpSampling2D, img),
        "UpSampling3D": Row(layers.UpSampling3D, vol),
        "ZeroPadding1D": Row(layers.ZeroPadding1D, seq),
        "ZeroPadding2D": Row(layers.ZeroPadding2D, [(None, None, 3)]),
        "ZeroPadding3D": Row(layers.ZeroPadding3D, vol),
    }


# The recurrent layers' shapes on a probe follow from their configuration, without running the
# recurrence (`_BaseRNN.compute_output_shape`): every option that shapes the outputs has a row.
RECURRENT_OPTIONS = {
    "LSTM go_backwards return_state": Row(
        lambda: layers.LSTM(3, go_backwards=True, return_state=True), [(None, 4)]),
    "LSTM unroll return_sequences": Row(
        lambda: layers.LSTM(3, unroll=True, return_sequences=True), [(None, 4)]),
    "GRU reset_after=False return_sequences return_state": Row(
        lambda: layers.GRU(3, reset_after=False, return_sequences=True, return_state=True),
        [(None, 4)]),
    "SimpleRNN softsign return_state": Row(
        lambda: layers.SimpleRNN(3, activation="softsign", return_state=True), [(None, 4)]),
    "Bidirectional merge_mode=None return_state": Row(
        lambda: layers.Bidirectional(layers.GRU(3, return_state=True), merge_mode=None),
        [(None, 4)]),
    "Bidirectional sum return_sequences": Row(
        lambda: layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True),
                                     merge_mode="sum"), [(None, 4)]),
    "RNN LSTMCell go_backwards return_sequences return_state": Row(
        lambda: layers.RNN(layers.LSTMCell(3), go_backwards=True, return_sequences=True,
                           return_state=True), [(None, 4)]),
    "RNN stacked return_state": Row(
        lambda: layers.RNN([layers.LSTMCell(3), layers.SimpleRNNCell(2)], return_state=True),
        [(5, 4)]),
}
ROWS = {**_rows(), **RECURRENT_OPTIONS}
# Registered layers with no row, and why.
NOT_CALLED_ALONE = {
    "InputLayer": "what Input() returns; never called on a tensor",
    "TorchOp": "made by applying a torch function to a symbolic tensor (tests/models)",
    "Functional": "a model; tests/models builds them", "Model": "a model; tests/models",
    "Sequential": "a model; tests/models",
    "LSTMCell": "a cell runs inside RNN (the RNN row)", "GRUCell": "a cell runs inside RNN",
    "SimpleRNNCell": "a cell runs inside RNN", "StackedRNNCells": "runs inside RNN",
}


def test_every_registered_layer_has_a_row() -> None:
    registered = {_registry.canonical_name(_registry.lookup("layer", name))
                  for name in _registry.names("layer")}
    lamina_own = {name for name in registered
                  if _registry.lookup("layer", name).__module__.startswith("lamina.")}
    assert lamina_own - set(ROWS) - set(NOT_CALLED_ALONE) == set()


def _real_input(shape: tuple, batch: int, free: int, row: Row, seed: int) -> Any:
    concrete = (batch,) + tuple(free if d is None else d for d in shape)
    if row.strings:
        return np.full(concrete, "a", dtype=object)
    generator = torch.Generator().manual_seed(seed)
    if row.dtype == "int64":
        return torch.randint(1, row.high, concrete, generator=generator)
    return torch.randn(concrete, generator=generator)


def _call(layer: Any, inputs: list, row: Row) -> Any:
    return layer(inputs) if row.as_list else layer(*inputs)


def _flat(outputs: Any) -> list:
    # A stack of cells nests its states: [output, [h, c], h].
    if isinstance(outputs, (list, tuple)):
        return [leaf for o in outputs for leaf in _flat(o)]
    return [outputs]


def _shapes(outputs: Any) -> list[tuple]:
    return [tuple(o.shape) for o in _flat(outputs)]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_inferred_shapes_equal_real_shapes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    row = ROWS[name]
    lamina.config.set_random_seed(0)
    layer = row.make()
    # A string layer's Input stands for strings; its dtype is what the layer casts from.
    symbolic = [lamina.Input(shape, dtype=None if row.strings else row.dtype)
                for shape in row.inputs]
    real_runs = []
    real_probe = _symbolic._real_probe
    monkeypatch.setattr(_symbolic, "_real_probe",
                        lambda meta: real_runs.append(meta) or real_probe(meta))
    inferred = _call(layer, symbolic, row)
    monkeypatch.setattr(_symbolic, "_real_probe", real_probe)
    assert bool(real_runs) == row.needs_real, (
        f"{name}: shapes found on {'real tensors' if real_runs else 'meta'}")
    assert all(isinstance(t, _symbolic.KerasTensor) and t.probes[0].is_meta
               for t in _flat(inferred))

    layer.eval()
    runs = [_shapes(_call(layer, [_real_input(shape, batch, free, row, seed)
                                  for seed, shape in enumerate(row.inputs)], row))
            for batch, free in ((3, 8), (5, 12))]
    expected = [tuple(a if a == b else None for a, b in zip(first, second))
                for first, second in zip(*runs)]
    assert [len(s) for s in runs[0]] == [len(s) for s in runs[1]]
    assert _shapes(inferred) == expected


def test_a_layer_that_needs_data_falls_back_to_real_tensors() -> None:
    class FirstPositive(layers.Layer):
        """Keeps the rows up to the first positive value: a shape only data can tell."""

        def call(self, inputs):
            return inputs[: int((inputs[:, 0] > -1).sum())]

    seen = []

    class Recording(layers.Layer):
        def call(self, inputs):
            seen.append(inputs.device.type)
            return inputs * 2

    x = lamina.Input((3,))
    y = FirstPositive()(x)
    assert y.shape == (None, 3) and y.probes[0].is_meta  # stored on meta all the same
    Recording()(x)
    assert seen == ["meta", "meta"]  # one call per probe, no real arithmetic


def test_a_layer_built_inside_a_probe_gets_real_weights_drawn_as_eagerly() -> None:
    class Composite(layers.Layer):
        """Its Dense is built by its first call, which is inside Composite's shape probe."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = layers.Dense(3)

        def call(self, inputs):
            return self.inner(inputs)

    lamina.config.set_random_seed(3)
    symbolic = Composite()
    symbolic(lamina.Input((4,)))
    lamina.config.set_random_seed(3)
    eager = Composite()
    eager(torch.zeros(1, 4))
    assert not any(w.is_meta for w in symbolic.weights) and len(symbolic.weights) == 2
    for got, expected in zip(symbolic.get_weights(), eager.get_weights()):
        np.testing.assert_array_equal(got, expected)
