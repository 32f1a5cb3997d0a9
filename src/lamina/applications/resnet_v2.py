"""Keras's `keras.applications.resnet_v2`: the pre-activation ResNets (built in `resnet`) with
their own preprocessing, inputs scaled to [-1, 1] ('tf' mode) where v1 subtracts the mean pixel."""

from __future__ import annotations

from lamina.applications.imagenet_utils import decode_predictions as decode_predictions
from lamina.applications.imagenet_utils import mode_preprocess_input
from lamina.applications.resnet import ResNet50V2, ResNet101V2, ResNet152V2

preprocess_input = mode_preprocess_input("tf")

__all__ = ["ResNet50V2", "ResNet101V2", "ResNet152V2", "decode_predictions", "preprocess_input"]
