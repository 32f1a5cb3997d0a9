"""The compile settings a `.keras` file records, read back from the archive's own JSON."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import torch

import lamina
from lamina import layers


def test_settings_a_config_cannot_describe_are_left_out(tmp_path):
    model = lamina.Sequential([lamina.Input((3,)), layers.Dense(2)])
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                  loss=lambda y_true, y_pred: ((y_true - y_pred) ** 2).mean(),
                  metrics=[("mae",), {"b": "mse"}], loss_weights=(1.0, 2))
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        recorded = json.loads(archive.read("config.json"))["compile_config"]
    # A torch optimizer and a lambda cannot be named in a file; everything else is kept as JSON.
    assert "optimizer" not in recorded and "loss" not in recorded
    assert recorded["metrics"] == [["mae"], {"b": "mse"}]
    assert recorded["loss_weights"] == [1.0, 2]


def test_named_objects_come_back_as_objects(tmp_path):
    model = lamina.Sequential([lamina.Input((3,)), layers.Dense(2)])
    model.compile(optimizer=lamina.optimizers.Adam(learning_rate=0.25),
                  loss=lamina.losses.Huber(delta=0.5), metrics=["mae"])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        recorded = json.loads(archive.read("config.json"))["compile_config"]
    assert recorded["loss"]["class_name"] == "Huber"
    assert recorded["loss"]["config"]["delta"] == 0.5
    loaded = lamina.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded._compile_config["loss"], lamina.losses.Huber)
    assert loaded._compile_config["loss"].get_config()["delta"] == 0.5
    assert isinstance(loaded._compile_config["optimizer"], lamina.optimizers.Adam)
    np.testing.assert_allclose(float(loaded._compile_config["optimizer"].learning_rate), 0.25)


def test_lamina_compile_arguments_come_back(tmp_path):
    # compile(device=, mixed_precision=) are Lamina's own; a loaded model is compiled with them.
    model = lamina.Sequential([lamina.Input((3,)), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", device="cpu", mixed_precision="bfloat16",
                  steps_per_execution=2)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        recorded = json.loads(archive.read("config.json"))["compile_config"]
    assert recorded["mixed_precision"] == "bfloat16" and recorded["device"] == "cpu"
    loaded = lamina.saving.load_model(tmp_path / "m.keras")
    assert loaded._compile_config["mixed_precision"] == "bfloat16"
    assert loaded._compile_config["steps_per_execution"] == 2
    assert loaded._trainer().autocast_dtype == torch.bfloat16
