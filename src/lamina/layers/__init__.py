"""Layers under their Keras names. Each layer is a `torch.nn.Module`."""

from lamina.layers.activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from lamina.layers.core import Activation, Dense, Dropout, Embedding, Identity, Lambda, Masking
from lamina.layers.input_spec import InputSpec
from lamina.layers.layer import Layer
from lamina.layers.merging import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    multiply,
)
from lamina.layers.normalization import (
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    RMSNormalization,
    UnitNormalization,
)
from lamina.layers.preprocessing import Rescaling
from lamina.layers.reshaping import Flatten, Permute, RepeatVector, Reshape
from lamina.models.functional import Input, InputLayer

__all__ = [
    "Activation", "Add", "Average", "BatchNormalization", "Concatenate", "Dense", "Dot", "Dropout",
    "ELU", "Embedding", "Flatten", "GroupNormalization", "Identity", "Input", "InputLayer",
    "InputSpec",
    "Lambda", "Layer", "LayerNormalization", "LeakyReLU", "Masking", "Maximum", "Minimum",
    "Multiply", "PReLU", "Permute", "ReLU", "RMSNormalization", "RepeatVector", "Rescaling",
    "Reshape", "Softmax",
    "Subtract", "UnitNormalization", "add", "average", "concatenate", "multiply",
]

# Convolution, pooling and spatial layers (with Keras's alias names).
from lamina.layers.convolutional import (  # noqa: E402
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    Convolution1D,
    Convolution1DTranspose,
    Convolution2D,
    Convolution2DTranspose,
    Convolution3D,
    Convolution3DTranspose,
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
    SeparableConvolution1D,
    SeparableConvolution2D,
)
from lamina.layers.pooling import (  # noqa: E402
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalAvgPool3D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPool3D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from lamina.layers.spatial import (  # noqa: E402
    Cropping1D,
    Cropping2D,
    Cropping3D,
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
    UpSampling1D,
    UpSampling2D,
    UpSampling3D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)

__all__ += [
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D",
    "AvgPool3D", "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D",
    "Conv3DTranspose", "Convolution1D", "Convolution1DTranspose", "Convolution2D",
    "Convolution2DTranspose", "Convolution3D", "Convolution3DTranspose", "Cropping1D",
    "Cropping2D", "Cropping3D", "DepthwiseConv1D", "DepthwiseConv2D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalAvgPool1D", "GlobalAvgPool2D",
    "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPool1D", "MaxPool2D",
    "MaxPool3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "SeparableConv1D",
    "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
]

# Attention layers, positional encodings and transformer blocks.
from lamina.layers.attention import AdditiveAttention, Attention, MultiHeadAttention  # noqa: E402
from lamina.layers.transformer import (  # noqa: E402
    PositionalEmbedding,
    PositionalEncoding,
    PositionEmbedding,
    SinePositionEncoding,
    TransformerDecoder,
    TransformerEncoder,
    get_positional_encoding,
)

__all__ += [
    "AdditiveAttention", "Attention", "MultiHeadAttention", "PositionEmbedding",
    "PositionalEmbedding", "PositionalEncoding", "SinePositionEncoding", "TransformerDecoder",
    "TransformerEncoder", "get_positional_encoding",
]

# Recurrent layers, their cells and the sequence wrappers.
from lamina.layers.recurrent import (  # noqa: E402
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    GRUCell,
    LSTMCell,
    SimpleRNN,
    SimpleRNNCell,
    StackedRNNCells,
    TimeDistributed,
)

__all__ += [
    "Bidirectional", "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "SimpleRNN", "SimpleRNNCell",
    "StackedRNNCells", "TimeDistributed",
]

# Preprocessing layers: image augmentation and sizing, Normalization, TextVectorization,
# Discretization, CategoryEncoding, StringLookup, IntegerLookup, Hashing.
from lamina.layers.preprocessing import (  # noqa: E402
    CategoryEncoding,
    CenterCrop,
    Discretization,
    Hashing,
    IntegerLookup,
    Normalization,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Resizing,
    StringLookup,
    TextVectorization,
)

__all__ += [
    "CategoryEncoding", "CenterCrop", "Discretization", "Hashing", "IntegerLookup",
    "Normalization",
    "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation",
    "RandomTranslation", "RandomZoom", "Resizing", "StringLookup", "TextVectorization",
]

# A plain torch.nn.Module as a layer of a functional model (Keras 3's name).
from lamina.layers.core import TorchModuleWrapper  # noqa: E402

__all__ += ["TorchModuleWrapper"]
