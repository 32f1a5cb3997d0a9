"""Saving and loading: `.keras` archives, legacy `.h5`, `.weights.h5` and the sheet's calls; equal
outputs after loading; custom objects; Lambda's safety; atomic writes."""

from __future__ import annotations

import json
import os
import zipfile

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import lamina
import lamina as keras
from lamina import layers
from lamina.errors import UnknownNameError, UnsafeLoadError
from lamina.saving import register_keras_serializable


def mlp_with_batch_norm():
    model = lamina.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                               layers.BatchNormalization(), layers.Dropout(0.1),
                               layers.Dense(3, activation="softmax")])
    model.train()
    model(torch.randn(32, 4) * 3 + 1)  # moving statistics away from their initial values
    model.eval()
    return model, torch.randn(5, 4)


def functional_multi_io():
    tokens = lamina.Input(shape=(6,), dtype="int64", name="tokens")
    numbers = lamina.Input(shape=(3,), name="numbers")
    embedded = layers.Embedding(20, 4, mask_zero=True)(tokens)
    sequence, _ = layers.TorchModuleWrapper(nn.GRU(4, 5, batch_first=True), name="gru")(embedded)
    shared = layers.Dense(5, name="shared")
    joined = layers.Concatenate()([shared(sequence[:, -1]), shared(torch.cat([numbers, numbers[:, :2]], -1))])
    model = lamina.Model({"tokens": tokens, "numbers": numbers},
                         {"a": layers.Dense(2, name="a")(joined), "b": layers.Dense(1, name="b")(joined)})
    data = {"tokens": torch.randint(0, 20, (3, 6)), "numbers": torch.randn(3, 3)}
    return model, data


def nested():
    inner = lamina.Sequential([layers.Dense(4, activation="tanh", input_shape=(3,)),
                               layers.LayerNormalization()], name="inner")
    inputs = lamina.Input(shape=(3,))
    model = lamina.Model(inputs, layers.Dense(2)(inner(inputs)))
    return model, torch.randn(4, 3)


MODELS = {"sequential": mlp_with_batch_norm, "functional": functional_multi_io, "nested": nested}


def assert_same(a, b):
    if isinstance(a, dict):
        for key in a:
            torch.testing.assert_close(a[key], b[key])
    else:
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("filename", ["model.keras", "model.h5"])
def test_save_and_load_model(kind, filename, tmp_path):
    model, data = MODELS[kind]()
    model.save(tmp_path / filename)
    loaded = lamina.models.load_model(tmp_path / filename)
    assert type(loaded) is type(model)
    assert_same(loaded(data), model(data))
    for mine, theirs in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert loaded.get_config() == model.get_config()


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("filename", ["model.weights.h5", "weights.h5", "model.keras"])
def test_weights_load_into_a_freshly_built_model(kind, filename, tmp_path):
    model, data = MODELS[kind]()
    if filename.endswith(".keras"):
        model.save(tmp_path / filename)
    else:
        model.save_weights(tmp_path / filename)
    fresh, _ = MODELS[kind]()  # same architecture, other weights and other layer names
    assert not np.allclose(fresh.get_weights()[0], model.get_weights()[0])
    fresh.load_weights(tmp_path / filename)
    assert_same(fresh(data), model(data))


def test_the_sheets_calls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, x = mlp_with_batch_norm()
    model.save('model.h5')
    restored = keras.models.load_model('model.h5')
    torch.testing.assert_close(restored(x), model(x))
    model.save_weights('weights.h5')
    other, _ = mlp_with_batch_norm()
    other.load_weights('weights.h5')
    torch.testing.assert_close(other(x), model(x))


def test_state_dict_loads_into_an_identically_built_model():
    model, data = MODELS["functional"]()
    fresh, _ = MODELS["functional"]()
    fresh.load_state_dict(model.state_dict())
    assert_same(fresh(data), model(data))


def test_keras_archive_layout(tmp_path):
    model, _ = mlp_with_batch_norm()
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert set(archive.namelist()) == {"metadata.json", "config.json", "model.weights.h5"}
        config = json.loads(archive.read("config.json"))
        metadata = json.loads(archive.read("metadata.json"))
        weights = archive.read("model.weights.h5")
    assert config["class_name"] == "Sequential" and config["build_config"]["input_shape"] == [None, 4]
    assert metadata["lamina_version"] == lamina.__version__
    path = tmp_path / "weights.h5"
    path.write_bytes(weights)
    with h5py.File(path) as h5:
        # Keras 3's tree: layers keyed by class name, numbered per class; Keras layouts.
        assert h5["layers/dense/vars/0"].shape == (4, 8)
        assert h5["layers/batch_normalization/vars"]["2"].attrs["name"] == "moving_mean"
        assert h5["layers/dense_1/vars/0"].shape == (8, 3)


def test_compile_state_is_saved(tmp_path):
    model, _ = mlp_with_batch_norm()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / "compiled.keras")
    loaded = lamina.models.load_model(tmp_path / "compiled.keras")
    assert loaded.get_compile_config() == model.get_compile_config()
    assert lamina.models.load_model(tmp_path / "compiled.keras", compile=False).optimizer is None


def test_overwrite_false_and_bad_extensions(tmp_path):
    model, _ = mlp_with_batch_norm()
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError, match="already exists. Pass overwrite=True"):
        model.save(tmp_path / "m.keras", overwrite=False)
    with pytest.raises(ValueError, match=r"Invalid filepath extension for saving: give a `.keras` \(recommended\) or `.h5` path. Received: filepath='.*m.pt'"):
        model.save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"The filename must end in `.weights.h5` \(or `.h5`\) for save_weights"):
        model.save_weights(tmp_path / "w.pt")


def test_unbuilt_models_have_no_weights_to_save_or_load(tmp_path):
    model, _ = mlp_with_batch_norm()
    model.save_weights(tmp_path / "w.weights.h5")
    unbuilt = lamina.Sequential([layers.Dense(2)], name="unbuilt")
    with pytest.raises(ValueError, match="Model 'unbuilt' is not built yet, so it has no weights to save."):
        unbuilt.save_weights(tmp_path / "u.weights.h5")
    with pytest.raises(ValueError, match="Model 'unbuilt' is not built, so its weights do not exist yet"):
        unbuilt.load_weights(tmp_path / "w.weights.h5")


# ---------------------------------------------------------------------------- custom code


def test_lambda_refuses_to_load_unless_safe_mode_is_off(tmp_path):
    model = lamina.Sequential([layers.Dense(3, input_shape=(2,)),
                               layers.Lambda(lambda x: torch.tanh(x) * 3)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(UnsafeLoadError, match="Lambda layer.*disabled by default.*safe_mode=False"):
        lamina.models.load_model(tmp_path / "lambda.keras")
    loaded = lamina.models.load_model(tmp_path / "lambda.keras", safe_mode=False)
    x = torch.randn(2, 2)
    torch.testing.assert_close(loaded(x), model(x))


class CustomLayer(keras.layers.Layer):
    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units))
        self.b = self.add_weight(shape=(self.units,))

    def call(self, inputs):
        return torch.matmul(inputs, self.w) + self.b


def test_custom_layer_needs_custom_objects_and_keeps_its_arguments(tmp_path):
    model = lamina.Sequential([CustomLayer(4, input_shape=(3,)), layers.Dense(1)])
    model.save(tmp_path / "custom.keras")
    with pytest.raises(UnknownNameError, match=r"Could not find the layer class 'CustomLayer'.*custom_objects=\{'CustomLayer': \.\.\.\}.*register_keras_serializable"):
        lamina.models.load_model(tmp_path / "custom.keras")
    loaded = lamina.models.load_model(tmp_path / "custom.keras",
                                      custom_objects={"CustomLayer": CustomLayer})
    assert loaded.layers[0].units == 4
    x = torch.randn(2, 3)
    torch.testing.assert_close(loaded(x), model(x))


def test_registered_custom_activation_and_layer(tmp_path):
    @register_keras_serializable(package="saving_tests")
    def doubled_tanh(x):
        return 2 * torch.tanh(x)

    @register_keras_serializable(package="saving_tests")
    class Scale(layers.Layer):
        def __init__(self, factor=1.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

    model = lamina.Sequential([layers.Dense(3, activation=doubled_tanh, input_shape=(2,)),
                               Scale(factor=0.5)])
    model.save(tmp_path / "registered.h5")
    loaded = lamina.models.load_model(tmp_path / "registered.h5")
    x = torch.randn(4, 2)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.layers[0].activation is doubled_tanh and loaded.layers[1].factor == 0.5


def test_plain_torch_modules_save_with_the_model(tmp_path):
    model = lamina.Sequential([lamina.Input((4,)), nn.Linear(4, 3), nn.LeakyReLU(0.1),
                               nn.LayerNorm(3, eps=1e-3), layers.Dense(2)])
    model.save(tmp_path / "torch.keras")
    loaded = lamina.models.load_model(tmp_path / "torch.keras")
    assert isinstance(loaded.layers[1], nn.LeakyReLU) and loaded.layers[1].negative_slope == 0.1
    x = torch.randn(3, 4)
    torch.testing.assert_close(loaded(x), model(x))


def test_user_torch_modules_save_weights_but_not_architecture(tmp_path):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 3)

        def forward(self, x):
            return self.linear(self.linear(x))

    model = lamina.Sequential([lamina.Input((3,)), Twice(), layers.Dense(1)])
    with pytest.raises(ValueError, match="Cannot save the torch module .*Twice used as a layer: only torch.nn's own modules.*model.save_weights"):
        model.save(tmp_path / "twice.keras")
    assert not (tmp_path / "twice.keras").exists()
    model.save_weights(tmp_path / "twice.weights.h5")
    other = lamina.Sequential([lamina.Input((3,)), Twice(), layers.Dense(1)])
    other.load_weights(tmp_path / "twice.weights.h5")
    x = torch.randn(2, 3)
    torch.testing.assert_close(other(x), model(x))


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("filename", ["model.keras", "model.h5", "model.weights.h5"])
def test_a_failed_write_leaves_the_previous_file_intact(filename, tmp_path, monkeypatch):
    model, _ = mlp_with_batch_norm()
    path = tmp_path / filename
    save = model.save_weights if filename.endswith(".weights.h5") else model.save
    save(path)
    before = path.read_bytes()

    from lamina.saving import saving_api

    # Fail once part of the new file is written: in a .keras archive after its first entry
    # (the config is written second), in HDF5 files after the weights.
    if filename.endswith(".keras"):
        def fail(model):
            raise OSError("disk full")

        monkeypatch.setattr(saving_api, "_model_document", fail)
    else:
        writer = "write_legacy_weights" if filename == "model.h5" else "write_weights"
        real_write_weights = getattr(saving_api, writer)

        def write_then_fail(module, group, *layout):
            real_write_weights(module, group, *layout)
            raise OSError("disk full")

        monkeypatch.setattr(saving_api, writer, write_then_fail)
    model.layers[0].set_weights([w + 1 for w in model.layers[0].get_weights()])
    with pytest.raises(OSError, match="disk full"):
        save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [filename]  # no temporary file left behind


def test_saving_an_unbuilt_model_says_how_to_build_it(tmp_path):
    model = lamina.Sequential([lamina.layers.Dense(3)])
    with pytest.raises(ValueError, match="not built yet"):
        model.save(tmp_path / "model.keras")
    assert not (tmp_path / "model.keras").exists()
