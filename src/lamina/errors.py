"""The few exceptions users catch. Each subclasses the builtin a Keras user already catches."""

from __future__ import annotations

import pickle


class UnknownNameError(ValueError):
    """A string identifier (activation, loss, optimizer, layer, ...) that names nothing known."""


class ShapeError(ValueError):
    """An input whose shape a layer or loss cannot accept."""


class NotCompiledError(RuntimeError):
    """`fit`/`evaluate` called before `compile`."""


class FileFormatError(ValueError):
    """A missing, truncated or foreign model or weights file."""


class UnsafeLoadError(ValueError):
    """A file whose loading would run code (e.g. a `Lambda` layer) while `safe_mode=True`."""


class UnsafePickleError(UnsafeLoadError, pickle.UnpicklingError):
    """A dataset pickle that is malformed, builds something other than data, or claims more than
    it holds (`lamina.datasets` reads CIFAR/IMDB pickles with a restricted machine)."""


class UnsafeArchiveError(ValueError):
    """An archive member that would land outside its folder, or an archive that expands too far."""


class DataError(ValueError):
    """Training data that would silently give a wrong result: NaN inputs, labels out of range."""


class NonFiniteError(DataError, FloatingPointError):
    """A training step whose loss, gradients or normalization statistics came out NaN or
    infinite. `fit` rolls the model back before raising it; catch it as `DataError` (bad data)
    or as the builtin `FloatingPointError` (numerical overflow)."""
