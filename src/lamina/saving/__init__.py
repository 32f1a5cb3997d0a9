"""Saving and loading: `.keras` archives, `.h5` files and weights; configs through the registry."""

from lamina.saving.saving_api import load_model, load_weights, save_model, save_weights
from lamina.saving.serialization import (
    deserialize,
    get_registered_name,
    register_keras_serializable,
    serialize,
)

deserialize_keras_object = deserialize
serialize_keras_object = serialize

__all__ = ["load_model", "load_weights", "save_model", "save_weights", "deserialize", "serialize",
           "register_keras_serializable", "get_registered_name", "deserialize_keras_object",
           "serialize_keras_object"]
