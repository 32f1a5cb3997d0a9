"""Keras's `backend` helpers that still make sense on torch."""

from lamina.config import epsilon, floatx, image_data_format, set_epsilon, set_floatx
from lamina.config import set_image_data_format
from lamina.layers.layer import clear_session


def backend() -> str:
    """The name of the tensor library underneath: always 'torch'."""
    return "torch"


__all__ = ["backend", "clear_session", "epsilon", "floatx", "image_data_format", "set_epsilon",
           "set_floatx", "set_image_data_format"]
