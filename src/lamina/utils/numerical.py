"""`to_categorical` and `normalize`, as in `keras.utils`, for NumPy arrays and torch tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lamina import config
from lamina.errors import DataError


def to_categorical(x: Any, num_classes: int | None = None) -> Any:
    """One-hot encode integer class labels: `out[..., k] = 1 if x == k else 0`.

    A trailing axis of size 1 (labels shaped `(n, 1)`, as CIFAR's) is dropped first, so
    `(n, 1)` and `(n,)` both give `(n, num_classes)`. NumPy (or list) input gives a NumPy
    array of `floatx()`; a torch tensor gives a float tensor on the same device (no host sync).

    Args:
        x: integer labels in `[0, num_classes)`.
        num_classes: total number of classes; `max(x) + 1` when None.

    >>> to_categorical([0, 2], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.]], dtype=float32)
    """
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1
    ):
        raise ValueError(
            f"`num_classes` must be a positive integer or None. Received: num_classes={num_classes!r}."
        )
    if isinstance(x, torch.Tensor):
        return _to_categorical_torch(x, num_classes)
    labels = np.asarray(x)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise DataError(
                "`to_categorical` expects integer class labels; received non-integer values "
                f"such as {labels[labels != np.round(labels)][:3].tolist()}. Round or cast them "
                "to integers first."
            )
    elif labels.dtype.kind not in "iub":
        raise TypeError(
            f"`to_categorical` expects integer class labels. Received an array of dtype {labels.dtype}."
        )
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    _check_label_range(int(flat.min()) if flat.size else 0, int(flat.max()) if flat.size else 0, num_classes)
    categorical = np.zeros((flat.size, num_classes), dtype=config.floatx())
    categorical[np.arange(flat.size), flat] = 1
    return categorical.reshape(shape + (num_classes,))


def _to_categorical_torch(x: torch.Tensor, num_classes: int | None) -> torch.Tensor:
    if x.is_floating_point() or x.is_complex():
        raise TypeError(
            f"`to_categorical` expects integer class labels. Received a tensor of dtype {x.dtype}."
        )
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.squeeze(-1)
    # F.one_hot infers num_classes (a host sync) and checks the range when num_classes is -1.
    one_hot = torch.nn.functional.one_hot(x.long(), -1 if num_classes is None else int(num_classes))
    return one_hot.to(config.torch_dtype(None))


def _check_label_range(low: int, high: int, num_classes: int) -> None:
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(
            f"Class label {bad} is outside [0, {num_classes}) for num_classes={num_classes}. "
            "Labels must be integers from 0 to num_classes - 1; pass a larger `num_classes` "
            "or remap the labels."
        )


def normalize(x: Any, axis: int = -1, order: int | float = 2) -> Any:
    """Scale `x` to unit norm along `axis`: `x / ||x||_order`; zero vectors stay zero.

    NumPy input gives a NumPy array, a torch tensor gives a tensor.

    >>> normalize(np.array([[3.0, 4.0]]))
    array([[0.6, 0.8]])
    """
    if isinstance(x, torch.Tensor):
        norm = torch.linalg.vector_norm(x, ord=order, dim=axis, keepdim=True)
        # Dividing by 1 where the norm is 0 keeps zero vectors at zero without a host sync.
        return x / torch.where(norm == 0, torch.ones_like(norm), norm)
    array = np.asarray(x)
    if array.dtype.kind not in "fc":
        array = array.astype(config.floatx())
    norm = np.linalg.norm(array, ord=order, axis=axis, keepdims=True)
    return array / np.where(norm == 0, 1, norm)
