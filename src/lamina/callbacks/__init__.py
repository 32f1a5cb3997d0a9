"""Callbacks: hooks into `fit`, `evaluate` and `predict`."""

from lamina.callbacks.callback import Callback, CallbackList, History
from lamina.callbacks.progbar_logger import ProgbarLogger

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger"]
