"""Preprocessing layers: rescaling here; augmentation, Normalization and TextVectorization in
their own files."""

from lamina.layers.preprocessing.rescaling import Rescaling

__all__ = ["Rescaling"]

# Image augmentation and sizing, Normalization, TextVectorization, Discretization,
# CategoryEncoding, StringLookup, IntegerLookup, Hashing.
from lamina.layers.preprocessing.image_augmentation import (  # noqa: E402
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from lamina.layers.preprocessing.image_resizing import CenterCrop, Resizing  # noqa: E402
from lamina.layers.preprocessing.normalization import Normalization  # noqa: E402
from lamina.layers.preprocessing.text_vectorization import TextVectorization  # noqa: E402
from lamina.layers.preprocessing.category_encoding import CategoryEncoding  # noqa: E402
from lamina.layers.preprocessing.discretization import Discretization  # noqa: E402
from lamina.layers.preprocessing.lookup import IntegerLookup, StringLookup  # noqa: E402
from lamina.layers.preprocessing.hashing import Hashing  # noqa: E402

__all__ += [
    "CategoryEncoding", "CenterCrop", "Discretization", "Hashing", "IntegerLookup",
    "Normalization",
    "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation",
    "RandomTranslation", "RandomZoom", "Resizing", "StringLookup", "TextVectorization",
]
