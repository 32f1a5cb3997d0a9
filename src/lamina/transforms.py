"""Torch-style image transforms for data pipelines, as torchvision's (which is not a dependency):
`Compose`, `ToTensor` and `Normalize`.

torchvision-style ImageNet preprocessing runs as written:

>>> from lamina import transforms
>>> preprocess = transforms.Compose([
...     transforms.ToTensor(),
...     transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
... ])
>>> preprocess(np.zeros((4, 4, 3), dtype=np.uint8)).shape
torch.Size([3, 4, 4])
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

Tensor = torch.Tensor


class Compose:
    """Applies transforms one after another: `Compose([t1, t2])(x) == t2(t1(x))`."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            raise TypeError(
                "Compose takes a list of transforms, e.g. Compose([ToTensor(), Normalize(...)]). "
                f"Received: {type(transforms).__name__}."
            )
        for index, transform in enumerate(transforms):
            if not callable(transform):
                raise TypeError(
                    f"Every transform given to Compose must be callable; the one at index {index} "
                    f"is {transform!r} of type {type(transform).__name__}."
                )
        self.transforms = list(transforms)

    def __call__(self, image: Any) -> Any:
        for transform in self.transforms:
            image = transform(image)
        return image

    def __repr__(self) -> str:
        lines = "".join(f"\n    {transform!r}" for transform in self.transforms)
        return f"{type(self).__name__}({lines}\n)"


class ToTensor:
    """A PIL image or an `(H, W, C)` numpy array -> a `(C, H, W)` tensor.

    8-bit images (uint8 arrays, PIL images other than modes 'I', 'I;16' and 'F') become float32
    in [0, 1] by dividing by 255; other dtypes are transposed without scaling, as torchvision's
    `ToTensor`. An `(H, W)` array becomes `(1, H, W)`.
    """

    def __call__(self, picture: Any) -> Tensor:
        array = _picture_to_array(picture)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ValueError(
                "ToTensor expects an image of shape (H, W) or (H, W, C). Received an array of "
                f"shape {array.shape}."
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        if tensor.dtype == torch.uint8:
            return tensor.to(torch.get_default_dtype()).div(255)
        return tensor

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _picture_to_array(picture: Any) -> np.ndarray:
    if isinstance(picture, np.ndarray):
        return picture
    mode = getattr(picture, "mode", None)
    if mode is not None and hasattr(picture, "getbands"):
        array = np.array(picture)
        if mode == "1":
            # 1-bit images read as booleans; scale them like 8-bit ones.
            array = array.astype(np.uint8) * 255
        return array
    raise TypeError(
        "ToTensor expects a PIL image or a numpy array (H, W, C). Received: "
        f"{type(picture).__name__}. A tensor is already converted: pass it to Normalize directly."
    )


class Normalize(nn.Module):
    """Normalizes a float image per channel: `output[c] = (input[c] - mean[c]) / std[c]`.

    Takes `(..., C, H, W)` tensors (one image or a batch), as torchvision's `Normalize`.

    Args:
        mean: the per-channel means (or one number for all channels).
        std: the per-channel standard deviations, none of them zero.
        inplace: normalize the input tensor in place.
    """

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float,
                 inplace: bool = False):
        super().__init__()
        self.mean = _channel_values("mean", mean)
        self.std = _channel_values("std", std)
        if any(value == 0 for value in self.std):
            raise ValueError(
                f"`std` must not contain zeros (it divides the image). Received: std={std!r}."
            )
        self.inplace = inplace

    def forward(self, tensor: Tensor) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise TypeError(
                f"Normalize expects a tensor; received {type(tensor).__name__}. Convert images "
                "with ToTensor() first."
            )
        if not tensor.is_floating_point():
            raise TypeError(
                f"Normalize expects a float tensor; received dtype {tensor.dtype}. Convert images "
                "with ToTensor() (which scales 8-bit images to [0, 1]) first."
            )
        if tensor.dim() < 3:
            raise ValueError(
                "Normalize expects an image of shape (..., C, H, W). Received a tensor of shape "
                f"{tuple(tensor.shape)}."
            )
        channels = tensor.shape[-3]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(
                    f"Normalize has {len(values)} `{name}` values but the image has {channels} "
                    f"channels (axis -3 of shape {tuple(tensor.shape)}). Give one value per "
                    "channel."
                )
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        if self.inplace:
            return tensor.sub_(mean).div_(std)
        return tensor.sub(mean).div(std)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


def _channel_values(name: str, values: Any) -> list[float]:
    if isinstance(values, numbers.Real) and not isinstance(values, bool):
        return [float(values)]
    if isinstance(values, Tensor):
        values = values.tolist()
    if (isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray))
            or len(values) == 0
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)):
        raise TypeError(
            f"`{name}` must be a number or a sequence of numbers, one per channel. "
            f"Received: {name}={values!r}."
        )
    return [float(v) for v in values]


__all__ = ["Compose", "Normalize", "ToTensor"]
