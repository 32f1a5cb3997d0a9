"""Models: `Model` (functional and subclassed), `Sequential`, saving and loading."""

from lamina.models.functional import Functional, Input, InputLayer
from lamina.models.model import Model
from lamina.models.sequential import Sequential
from lamina.saving.saving_api import load_model, save_model
from lamina.saving import serialization
from lamina.saving.serialization import model_from_json

__all__ = ["Functional", "Input", "InputLayer", "Model", "Sequential", "load_model", "save_model",
           "model_from_json", "clone_model"]


def clone_model(model):
    """A new model with the same architecture and freshly initialised weights (Keras semantics)."""
    # The model is the caller's own, not a file: no bound on its size.
    return serialization.deserialize(serialization.serialize(model), max_elements=None)
