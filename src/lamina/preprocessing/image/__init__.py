"""Keras's legacy image preprocessing (`keras.preprocessing.image`): `ImageDataGenerator`, the
iterators its `flow*` return (`lamina.utils.PyDataset`s, so `fit` consumes them), and the
per-image transforms."""

from lamina.preprocessing.image.affine import (
    apply_affine_transform,
    apply_brightness_shift,
    apply_channel_shift,
    random_brightness,
    random_channel_shift,
    random_rotation,
    random_shear,
    random_shift,
    random_zoom,
)
from lamina.preprocessing.image.generator import ImageDataGenerator
from lamina.preprocessing.image.iterators import DirectoryIterator, Iterator, NumpyArrayIterator
from lamina.utils.image_utils import array_to_img, img_to_array, load_img, save_img

__all__ = [
    "ImageDataGenerator",
    "Iterator",
    "NumpyArrayIterator",
    "DirectoryIterator",
    "apply_affine_transform",
    "apply_brightness_shift",
    "apply_channel_shift",
    "random_rotation",
    "random_shift",
    "random_shear",
    "random_zoom",
    "random_channel_shift",
    "random_brightness",
    "load_img",
    "img_to_array",
    "array_to_img",
    "save_img",
]
