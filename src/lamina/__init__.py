"""Lamina: the Keras API on plain `torch.nn.Module`s.

Keras code runs after swapping `from tensorflow import keras` for `import lamina as keras` and
`from tensorflow.keras import layers` for `from lamina import layers`.
"""

__version__ = "0.1.0"

from lamina import (
    activations,
    config,
    constraints,
    initializers,
    layers,
    models,
    regularizers,
    saving,
)
from lamina.config import set_random_seed
from lamina.layers.layer import Layer, clear_session
from lamina.models import Input, Model, Sequential

__all__ = [
    "Input", "Layer", "Model", "Sequential", "activations", "clear_session", "config",
    "constraints", "initializers", "layers", "models", "regularizers", "saving",
    "set_random_seed",
]
