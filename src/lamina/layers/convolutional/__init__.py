"""Convolution layers, one file per family: conv.py, conv_transpose.py, depthwise_conv.py,
separable_conv.py; _base.py holds what they (and pooling, spatial) share."""

from lamina.layers.convolutional.conv import Conv1D, Conv2D, Conv3D
from lamina.layers.convolutional.conv_transpose import (
    Conv1DTranspose,
    Conv2DTranspose,
    Conv3DTranspose,
)
from lamina.layers.convolutional.depthwise_conv import DepthwiseConv1D, DepthwiseConv2D
from lamina.layers.convolutional.separable_conv import SeparableConv1D, SeparableConv2D

# Keras's long names for the same classes.
Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
Convolution1DTranspose, Convolution2DTranspose, Convolution3DTranspose = (
    Conv1DTranspose, Conv2DTranspose, Conv3DTranspose)
SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D

__all__ = [
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "Convolution1D", "Convolution2D", "Convolution3D", "Convolution1DTranspose",
    "Convolution2DTranspose", "Convolution3DTranspose", "SeparableConvolution1D",
    "SeparableConvolution2D",
]
