"""What every image model of the zoo shares: Keras's input handling (`input_shape`,
`input_tensor`, minimum sizes), the top (`include_top`, `pooling`, `classes`,
`classifier_activation`), and the `weights` argument (None, a local file loaded by layer name,
or 'imagenet', which lamina never downloads).

Keras's applications fetch ImageNet weights from the internet; lamina downloads nothing. A
weights file is either one saved by lamina (`model.save_weights`) or a Keras weights file
(`resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`, ...): layer names in the Keras-layout
models here are Keras's, so such a file loads by name. `weights='imagenet'` loads Keras's file
when it is already in `~/.keras/models` or `~/.lamina/models`, and otherwise explains where to
put it.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, NamedTuple

import h5py
import numpy as np

from lamina import activations
from lamina._symbolic import KerasTensor
from lamina.errors import FileFormatError
from lamina.layers.layer import Layer
from lamina.models.functional import Input, InputLayer
from lamina.models.model import Model

_POOLINGS = (None, "avg", "max")
_KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


class KerasFile(NamedTuple):
    """A Keras weights file that Keras's `get_file` saves under another name than its URL's
    (NASNet: `NASNet-mobile.h5` is cached as `nasnet_mobile.h5`)."""

    url: str
    saved_as: str


# --------------------------------------------------------------------------- arguments


def check_arguments(weights: Any, include_top: bool, classes: Any, pooling: Any,
                    classifier_activation: Any, *, architecture: str,
                    keras_file: str | KerasFile | None = None,
                    classes_argument: str = "classes") -> None:
    """Every check of the arguments the image models share, made before anything is built.

    `keras_file` is the path of Keras's ImageNet weights under Keras's download folder, None
    where Keras publishes no weights for `architecture`.
    """
    check_classes(classes, classes_argument)
    if weights == "imagenet" and keras_file is None:
        raise ValueError(
            f"There are no Keras ImageNet weights for {architecture!r}. Pass weights=None and "
            "train it, pass the path of a weights file saved with model.save_weights(), or, for "
            "the torchvision-style models, load a torchvision state_dict with "
            "lamina.applications.load_torch_state_dict(model, torch.load(path))."
        )
    check_weights_argument(weights, include_top, classes)
    check_pooling(pooling)
    if include_top:
        check_classifier_activation(classifier_activation, weights)


def check_weights_argument(weights: Any, include_top: bool, classes: int,
                           imagenet_classes: int = 1000) -> None:
    """Keras's checks of `weights` and `classes`, made before anything is built."""
    if not (weights is None or weights == "imagenet" or
            (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError(
            "The `weights` argument should be either None (random initialization), 'imagenet' "
            "(pre-training on ImageNet, from a local copy of Keras's file), or the path to an "
            f"existing weights file to be loaded. Received: weights={weights!r}."
        )
    if weights == "imagenet" and include_top and classes != imagenet_classes:
        raise ValueError(
            f"If using weights='imagenet' with include_top=True, `classes` should be "
            f"{imagenet_classes}. Received: classes={classes}. Use include_top=False and add your "
            "own classifier for another number of classes."
        )


def check_classes(classes: Any, argument: str = "classes") -> int:
    if isinstance(classes, bool) or not isinstance(classes, int) or classes <= 0:
        raise ValueError(
            f"`{argument}` must be a positive integer (the number of classes). "
            f"Received: {argument}={classes!r}."
        )
    return classes


def check_pooling(pooling: Any) -> None:
    if pooling not in _POOLINGS:
        raise ValueError(
            "`pooling` must be None (the 4-D output of the last block), 'avg' (global average "
            f"pooling) or 'max' (global max pooling). Received: pooling={pooling!r}."
        )


def check_classifier_activation(classifier_activation: Any, weights: Any) -> None:
    """Pretrained classifiers were trained with softmax: only softmax or None (logits) keep
    their meaning, as Keras's `validate_activation` enforces."""
    activations.get(classifier_activation)
    if weights is None or classifier_activation in (None, "softmax") or \
            classifier_activation is activations.get("softmax"):
        return
    raise ValueError(
        "Only None and 'softmax' activations are allowed for the `classifier_activation` "
        "argument when using pretrained weights with include_top=True. Received: "
        f"classifier_activation={classifier_activation!r}."
    )


def image_input_shape(input_shape: Any, default_size: int, min_size: int, data_format: str,
                      require_flatten: bool, weights: Any, channels: int = 3) -> tuple:
    """Keras's `obtain_input_shape`: the input shape (without batch) a model is built for.

    `require_flatten` (a top with Flatten) needs a static shape; pretrained weights with such a
    top need exactly the default size.
    """
    first = data_format == "channels_first"

    def shaped(size: Any, depth: int) -> tuple:
        return (depth, size, size) if first else (size, size, depth)

    if input_shape is not None:
        input_shape = tuple(input_shape)
    if weights != "imagenet" and input_shape is not None and len(input_shape) == 3:
        default_shape = shaped(default_size, input_shape[0] if first else input_shape[-1])
    else:
        default_shape = shaped(default_size, channels)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError(
                "When setting include_top=True and loading 'imagenet' weights, `input_shape` "
                f"should be {default_shape}. Received: input_shape={input_shape}."
            )
        return default_shape
    if input_shape is None:
        input_shape = default_shape if require_flatten else shaped(None, channels)
    if len(input_shape) != 3 or any(
            d is not None and (isinstance(d, bool) or not isinstance(d, int) or d <= 0)
            for d in input_shape):
        layout = "(channels, height, width)" if first else "(height, width, channels)"
        raise ValueError(
            "`input_shape` must be a tuple of three positive integers (or None for a free "
            f"spatial size), {layout} for data_format={data_format!r}. Received: "
            f"input_shape={input_shape}."
        )
    depth = input_shape[0] if first else input_shape[-1]
    spatial = input_shape[1:] if first else input_shape[:2]
    if depth is None:
        raise ValueError(
            f"The channel axis of `input_shape` must be known. Received: input_shape={input_shape} "
            f"with data_format={data_format!r}."
        )
    if weights == "imagenet" and depth != channels:
        raise ValueError(
            f"The input must have {channels} channels to load 'imagenet' weights; Received: "
            f"input_shape={input_shape}."
        )
    if any(d is not None and d < min_size for d in spatial):
        raise ValueError(
            f"Input size must be at least {min_size}x{min_size}; Received: "
            f"input_shape={input_shape}."
        )
    if require_flatten and None in input_shape:
        raise ValueError(
            "If `include_top` is True, you should specify a static `input_shape` (the classifier "
            f"flattens the last feature map). Received: input_shape={input_shape}."
        )
    return input_shape


def source_inputs(tensor: KerasTensor) -> list[KerasTensor]:
    """The `Input` tensors a symbolic tensor was computed from (Keras's `get_source_inputs`)."""
    found: list[KerasTensor] = []
    seen: set[int] = set()
    stack = [tensor]
    while stack:
        current = stack.pop()
        node = current.node
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.layer, InputLayer):
            found.append(current)
        else:
            stack.extend(reversed(node.inputs))
    return found


def image_input(input_tensor: Any, input_shape: Any, *, default_size: int, min_size: int,
                data_format: str, require_flatten: bool, weights: Any,
                channels: int = 3) -> tuple[KerasTensor, Any]:
    """The symbolic image tensor a model starts from and the model's `inputs`.

    `input_tensor` (a symbolic tensor, Keras 3's rule) lets the model be built on the output of
    other layers; the model's inputs are then the `Input`s it came from.
    """
    if input_tensor is not None:
        if not isinstance(input_tensor, KerasTensor):
            raise TypeError(
                "`input_tensor` must be a symbolic tensor: lamina.Input(...) or a layer applied "
                f"to one. Received: input_tensor of type {type(input_tensor).__name__}."
            )
        if len(input_tensor.shape) != 4:
            raise ValueError(
                "`input_tensor` must be a batch of images (rank 4). Received: input_tensor of "
                f"shape {input_tensor.shape}."
            )
        if input_shape is None:
            input_shape = input_tensor.shape[1:]
    shape = image_input_shape(input_shape, default_size, min_size, data_format, require_flatten,
                              weights, channels)
    if input_tensor is None:
        image = Input(shape=shape)
        return image, image
    if any(a is not None and b is not None and a != b
           for a, b in zip(input_tensor.shape[1:], shape)):
        raise ValueError(
            f"`input_tensor` has shape {input_tensor.shape}, which does not fit the model's input "
            f"shape (None, {', '.join(str(d) for d in shape)})."
        )
    return input_tensor, _single(source_inputs(input_tensor))


def _single(inputs: list[KerasTensor]) -> Any:
    return inputs[0] if len(inputs) == 1 else inputs


def global_pooling(x: KerasTensor, pooling: str | None, data_format: str,
                   name: str | None = None) -> KerasTensor:
    """`pooling='avg'`/'max' (include_top=False): the feature map to a feature vector."""
    from lamina.layers.pooling import GlobalAveragePooling2D, GlobalMaxPooling2D

    if pooling == "avg":
        return GlobalAveragePooling2D(data_format=data_format, name=name)(x)
    if pooling == "max":
        return GlobalMaxPooling2D(data_format=data_format, name=name)(x)
    return x


def finish(inputs: Any, outputs: KerasTensor, name: str, weights: Any,
           keras_file: str | KerasFile | None = None) -> Model:
    """The functional model, with the weights of `weights` (a file, or 'imagenet': the local
    copy of `keras_file`) loaded by layer name."""
    model = Model(inputs, outputs, name=name)
    # A model used as the first layer of a Sequential tells it the input shape, as an
    # `input_shape=` argument would, so `Sequential([base, ...])` is built at construction.
    model._batch_input_shape = (None,) + tuple(model.inputs[0].shape[1:]) \
        if len(model.inputs) == 1 else None
    if weights is not None:
        load_weights_by_name(model, imagenet_file(keras_file) if weights == "imagenet" else weights)
    return model


# --------------------------------------------------------------------------- weights


def imagenet_file(keras_file: str | KerasFile) -> str:
    """A local copy of Keras's ImageNet weights file, or an error that says how to get one.

    `keras_file` is the file's path under Keras's download folder (`resnet/resnet50_...h5`),
    its full URL for the families Keras keeps elsewhere, or a `KerasFile` where Keras caches it
    under another name.
    """
    from lamina.datasets._download import cache_directory

    if isinstance(keras_file, KerasFile):
        file_name, url = keras_file.saved_as, keras_file.url
    else:
        file_name, url = os.path.basename(keras_file), _weights_url(keras_file)
    folders = [cache_directory(None, "models"),
               os.path.join(os.path.expanduser("~"), ".keras", "models")]
    for folder in folders:
        candidate = os.path.join(folder, file_name)
        if os.path.isfile(candidate):
            return candidate
    raise ValueError(
        f"weights='imagenet' needs Keras's file {file_name!r}, and lamina downloads nothing. "
        f"Download it once from {url}, then pass "
        f"weights='/path/to/{file_name}' or put it in one of {folders}. Or pass weights=None for "
        "random initialization."
    )


def load_weights_by_name(model: Layer, filepath: str | os.PathLike,
                         skip_mismatch: bool = False) -> None:
    """Load weights from an HDF5 file into the layers of `model` with the same names.

    Reads files saved by lamina (`save_weights`, `.weights.h5`) and Keras weights files (the
    legacy `layer_names` layout of Keras's published ImageNet weights). Layers absent from the
    file keep their weights, and the file's other layers are ignored, so a file saved from a full
    classifier loads into the same network built with `include_top=False`. A layer whose weights
    differ in number or shape raises, or with `skip_mismatch=True` warns and is left as it is.
    """
    path = os.fspath(filepath)
    if path.endswith(".keras"):
        raise ValueError(
            f"{path!r} is a whole-model `.keras` file; load_weights_by_name reads HDF5 weights "
            "files. Use model.load_weights(path) for it, or save the weights with "
            "model.save_weights('name.weights.h5')."
        )
    stored = _arrays_by_layer_name(path)
    matched, staged = 0, []
    for layer in _weighted_layers(model):
        if layer.name not in stored:
            continue
        matched += 1
        arrays = stored[layer.name]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        received = [tuple(a.shape) for a in arrays]
        if expected != received:
            message = (f"Layer {layer.name!r} ({type(layer).__name__}) has weights of shapes "
                       f"{expected}, but the file {path!r} has {received} for it.")
            if not skip_mismatch:
                raise ValueError(message + " Pass skip_mismatch=True to skip this layer.")
            warnings.warn(message + " Skipping it.", stacklevel=2)
            continue
        for weight, array in zip(layer.get_weights(), arrays):
            if weight.dtype.kind == "f" and array.dtype.kind != "f":
                raise FileFormatError(
                    f"{path!r}: a weight of layer {layer.name!r} is not a finite float array "
                    f"(dtype {array.dtype}); the file is damaged or crafted.")
        staged.append((layer, arrays))
    if matched == 0:
        raise ValueError(
            f"None of the layer names in {path!r} match a layer of model "
            f"{getattr(model, 'name', type(model).__name__)!r}, so no weights were loaded. The "
            "file was saved from another architecture; model.load_weights(path) matches "
            "layers by position instead."
        )
    # All or nothing: no layer changes unless every matched layer's weights were valid.
    for layer, arrays in staged:
        layer.set_weights(arrays)


def _weighted_layers(model: Layer) -> list[Layer]:
    """Every layer that stores weights itself, in the model's order (nested models included)."""
    return [m for m in model.modules() if isinstance(m, Layer) and m._own_weights()]


def _arrays_by_layer_name(path: str) -> dict[str, list[np.ndarray]]:
    """Every layer's arrays, after the file passed the loaders' checks (no links out of the file,
    no external or virtual storage, plain numbers, sizes within the file; finite values)."""
    from lamina.saving.file_format import inspect_weights, open_h5, reading
    from lamina.saving.format_version import h5_versions

    with open_h5(path, "load weights from it by layer name") as h5, reading(path, "its weights"):
        h5_versions(h5, path)
        inventory = inspect_weights(h5, path, os.path.getsize(path))
        root = "model_weights" if "model_weights" in h5 else ""
        if "layer_names" in (h5[root] if root else h5).attrs:
            found = _keras_legacy_arrays(h5[root] if root else h5, root, inventory)
        elif "model" in h5:
            found = {}
            _lamina_arrays(h5["model"], "model", inventory, found)
        elif "layers" in h5:
            # Keras 3's `.weights.h5` layout, which lamina's save_weights writes.
            found = {}
            _lamina_arrays(h5, "", inventory, found)
        else:
            raise FileFormatError(
                f"{path!r} is an HDF5 file but holds no Lamina or Keras weights (no 'model' group "
                "and no 'layer_names' attribute)."
            )
    for name, arrays in found.items():
        for array in arrays:
            # Integer arrays are legitimate for integer weights (a Normalization layer's
            # `count`, in EfficientNet's files); load_weights_by_name refuses them elsewhere.
            if array.dtype.kind in "iu":
                continue
            if array.dtype.kind != "f" or not np.isfinite(array).all():
                raise FileFormatError(
                    f"{path!r}: a weight of layer {name!r} is not a finite float array (dtype "
                    f"{array.dtype}); the file is damaged or crafted."
                )
    return found


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _dataset(inventory: Any, where: str) -> np.ndarray:
    # Only datasets the inspection walked and passed are read.
    if where not in inventory.datasets:
        raise FileFormatError(f"{inventory.source!r} names a weight at {where!r} that is not a "
                              "dataset of the file; the file is damaged or crafted.")
    return np.asarray(inventory.datasets[where][()])


def _keras_legacy_arrays(root: h5py.Group, prefix: str, inventory: Any
                         ) -> dict[str, list[np.ndarray]]:
    """Keras 2's layout: root attribute `layer_names`; each layer's group lists `weight_names`."""
    found = {}
    for layer_name in (_text(n) for n in root.attrs["layer_names"]):
        names = [_text(n) for n in root[layer_name].attrs.get("weight_names", [])]
        if names:
            base = f"{prefix}/{layer_name}".lstrip("/")
            found[layer_name] = [_dataset(inventory, f"{base}/{n}") for n in names]
    return found


def _lamina_arrays(group: h5py.Group, where: str, inventory: Any,
                   found: dict[str, list[np.ndarray]]) -> None:
    """Lamina's layouts: each layer's group holds `vars/0..n-1` and its layer's name (as an
    attribute of the group, or of `vars` in Keras 3's `.weights.h5` layout)."""
    count = len(group["vars"]) if "vars" in group else 0
    prefix = f"{where}/" if where else ""
    if count:
        name = group.attrs.get("name", group["vars"].attrs.get("name"))
        if name is not None:
            found[_text(name)] = [_dataset(inventory, f"{prefix}vars/{i}") for i in range(count)]
    if "layers" in group:
        for key, child in group["layers"].items():
            _lamina_arrays(child, f"{prefix}layers/{key}", inventory, found)


# --------------------------------------------------------------------------- small helpers


def _weights_url(keras_file: str) -> str:
    return keras_file if keras_file.startswith("https://") else _KERAS_WEIGHTS_URL + keras_file


def channel_axis(data_format: str) -> int:
    return 1 if data_format == "channels_first" else -1
