"""`model.summary()`: one row per layer (name, type, output shape, parameters) and the totals, the
sheet's MLP reporting Keras's 101,770 parameters."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import lamina
from lamina import layers


def summary_lines(model, **kwargs) -> list[str]:
    lines: list[str] = []
    model.summary(print_fn=lines.append, **kwargs)
    return lines


def row(lines: list[str], name: str) -> list[str]:
    """The cells of the row whose first cell starts with `name`."""
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0].startswith(name + " ("):
            return cells
    raise AssertionError(f"no row for {name!r} in:\n" + "\n".join(lines))


def test_the_sheets_mlp():
    model = lamina.Sequential([
        layers.Dense(128, activation="relu", input_shape=(784,), name="dense"),
        layers.Dropout(0.2, name="dropout"),
        layers.Dense(10, activation="softmax", name="dense_1"),
    ], name="sheet_mlp")
    lines = summary_lines(model)
    assert lines[0] == 'Model: "sheet_mlp"'
    assert row(lines, "dense") == ["dense (Dense)", "(None, 128)", "100,480"]
    assert row(lines, "dropout") == ["dropout (Dropout)", "(None, 128)", "0"]
    assert row(lines, "dense_1") == ["dense_1 (Dense)", "(None, 10)", "1,290"]
    assert " Total params: 101,770 (397.54 KB)" in lines
    assert " Trainable params: 101,770 (397.54 KB)" in lines
    assert " Non-trainable params: 0 (0.00 B)" in lines


def test_trainable_and_non_trainable_totals():
    model = lamina.Sequential([layers.Dense(4, input_shape=(3,), name="frozen"),
                               layers.BatchNormalization(name="bn"), layers.Dense(1, name="head")])
    model.get_layer("frozen").trainable = False
    lines = summary_lines(model, show_trainable=True)
    assert row(lines, "frozen")[-1] == "N" and row(lines, "head")[-1] == "Y"
    assert row(lines, "bn")[2] == "16"
    assert any(line.startswith(" Total params: 37 ") for line in lines)
    # frozen kernel and bias (16) + moving mean and variance (8)
    assert any(line.startswith(" Trainable params: 13 ") for line in lines)
    assert any(line.startswith(" Non-trainable params: 24 ") for line in lines)


def test_functional_model_with_input_and_torch_modules():
    inputs = lamina.Input(shape=(8,), name="features")
    x = layers.TorchModuleWrapper(nn.Linear(8, 4), name="torch_linear")(inputs)
    outputs = layers.Dense(2, name="head")(torch.relu(x))
    lines = summary_lines(lamina.Model(inputs, outputs, name="mixed"))
    assert row(lines, "features") == ["features (InputLayer)", "(None, 8)", "0"]
    assert row(lines, "torch_linear") == ["torch_linear (TorchModuleWrapper)", "(None, 4)", "36"]
    assert any(line.startswith(" Total params: 46 ") for line in lines)


def test_sequential_with_a_plain_torch_module():
    model = lamina.Sequential([lamina.Input((3,)), nn.Linear(3, 5), layers.Dense(1, name="head")])
    lines = summary_lines(model)
    assert row(lines, "linear") == ["linear (Linear)", "(None, 5)", "20"]
    assert any(line.startswith(" Total params: 26 ") for line in lines)


def test_expand_nested_shows_the_inner_layers():
    inner = lamina.Sequential([layers.Dense(3, input_shape=(2,), name="inner_dense")], name="inner")
    inputs = lamina.Input(shape=(2,))
    model = lamina.Model(inputs, layers.Dense(1, name="outer_dense")(inner(inputs)))
    flat = summary_lines(model)
    assert row(flat, "inner") == ["inner (Sequential)", "(None, 3)", "9"]
    assert not any("inner_dense" in line for line in flat)
    nested = summary_lines(model, expand_nested=True)
    assert any(line.startswith("  inner_dense (Dense)") for line in nested)


def test_summary_of_an_unbuilt_model_says_how_to_build_it():
    with pytest.raises(ValueError, match=re.escape("Model 'later' has not yet been built, so it has no output shapes or weights to summarize. Build it by calling it on data, by giving the first layer an input_shape, or with model.build(input_shape).")):
        lamina.Sequential([layers.Dense(2)], name="later").summary()


def test_summary_prints_by_default(capsys):
    model = lamina.Sequential([layers.Dense(2, input_shape=(3,))], name="printed")
    model.summary()
    assert 'Model: "printed"' in capsys.readouterr().out
