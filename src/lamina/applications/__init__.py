"""The architecture zoo: each model is a function returning a `lamina.Model` (an `nn.Module`).

- Keras's applications, with Keras's arguments and layer names: `ResNet50`, `ResNet101`,
  `ResNet152`, `ResNet50V2`, `ResNet101V2`, `ResNet152V2`, `VGG16`, `VGG19` (and `VGG11`, `VGG13` of the same family), `EfficientNetB0..B7`,
  `EfficientNetV2B0..B3/S/M/L`, `MobileNet`, `MobileNetV2`, `MobileNetV3Small/Large`,
  `DenseNet121/169/201`, `Xception`, `InceptionV3`, `InceptionResNetV2`, `NASNetMobile`,
  `NASNetLarge`, `ConvNeXtTiny..XLarge`; each family module
  (`efficientnet`, `densenet`, ...) has Keras's `preprocess_input` and `decode_predictions`.
- The reference PyTorch architectures (docs/provenance.md): `LeNet5`, `AlexNet`,
  torchvision-style `resnet18` ... `resnet152`, `SimpleRNNModel`, `LSTMModel`, `GRUModel`, the
  BERT-like `TransformerModel` and the GPT-like causal language model `GPT` (with
  `generate()`).
- `list_models()` and `create_model(name, **kwargs)` over the registry; `load_torch_state_dict`
  for torch `state_dict`s; `load_weights_by_name` for weights files.

No weights are downloaded: `weights=` takes a local file (see `_builder`).

>>> from lamina import applications
>>> model = applications.create_model("resnet18", num_classes=10)
>>> "ResNet50" in applications.list_models()
True
"""

from __future__ import annotations

from typing import Any

from lamina import _registry
from lamina.applications._builder import load_weights_by_name
from lamina.applications.alexnet import AlexNet
from lamina.applications.convert import load_torch_state_dict
from lamina.applications.convnext import (
    ConvNeXtBase,
    ConvNeXtLarge,
    ConvNeXtSmall,
    ConvNeXtTiny,
    ConvNeXtXLarge,
)
from lamina.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from lamina.applications.efficientnet import (
    EfficientNetB0,
    EfficientNetB1,
    EfficientNetB2,
    EfficientNetB3,
    EfficientNetB4,
    EfficientNetB5,
    EfficientNetB6,
    EfficientNetB7,
)
from lamina.applications.efficientnet_v2 import (
    EfficientNetV2B0,
    EfficientNetV2B1,
    EfficientNetV2B2,
    EfficientNetV2B3,
    EfficientNetV2L,
    EfficientNetV2M,
    EfficientNetV2S,
)
from lamina.applications.gpt import GPT
from lamina.applications.inception_resnet_v2 import InceptionResNetV2
from lamina.applications.inception_v3 import InceptionV3
from lamina.applications.lenet import LeNet5
from lamina.applications.mobilenet import MobileNet
from lamina.applications.mobilenet_v2 import MobileNetV2
from lamina.applications.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from lamina.applications.nasnet import NASNetLarge, NASNetMobile
from lamina.applications.resnet import (
    ResNet50,
    ResNet101,
    ResNet152,
    ResNet50V2,
    ResNet101V2,
    ResNet152V2,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)
from lamina.applications.rnn import GRUModel, LSTMModel, SimpleRNNModel
from lamina.applications.transformer import TransformerModel
from lamina.applications.vgg import VGG11, VGG13, VGG16, VGG19
from lamina.applications.xception import Xception

__all__ = [
    "AlexNet", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny",
    "ConvNeXtXLarge", "DenseNet121", "DenseNet169", "DenseNet201", "EfficientNetB0",
    "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5",
    "EfficientNetB6", "EfficientNetB7", "EfficientNetV2B0", "EfficientNetV2B1",
    "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2L", "EfficientNetV2M",
    "EfficientNetV2S", "GPT", "GRUModel", "InceptionResNetV2", "InceptionV3", "LSTMModel", "LeNet5", "MobileNet",
    "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small", "NASNetLarge", "NASNetMobile",
    "ResNet101", "ResNet101V2",
    "ResNet152", "ResNet152V2", "ResNet50", "ResNet50V2", "SimpleRNNModel", "TransformerModel", "VGG11", "VGG13", "VGG16", "VGG19",
    "Xception", "create_model", "list_models", "load_torch_state_dict", "load_weights_by_name",
    "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
]


def list_models() -> list[str]:
    """The names `create_model` accepts, sorted."""
    return _registry.names("model")


def create_model(name: str, **kwargs: Any) -> Any:
    """The model registered as `name`, built with `kwargs`: `create_model('resnet18',
    num_classes=10)`. An unknown name raises an error listing the valid ones."""
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a model name (a string). Received: {name!r}. "
                        f"Valid names are: {', '.join(list_models())}.")
    return _registry.lookup("model", name)(**kwargs)
