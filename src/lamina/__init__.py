"""Lamina: the Keras API on plain `torch.nn.Module`s.

Keras code runs after swapping `from tensorflow import keras` for `import lamina as keras` and
`from tensorflow.keras import layers` for `from lamina import layers`.
"""

__version__ = "0.1.0"

from lamina import (
    activations,
    applications,
    backend,
    callbacks,
    config,
    constraints,
    datasets,
    distribution,
    evaluation,
    initializers,
    layers,
    losses,
    metrics,
    mixed_precision,
    models,
    nn,
    ops,
    optimizers,
    preprocessing,
    random,
    regularizers,
    saving,
    transforms,
    tree,
    utils,
)
from lamina.config import set_random_seed
from lamina.layers.input_spec import InputSpec
from lamina.layers.layer import Layer, clear_session
from lamina.models import Input, Model, Sequential
from lamina.models.wrapped import wrap
from lamina.utils.dataset import AUTOTUNE

__all__ = [
    "AUTOTUNE", "Input", "InputSpec", "Layer", "Model", "Sequential", "activations", "applications", "backend", "callbacks",
    "clear_session", "config", "constraints", "datasets", "distribution", "evaluation", "initializers", "layers",
    "losses", "metrics", "mixed_precision", "models", "nn", "ops", "optimizers", "preprocessing", "random",
    "regularizers",
    "saving", "set_random_seed", "transforms", "tree", "utils", "wrap",
]
