"""What the ImageNet models share outside the network: Keras's `preprocess_input` modes and
`decode_predictions` (`keras.applications.imagenet_utils`).

Each family file re-exports them with its own mode (`lamina.applications.densenet.preprocess_input`
is the 'torch' mode), as Keras's modules do.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from lamina.config import standardize_data_format

CLASS_INDEX_URL = ("https://storage.googleapis.com/download.tensorflow.org/"
                   "data/imagenet_class_index.json")
CLASS_INDEX_HASH = "c2c37ea517e94d9795004a39431a14cb"

_MODES = ("caffe", "tf", "torch")
_CAFFE_MEAN = (103.939, 116.779, 123.68)          # BGR
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

_class_index: dict[str, list[str]] | None = None


def preprocess_input(x: Any, data_format: str | None = None, mode: str = "caffe") -> Any:
    """A batch (or one image) of RGB pixels in [0, 255], as the ImageNet weights expect:

    - 'caffe': RGB -> BGR, minus the ImageNet mean pixel, no scaling (ResNet, VGG);
    - 'tf': scaled to [-1, 1] (`x / 127.5 - 1`: MobileNet, MobileNetV2, Xception, Inception);
    - 'torch': scaled to [0, 1], then per channel `(x - mean) / std` with ImageNet's statistics
      (DenseNet).

    A numpy array gives a float numpy array (float32 for integer images); a tensor gives a
    tensor. Unlike Keras, the input is never overwritten.
    """
    if mode not in _MODES:
        raise ValueError(f"`mode` must be one of {_MODES}. Received: mode={mode!r}.")
    data_format = standardize_data_format(data_format)
    is_tensor = isinstance(x, torch.Tensor)
    if is_tensor:
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
    else:
        x = np.asarray(x)
        x = x.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32)
    if x.ndim not in (3, 4):
        raise ValueError(
            "`preprocess_input` expects one image (rank 3) or a batch of images (rank 4). "
            f"Received: an input of shape {tuple(x.shape)}."
        )
    axis = (0 if x.ndim == 3 else 1) if data_format == "channels_first" else x.ndim - 1
    if x.shape[axis] != 3:
        raise ValueError(
            f"`preprocess_input` expects 3 color channels on axis {axis} for "
            f"data_format={data_format!r}. Received: an input of shape {tuple(x.shape)}."
        )
    if mode == "tf":
        return x / 127.5 - 1.0
    shape = [1] * x.ndim
    shape[axis] = 3
    if mode == "torch":
        mean, std = np.array(_TORCH_MEAN), np.array(_TORCH_STD)
        x = x / 255.0
    else:
        mean, std = np.array(_CAFFE_MEAN), None
        x = x.flip(axis) if is_tensor else np.flip(x, axis)

    def constant(values: np.ndarray) -> Any:
        values = values.reshape(shape)
        return torch.as_tensor(values, dtype=x.dtype, device=x.device) if is_tensor else \
            values.astype(x.dtype)

    x = x - constant(mean)
    return x / constant(std) if std is not None else x


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The `top` most likely ImageNet classes of each row of `preds` (shape `(samples, 1000)`),
    as `(class_name, class_description, score)` tuples, best first.

    The class index (`imagenet_class_index.json`) is downloaded once into `~/.lamina/models`
    (checked against Keras's hash); a copy already there is used as is.
    """
    preds = preds.detach().cpu().numpy() if isinstance(preds, torch.Tensor) else np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (a 2D array of shape "
            f"(samples, 1000)). Received an array of shape {preds.shape}."
        )
    index = _load_class_index()
    results = []
    for row in preds:
        best = row.argsort()[-top:][::-1]
        result = [(*index[str(i)], row[i]) for i in best]
        result.sort(key=lambda item: item[2], reverse=True)
        results.append(result)
    return results


def _load_class_index() -> dict[str, list[str]]:
    global _class_index
    if _class_index is None:
        from lamina.utils import get_file

        path = get_file("imagenet_class_index.json", CLASS_INDEX_URL, cache_subdir="models",
                        file_hash=CLASS_INDEX_HASH)
        with open(path, encoding="utf8") as file:
            _class_index = json.load(file)
    return _class_index


def correct_pad(x: Any, kernel_size: int, data_format: str) -> tuple:
    """Keras's `correct_pad`: the zero padding before a strided 'valid' convolution that
    reproduces TensorFlow's 'same' (one less on the leading side for even sizes)."""
    size = x.shape[2:4] if data_format == "channels_first" else x.shape[1:3]
    adjust = (1, 1) if size[0] is None else (1 - size[0] % 2, 1 - size[1] % 2)
    half = kernel_size // 2
    return ((half - adjust[0], half), (half - adjust[1], half))


def identity_preprocess_input(x: Any, data_format: str | None = None) -> Any:
    """A placeholder kept for Keras's API: these models take raw [0, 255] pixels (their
    preprocessing is inside the network), so the input is returned unchanged."""
    return x


def mode_preprocess_input(mode: str):
    """The family's `preprocess_input`: `imagenet_utils.preprocess_input` with `mode` fixed."""

    def preprocess(x: Any, data_format: str | None = None) -> Any:
        return preprocess_input(x, data_format=data_format, mode=mode)

    preprocess.__name__ = preprocess.__qualname__ = "preprocess_input"
    preprocess.__doc__ = f"`imagenet_utils.preprocess_input` in the {mode!r} mode."
    return preprocess
