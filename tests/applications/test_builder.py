"""Keras's application arguments: input handling, the top, `weights` (files loaded by layer name,
'imagenet' from a local copy only), and the errors for arguments that cannot work."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

import lamina
from lamina import applications
from lamina.errors import FileFormatError, ShapeError


def _lenet_arrays(seed: int = 0) -> dict[str, list[np.ndarray]]:
    """LeNet-5 weights in Keras's layouts, keyed by Keras's layer names."""
    rng = np.random.default_rng(seed)
    shapes = {"conv1": [(5, 5, 1, 6), (6,)], "conv2": [(5, 5, 6, 16), (16,)],
              "fc1": [(400, 120), (120,)], "fc2": [(120, 84), (84,)],
              "predictions": [(84, 10), (10,)]}
    return {name: [rng.normal(size=s).astype(np.float32) for s in layer_shapes]
            for name, layer_shapes in shapes.items()}


def _write_keras_legacy_file(path, arrays: dict[str, list[np.ndarray]]) -> None:
    """The layout of Keras's published weights files: `layer_names`, then per layer
    `weight_names` and one dataset per weight."""
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = [name.encode() for name in ["input_1", *arrays]]
        h5.create_group("input_1").attrs["weight_names"] = []
        for name, values in arrays.items():
            group = h5.create_group(name)
            kinds = ["kernel", "bias"]
            names = [f"{name}/{kind}:0".encode() for kind in kinds[:len(values)]]
            group.attrs["weight_names"] = names
            for weight_name, value in zip(names, values):
                group.create_dataset(weight_name.decode(), data=value)


def test_keras_weights_file_loads_by_layer_name(tmp_path):
    arrays = _lenet_arrays()
    path = tmp_path / "lenet_keras.h5"
    _write_keras_legacy_file(path, arrays)
    model = applications.LeNet5(weights=str(path))
    for name, values in arrays.items():
        for loaded, expected in zip(model.get_layer(name).get_weights(), values):
            np.testing.assert_array_equal(loaded, expected)


def test_lamina_weights_file_round_trip_and_headless_load(tmp_path):
    lamina.set_random_seed(0)
    source = applications.LeNet5()
    path = tmp_path / "lenet.weights.h5"
    source.save_weights(path)
    x = torch.rand(2, 32, 32, 1)
    with torch.no_grad():
        torch.testing.assert_close(applications.LeNet5(weights=str(path))(x), source(x))
        headless = applications.LeNet5(include_top=False, pooling="avg", weights=str(path))
        expected = source.get_layer("pool2")(source.get_layer("conv2")(
            source.get_layer("pool1")(source.get_layer("conv1")(x)))).mean(dim=(1, 2))
        torch.testing.assert_close(headless(x), expected)


def test_weights_are_independent_of_the_data_format(tmp_path):
    lamina.set_random_seed(0)
    source = applications.LeNet5()
    path = tmp_path / "lenet.weights.h5"
    source.save_weights(path)
    channels_first = applications.LeNet5(weights=str(path), input_shape=(1, 32, 32),
                                         data_format="channels_first")
    x = torch.rand(2, 32, 32, 1)
    with torch.no_grad():
        torch.testing.assert_close(channels_first(x.permute(0, 3, 1, 2)), source(x))


def test_skip_mismatch_loads_the_layers_that_fit(tmp_path):
    path = tmp_path / "lenet_keras.h5"
    arrays = _lenet_arrays()
    _write_keras_legacy_file(path, arrays)
    with pytest.raises(ValueError, match=r"Layer 'predictions' \(Dense\) has weights of shapes "
                                         r"\[\(84, 4\), \(4,\)\], but the file .* has "
                                         r"\[\(84, 10\), \(10,\)\].*skip_mismatch=True"):
        applications.LeNet5(classes=4, weights=str(path))
    model = applications.LeNet5(classes=4)
    before = model.get_layer("predictions").get_weights()
    with pytest.warns(UserWarning, match=r"Layer 'predictions' .* Skipping it"):
        applications.load_weights_by_name(model, path, skip_mismatch=True)
    np.testing.assert_array_equal(model.get_layer("conv1").get_weights()[0], arrays["conv1"][0])
    np.testing.assert_array_equal(model.get_layer("predictions").get_weights()[0], before[0])


def test_a_mismatch_in_a_later_layer_loads_nothing(tmp_path):
    path = tmp_path / "lenet_keras.h5"
    arrays = _lenet_arrays()
    arrays["fc2"] = [np.zeros((120, 80), np.float32), np.zeros((80,), np.float32)]
    _write_keras_legacy_file(path, arrays)
    model = applications.LeNet5()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"Layer 'fc2'"):
        applications.load_weights_by_name(model, path)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)  # conv1, conv2, fc1 were valid but not loaded


def _external_link(path, canary) -> None:
    with h5py.File(canary, "w") as h5:
        h5["secret"] = np.full((5, 5, 1, 6), 7.0, np.float32)
    _write_keras_legacy_file(path, _lenet_arrays())
    with h5py.File(path, "a") as h5:
        del h5["conv1/conv1/kernel:0"]
        h5["conv1/conv1/kernel:0"] = h5py.ExternalLink(str(canary), "secret")


def _nan_kernel(path, canary) -> None:
    arrays = _lenet_arrays()
    arrays["fc1"][0][3, 4] = np.nan
    _write_keras_legacy_file(path, arrays)


def _int_kernel(path, canary) -> None:
    arrays = _lenet_arrays()
    arrays["fc2"][0] = arrays["fc2"][0].astype(np.int64)
    _write_keras_legacy_file(path, arrays)


@pytest.mark.parametrize("craft, fragment", [
    (_external_link, "ExternalLink"),
    (_nan_kernel, "not a finite float array"),
    (_int_kernel, "not a finite float array"),
], ids=["external link", "NaN kernel", "int64 kernel"])
def test_hostile_files_are_refused_and_load_nothing(tmp_path, craft, fragment):
    path = tmp_path / "crafted.h5"
    craft(path, tmp_path / "canary.h5")
    model = applications.LeNet5()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(FileFormatError, match=fragment):
        applications.load_weights_by_name(model, path)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_a_file_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    _write_keras_legacy_file(path, {"block1_conv1": [np.zeros((3, 3, 3, 64), np.float32)]})
    with pytest.raises(ValueError, match=r"None of the layer names in .* match a layer of model "
                                         r"'lenet5'"):
        applications.LeNet5(weights=str(path))
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as h5:
        h5.create_group("something")
    with pytest.raises(ValueError, match=r"holds no Lamina or Keras weights"):
        applications.LeNet5(weights=str(empty))


def test_imagenet_is_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LAMINA_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match=r"weights='imagenet' needs Keras's file "
                                         r"'resnet50_weights_tf_dim_ordering_tf_kernels_notop\.h5'"
                                         r", and lamina downloads nothing"):
        applications.ResNet50(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"no Keras ImageNet weights for 'lenet5'"):
        applications.LeNet5(weights="imagenet")
    with pytest.raises(ValueError, match=r"load_torch_state_dict"):
        applications.resnet18(weights="imagenet")


def test_imagenet_loads_a_local_copy_of_keras_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LAMINA_DATA_DIR", raising=False)
    folder = tmp_path / ".keras" / "models"
    folder.mkdir(parents=True)
    kernel = np.random.default_rng(0).normal(size=(7, 7, 3, 64)).astype(np.float32)
    _write_keras_legacy_file(folder / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             {"conv1_conv": [kernel, np.ones(64, np.float32)]})
    model = applications.ResNet50(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    np.testing.assert_array_equal(model.get_layer("conv1_conv").get_weights()[0], kernel)


@pytest.mark.parametrize("weights_file, include_top, saved_as", [
    # Keras's nasnet.py: get_file("nasnet_mobile.h5", ".../nasnet/NASNet-mobile.h5"), ...
    ("NASNet-mobile", True, "nasnet_mobile.h5"),
    ("NASNet-mobile", False, "nasnet_mobile_no_top.h5"),
    ("NASNet-large", True, "nasnet_large.h5"),
    ("NASNet-large", False, "nasnet_large_no_top.h5"),
])
def test_imagenet_finds_a_file_under_the_name_keras_saved_it_as(
        tmp_path, monkeypatch, weights_file, include_top, saved_as):
    from lamina.applications import nasnet
    from lamina.applications._builder import imagenet_file

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LAMINA_DATA_DIR", raising=False)
    keras_file = nasnet.imagenet_weights(weights_file, include_top)
    url = ("https://storage.googleapis.com/tensorflow/keras-applications/nasnet/"
           f"{weights_file}{'' if include_top else '-no-top'}.h5")
    with pytest.raises(ValueError, match=rf"needs Keras's file '{saved_as}'.*from {url}, then"):
        imagenet_file(keras_file)
    folder = tmp_path / ".keras" / "models"
    folder.mkdir(parents=True)
    (folder / saved_as).write_bytes(b"")
    assert imagenet_file(keras_file) == str(folder / saved_as)


ARGUMENT_ERRORS = [
    ("VGG16", {"weights": "missing/file.h5"}, ValueError,
     r"The `weights` argument should be either None .*Received: weights='missing/file.h5'"),
    ("ResNet50", {"weights": "imagenet", "classes": 10}, ValueError,
     r"If using weights='imagenet' with include_top=True, `classes` should be 1000"),
    ("ResNet50", {"classes": 0}, ValueError, r"`classes` must be a positive integer.*classes=0"),
    ("resnet18", {"num_classes": -1}, ValueError, r"`num_classes` must be a positive integer"),
    ("ResNet50", {"include_top": False, "pooling": "mean"}, ValueError,
     r"`pooling` must be None .*Received: pooling='mean'"),
    ("ResNet50", {"input_shape": (16, 16, 3)}, ValueError,
     r"Input size must be at least 32x32; Received: input_shape=\(16, 16, 3\)"),
    ("VGG16", {"input_shape": (None, None, 3)}, ValueError,
     r"If `include_top` is True, you should specify a static `input_shape`"),
    ("VGG16", {"weights": "imagenet", "input_shape": (200, 200, 3)}, ValueError,
     r"`input_shape` should be \(224, 224, 3\). Received: input_shape=\(200, 200, 3\)"),
    ("ResNet50", {"weights": "imagenet", "include_top": False, "input_shape": (64, 64, 1)},
     ValueError, r"The input must have 3 channels to load 'imagenet' weights"),
    ("ResNet50", {"input_shape": (64, 64)}, ValueError,
     r"`input_shape` must be a tuple of three positive integers .*\(height, width, channels\)"),
    ("LeNet5", {"input_tensor": np.zeros((1, 32, 32, 1))}, TypeError,
     r"`input_tensor` must be a symbolic tensor.*Received: input_tensor of type ndarray"),
    ("AlexNet", {"input_shape": (60, 60, 3)}, ValueError, r"Input size must be at least 67x67"),
    ("VGG11", {"data_format": "NHWC"}, ValueError, r"`data_format` must be 'channels_last' or"),
]


@pytest.mark.parametrize("name, kwargs, error, message", ARGUMENT_ERRORS,
                         ids=[f"{e[0]}-{'-'.join(e[1])}" for e in ARGUMENT_ERRORS])
def test_argument_errors(name, kwargs, error, message):
    with torch.device("meta"), pytest.raises(error, match=message):
        applications.create_model(name, **kwargs)


def test_pretrained_classifiers_keep_softmax(tmp_path):
    path = tmp_path / "lenet.h5"
    _write_keras_legacy_file(path, _lenet_arrays())
    with pytest.raises(ValueError, match=r"Only None and 'softmax' activations are allowed .*"
                                         r"classifier_activation='relu'"):
        applications.LeNet5(weights=str(path), classifier_activation="relu")


def test_input_tensor_builds_on_other_layers():
    inputs = lamina.Input((40, 40, 3))
    scaled = lamina.layers.Rescaling(1 / 255)(inputs)
    model = applications.resnet18(input_tensor=scaled, include_top=False, pooling="max")
    assert model.inputs[0] is inputs
    assert model.output_shape == (None, 512)
    with pytest.raises(ValueError, match=r"`input_tensor` has shape \(None, 40, 40, 3\), which "
                                         r"does not fit"):
        applications.resnet18(input_tensor=scaled, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"`input_tensor` must be a batch of images \(rank 4\)"):
        applications.resnet18(input_tensor=lamina.Input((40, 3)))


@pytest.mark.parametrize("pooling, shape, last", [
    (None, (None, 2, 2, 512), "MaxPooling2D"), ("avg", (None, 512), "GlobalAveragePooling2D"),
    ("max", (None, 512), "GlobalMaxPooling2D")])
def test_headless_outputs(pooling, shape, last):
    with torch.device("meta"):
        model = applications.VGG16(include_top=False, pooling=pooling, input_shape=(64, 64, 3))
    assert model.output_shape == shape
    assert type(model.layers[-1]).__name__ == last


def test_channels_first_images():
    model = applications.VGG11(input_shape=(3, 32, 32), classes=2, data_format="channels_first")
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 2)
    with pytest.raises(ShapeError):
        model(torch.rand(1, 32, 32, 3))


def test_keras_layer_names():
    with torch.device("meta"):
        resnet = applications.ResNet50()
        vgg = applications.VGG16()
    names = [layer.name for layer in resnet.layers]
    assert names[1:7] == ["conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu", "pool1_pad",
                          "pool1_pool"]
    assert names[-3:] == ["conv5_block3_out", "avg_pool", "predictions"]
    assert "conv2_block1_0_conv" in names and "conv4_block6_3_bn" in names
    assert [layer.name for layer in vgg.layers][-4:] == ["flatten", "fc1", "fc2", "predictions"]
