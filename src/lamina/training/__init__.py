"""The training engine: one `Trainer` behind fit/evaluate/predict (see trainer.py)."""

from lamina.training.data_adapters import pack_x_y_sample_weight, unpack_x_y_sample_weight
from lamina.training.trainer import Trainer

__all__ = ["Trainer", "pack_x_y_sample_weight", "unpack_x_y_sample_weight"]
