"""Layers under their Keras names. Each layer is a `torch.nn.Module`."""

from lamina.layers.activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from lamina.layers.core import Activation, Dense, Dropout, Embedding, Identity, Lambda, Masking
from lamina.layers.layer import Layer
from lamina.layers.merging import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    multiply,
)
from lamina.layers.normalization import (
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    UnitNormalization,
)
from lamina.layers.preprocessing import Rescaling
from lamina.layers.reshaping import Flatten, Permute, RepeatVector, Reshape
from lamina.models.functional import Input, InputLayer

__all__ = [
    "Activation", "Add", "Average", "BatchNormalization", "Concatenate", "Dense", "Dot", "Dropout",
    "ELU", "Embedding", "Flatten", "GroupNormalization", "Identity", "Input", "InputLayer",
    "Lambda", "Layer", "LayerNormalization", "LeakyReLU", "Masking", "Maximum", "Minimum",
    "Multiply", "PReLU", "Permute", "ReLU", "RepeatVector", "Rescaling", "Reshape", "Softmax",
    "Subtract", "UnitNormalization", "add", "average", "concatenate", "multiply",
]
