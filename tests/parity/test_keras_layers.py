"""Every registered layer against Keras 3's (torch backend): same weights, same outputs and
input gradients (inference mode), within 1e-5 unless the row says why not."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pytest
import torch

import lamina.layers as lamina_layers
from lamina.layers.preprocessing.discretization import Discretization

from .keras_harness import TOLERANCE, assert_close, keras, registered_classes, to_numpy, uncovered

Make = Callable[[Any], Any]  # the layers module (lamina's or Keras's) -> a layer


@dataclasses.dataclass(frozen=True)
class Row:
    name: str  # the registered name this row covers
    make: Make
    shapes: tuple[tuple[int, ...], ...]  # one per input, batch included
    dtype: str = "float32"  # "int" inputs are token ids / categories in [0, 5)
    call: str = "single"  # "single", "list" (one list argument) or "args" (positional)
    call_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    tolerance: float = TOLERANCE
    reason: str = ""  # why the tolerance is looser, or why `reference` replaces Keras
    gradients: bool = True
    # Where Keras itself is wrong: a float64 NumPy reference that replaces it as the oracle.
    reference: Callable[[list[np.ndarray]], np.ndarray] | None = None


def average_pool_same(images: np.ndarray, pool: int, stride: int) -> np.ndarray:
    """2-D average pooling with 'same' padding as TensorFlow (and Keras's documentation) define
    it: each window averages only the input pixels it covers, never the padding."""
    images = images.astype(np.float64)
    _, height, width, _ = images.shape
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + pool - height, 0) // 2
    pad_w = max((out_w - 1) * stride + pool - width, 0) // 2
    out = np.zeros((images.shape[0], out_h, out_w, images.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * stride - pad_h, j * stride - pad_w
            window = images[:, max(top, 0):top + pool, max(left, 0):left + pool, :]
            out[:, i, j, :] = window.mean(axis=(1, 2))
    return out


def bilinear_resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resizing with half-pixel centres (no antialiasing), in float64."""
    images = images.astype(np.float64)

    def axis_weights(size_in: int, size_out: int) -> np.ndarray:
        source = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, size_in - 1)
        matrix = np.zeros((size_out, size_in))
        matrix[np.arange(size_out), low] += 1 - (source - low)
        matrix[np.arange(size_out), high] += source - low
        return matrix

    rows, columns = axis_weights(images.shape[1], height), axis_weights(images.shape[2], width)
    return np.einsum("hi,wj,nijc->nhwc", rows, columns, images)


def simple(name: str, shape: tuple[int, ...], **kwargs: Any) -> Row:
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in (
        "dtype", "call", "call_kwargs", "tolerance", "reason", "gradients", "reference")}
    return Row(name, lambda m: getattr(m, name)(**kwargs), (shape,), **options)


IMAGE = (2, 6, 6, 3)
SEQUENCE = (2, 5, 3)
VOLUME = (2, 4, 4, 4, 2)
VECTOR = (2, 4)

ROWS = [
    simple("Dense", VECTOR, units=3, activation="tanh"),
    simple("Activation", VECTOR, activation="gelu"),
    simple("Dropout", VECTOR, rate=0.5),
    simple("Flatten", IMAGE),
    simple("Identity", VECTOR),
    simple("Reshape", IMAGE, target_shape=(9, 12)),
    simple("Permute", IMAGE, dims=(3, 1, 2)),
    simple("RepeatVector", VECTOR, n=3),
    simple("Embedding", (2, 5), input_dim=5, output_dim=3, dtype="int", gradients=False),
    simple("Masking", SEQUENCE, mask_value=0.0),
    simple("ReLU", VECTOR, max_value=0.5, negative_slope=0.1, threshold=0.2),
    simple("LeakyReLU", VECTOR, negative_slope=0.2),
    simple("PReLU", VECTOR, alpha_initializer="ones"),
    simple("ELU", VECTOR, alpha=0.7),
    simple("Softmax", SEQUENCE, axis=1),
    simple("BatchNormalization", IMAGE, momentum=0.9),
    simple("LayerNormalization", IMAGE, axis=[1, 3]),
    simple("GroupNormalization", (2, 5, 4), groups=2),
    simple("RMSNormalization", SEQUENCE, axis=[1, 2]),
    simple("UnitNormalization", SEQUENCE, axis=1),
    simple("Conv1D", SEQUENCE, filters=2, kernel_size=2, strides=2, padding="same"),
    simple("Conv2D", IMAGE, filters=2, kernel_size=3, dilation_rate=2, padding="same"),
    simple("Conv3D", VOLUME, filters=2, kernel_size=2, padding="valid", groups=2),
    simple("Conv1DTranspose", SEQUENCE, filters=2, kernel_size=3, strides=2, padding="same"),
    simple("Conv2DTranspose", IMAGE, filters=2, kernel_size=3, strides=2, padding="valid"),
    simple("Conv3DTranspose", VOLUME, filters=2, kernel_size=2, strides=2),
    simple("DepthwiseConv1D", SEQUENCE, kernel_size=3, depth_multiplier=2, padding="same"),
    simple("DepthwiseConv2D", IMAGE, kernel_size=3, depth_multiplier=2),
    simple("SeparableConv1D", SEQUENCE, filters=2, kernel_size=2, depth_multiplier=2),
    simple("SeparableConv2D", IMAGE, filters=2, kernel_size=3, padding="same"),
    simple("MaxPooling1D", SEQUENCE, pool_size=2, padding="same"),
    simple("MaxPooling2D", IMAGE, pool_size=3, strides=2, padding="same"),
    simple("MaxPooling3D", VOLUME, pool_size=2),
    simple("AveragePooling1D", SEQUENCE, pool_size=2),
    simple("AveragePooling2D", IMAGE, pool_size=2, strides=2),
    simple("AveragePooling3D", VOLUME, pool_size=2),
    simple("GlobalAveragePooling1D", SEQUENCE),
    simple("GlobalAveragePooling2D", IMAGE, keepdims=True),
    simple("GlobalAveragePooling3D", VOLUME),
    simple("GlobalMaxPooling1D", SEQUENCE),
    simple("GlobalMaxPooling2D", IMAGE),
    simple("GlobalMaxPooling3D", VOLUME, keepdims=True),
    simple("UpSampling1D", SEQUENCE, size=2),
    simple("UpSampling2D", IMAGE, size=2, interpolation="bilinear"),
    simple("UpSampling3D", VOLUME, size=2),
    simple("ZeroPadding1D", SEQUENCE, padding=(1, 2)),
    simple("ZeroPadding2D", IMAGE, padding=((1, 0), (2, 1))),
    simple("ZeroPadding3D", VOLUME, padding=1),
    simple("Cropping1D", SEQUENCE, cropping=(1, 1)),
    simple("Cropping2D", IMAGE, cropping=((1, 0), (2, 1))),
    simple("Cropping3D", VOLUME, cropping=1),
    simple("SpatialDropout1D", SEQUENCE, rate=0.5),
    simple("SpatialDropout2D", IMAGE, rate=0.5),
    simple("SpatialDropout3D", VOLUME, rate=0.5),
    simple("SimpleRNN", SEQUENCE, units=4, return_sequences=True),
    simple("LSTM", SEQUENCE, units=4),
    simple("GRU", SEQUENCE, units=4, return_sequences=True),
    Row("SimpleRNNCell", lambda m: m.RNN(m.SimpleRNNCell(3)), (SEQUENCE,)),
    Row("LSTMCell", lambda m: m.RNN(m.LSTMCell(3), return_sequences=True), (SEQUENCE,)),
    Row("GRUCell", lambda m: m.RNN(m.GRUCell(3)), (SEQUENCE,)),
    Row("RNN", lambda m: m.RNN(m.GRUCell(2), go_backwards=True), (SEQUENCE,)),
    Row("StackedRNNCells", lambda m: m.RNN(m.StackedRNNCells([m.LSTMCell(3), m.GRUCell(2)])),
        (SEQUENCE,)),
    Row("Bidirectional", lambda m: m.Bidirectional(m.LSTM(3, return_sequences=True)),
        (SEQUENCE,)),
    Row("TimeDistributed", lambda m: m.TimeDistributed(m.Dense(2)), (SEQUENCE,)),
    Row("Add", lambda m: m.Add(), (VECTOR, VECTOR), call="list"),
    Row("Subtract", lambda m: m.Subtract(), (VECTOR, VECTOR), call="list"),
    Row("Multiply", lambda m: m.Multiply(), (VECTOR, VECTOR), call="list"),
    Row("Average", lambda m: m.Average(), (VECTOR, VECTOR), call="list"),
    Row("Maximum", lambda m: m.Maximum(), (VECTOR, VECTOR), call="list"),
    Row("Minimum", lambda m: m.Minimum(), (VECTOR, VECTOR), call="list"),
    Row("Concatenate", lambda m: m.Concatenate(axis=1), (SEQUENCE, SEQUENCE), call="list"),
    Row("Dot", lambda m: m.Dot(axes=2, normalize=True), (SEQUENCE, SEQUENCE), call="list"),
    Row("Attention", lambda m: m.Attention(use_scale=True, score_mode="concat"),
        ((2, 4, 3), (2, 5, 3)), call="list"),
    Row("AdditiveAttention", lambda m: m.AdditiveAttention(), ((2, 4, 3), (2, 5, 3)),
        call="list"),
    Row("MultiHeadAttention", lambda m: m.MultiHeadAttention(num_heads=2, key_dim=3),
        ((2, 4, 3), (2, 5, 3)), call="args"),
    simple("Rescaling", IMAGE, scale=1 / 255, offset=-1.0),
    simple("Resizing", IMAGE, height=4, width=5, interpolation="bilinear"),
    simple("CenterCrop", IMAGE, height=4, width=3),
    simple("CategoryEncoding", (2, 3), num_tokens=5, output_mode="count", dtype="int",
           gradients=False),
    simple("RandomFlip", IMAGE, call_kwargs={"training": False}),
    simple("RandomRotation", IMAGE, factor=0.2, call_kwargs={"training": False}),
    simple("RandomTranslation", IMAGE, height_factor=0.2, width_factor=0.2,
           call_kwargs={"training": False}),
    simple("RandomZoom", IMAGE, height_factor=0.2, call_kwargs={"training": False}),
    simple("RandomContrast", IMAGE, factor=0.2, call_kwargs={"training": False}),
    simple("RandomBrightness", IMAGE, factor=0.2, call_kwargs={"training": False}),
    simple("RandomCrop", IMAGE, height=4, width=4, call_kwargs={"training": False},
           reference=lambda a: bilinear_resize(a[0], 4, 4),
           reason="Keras 3.15 returns the uncropped image at inference, though its docs and "
                  "compute_output_shape promise the largest centred window of the target aspect "
                  "resized to (height, width); checked against that in float64"),
    simple("AveragePooling2D", (2, 7, 7, 3), pool_size=3, strides=2, padding="same"),
    simple("AveragePooling2D", IMAGE, pool_size=3, strides=2, padding="same",
           reference=lambda a: average_pool_same(a[0], 3, 2),
           reason="with uneven 'same' padding (6 -> 3 by 3x3 windows, stride 2) Keras's torch "
                  "backend averages wrong windows (off by 0.23 here); checked against "
                  "TensorFlow's definition in float64"),
    simple("Normalization", IMAGE, mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 0.5]),
]

EXCLUDED = {
    "Functional": "a container: covered by the zoo in test_keras_applications.py",
    "Sequential": "a container: covered by the zoo in test_keras_applications.py",
    "Model": "a container: covered by the zoo in test_keras_applications.py",
    "InputLayer": "holds a shape, computes nothing (its arguments are tested in tests/models)",
    "Lambda": "runs the user's function; nothing of its own to compare",
    "TorchModuleWrapper": "runs the wrapped torch module; nothing of its own to compare",
    "TorchOp": "Lamina's graph node for a torch function called on symbolic tensors",
    "GPT": "Lamina's zoo model (applications/gpt.py); no Keras counterpart",
    "PositionalEmbedding": "the sheet's layer; not in Keras 3 core (KerasHub has its own)",
    "PositionalEncoding": "the sheet's layer; not in Keras 3 core",
    "PositionEmbedding": "KerasHub's layer, which is not installed; not in Keras 3 core",
    "SinePositionEncoding": "KerasHub's layer, which is not installed; not in Keras 3 core",
    "TransformerEncoder": "KerasHub's layer, which is not installed; not in Keras 3 core",
    "TransformerDecoder": "KerasHub's layer, which is not installed; not in Keras 3 core",
    "LayerScale": "not in Keras 3 core (KerasCV/timm)",
    "StochasticDepth": "not in Keras 3 core (KerasCV); random in training, identity otherwise",
    "CustomScaleLayer": "InceptionResNetV2's own layer in Keras: compared through that model's "
                        "predictions in test_keras_applications.py",
    "Hashing": "Keras's Hashing needs TensorFlow, which the torch backend lacks: checked in "
               "tests/layers/test_hashing.py against Keras's own documented and tested bins",
    "IntegerLookup": "Keras's lookup layers need TensorFlow, which the torch backend lacks",
    "StringLookup": "Keras's string layers need TensorFlow, which the torch backend lacks",
    "TextVectorization": "Keras's string layers need TensorFlow, which the torch backend lacks",
    "Discretization": "compared by test_discretization_adapt_learns_keras_boundaries (its adapt "
                      "needs TensorFlow in Keras; its summary methods are called directly)",
}


def _inputs(row: Row, rng: np.random.Generator) -> list[np.ndarray]:
    arrays = []
    for shape in row.shapes:
        if row.dtype == "int":
            arrays.append(rng.integers(0, 5, size=shape).astype(np.int64))
        else:
            values = rng.normal(size=shape).astype(np.float32)
            values.flat[::7] = 0.0  # exact zeros: kinks (ReLU, PReLU) must agree there too
            arrays.append(values)
    return arrays


def _call(layer: Any, row: Row, tensors: list[torch.Tensor]) -> Any:
    if row.call == "list":
        return layer(list(tensors), **row.call_kwargs)
    if row.call == "args":
        return layer(*tensors, **row.call_kwargs)
    return layer(tensors[0], **row.call_kwargs)


def _leaves(tensors: list[np.ndarray], row: Row) -> list[torch.Tensor]:
    return [torch.tensor(a, requires_grad=row.gradients and a.dtype == np.float32)
            for a in tensors]


@pytest.mark.parametrize("row", ROWS, ids=[f"{row.name}-{i}" for i, row in enumerate(ROWS)])
def test_layer_agrees_with_keras(row: Row) -> None:
    rng = np.random.default_rng(0)
    arrays = _inputs(row, rng)
    keras_layer, lamina_layer = row.make(keras.layers), row.make(lamina_layers)
    _call(keras_layer, row, _leaves(arrays, row))
    _call(lamina_layer, row, _leaves(arrays, row))
    lamina_layer.eval()
    # Random weights (not the initial ones): BatchNormalization's statistics, biases and
    # gammas must each land in their place.
    weights = [rng.normal(size=w.shape).astype(w.dtype) if w.dtype.kind == "f" else w
               for w in keras_layer.get_weights()]
    if row.name == "BatchNormalization":
        weights[-1] = np.abs(weights[-1]) + 0.5  # a variance
    keras_layer.set_weights(weights)
    lamina_layer.set_weights(weights)
    keras_inputs, lamina_inputs = _leaves(arrays, row), _leaves(arrays, row)
    keras_out, lamina_out = _call(keras_layer, row, keras_inputs), _call(lamina_layer, row,
                                                                         lamina_inputs)
    what = f"{row.name}: {row.reason or 'outputs'}"
    if row.reference is not None:
        assert_close(lamina_out, row.reference(arrays), row.tolerance, what)
        return
    assert_close(lamina_out, keras_out, row.tolerance, what)
    if not row.gradients:
        return
    probe = torch.tensor(rng.normal(size=tuple(to_numpy(keras_out).shape)).astype(np.float32))
    (torch.as_tensor(keras_out) * probe).sum().backward()
    (lamina_out * probe).sum().backward()
    for keras_x, lamina_x in zip(keras_inputs, lamina_inputs):
        if keras_x.grad is not None or lamina_x.grad is not None:
            assert_close(lamina_x.grad, keras_x.grad, row.tolerance, f"{row.name}: input gradient")


def test_every_registered_layer_has_a_row_or_a_reason() -> None:
    assert uncovered(registered_classes("layer"), {row.name for row in ROWS}, EXCLUDED) == []


@pytest.mark.parametrize("epsilon, num_bins", [(0.01, 4), (0.1, 5), (0.003, 7)])
def test_discretization_adapt_learns_keras_boundaries(epsilon: float, num_bins: int) -> None:
    data = np.random.default_rng(1).normal(size=(997,)).astype(np.float32)
    keras_layer = keras.layers.Discretization(num_bins=num_bins, epsilon=epsilon)
    # Keras's adapt() needs TensorFlow; its update/finalize steps are what adapt runs.
    for batch in (data[:300], data[300:]):
        keras_layer.update_state(batch)
    keras_layer.finalize_state()
    layer = Discretization(num_bins=num_bins, epsilon=epsilon)
    layer.adapt([data[:300], data[300:]])
    np.testing.assert_array_equal(np.float32(layer.bin_boundaries),
                                  np.float32(keras_layer.bin_boundaries))
    x = np.random.default_rng(2).normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_array_equal(to_numpy(layer(torch.tensor(x))),
                                  to_numpy(keras_layer(x)))
