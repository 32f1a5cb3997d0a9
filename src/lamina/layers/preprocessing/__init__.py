"""Preprocessing layers: rescaling here; augmentation, Normalization and TextVectorization in
their own files."""

from lamina.layers.preprocessing.rescaling import Rescaling

__all__ = ["Rescaling"]
