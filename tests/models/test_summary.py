"""`model.summary()` against Keras 3's own, character for character: the same models built in
both libraries (every layer and model named explicitly, so auto-naming plays no part), the
plain text Keras's rich console writes to `print_fn` compared with ours."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
import torch
from torch import nn

import lamina
from lamina import layers

os.environ.setdefault("KERAS_BACKEND", "torch")
try:  # Keras 3 is the oracle of the comparisons; the other tests run without it
    import keras
except ImportError:
    keras = None
needs_keras = pytest.mark.skipif(keras is None, reason="Keras 3 is not installed")


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    # Both libraries narrow the table to the terminal; a known width keeps them comparable.
    monkeypatch.setenv("COLUMNS", "200")


def summary(model, **kwargs) -> str:
    texts: list[str] = []
    model.summary(print_fn=texts.append, **kwargs)
    assert len(texts) == 1  # Keras 3 hands print_fn the whole table at once
    return texts[0]


def mlp(lib):
    return lib.Sequential([lib.Input((784,)),
                           lib.layers.Dense(128, activation="relu", name="dense"),
                           lib.layers.Dropout(0.2, name="dropout"),
                           lib.layers.Dense(10, activation="softmax", name="dense_1")],
                          name="sheet_mlp")


def merge(lib):
    a, b = lib.Input((8,), name="a"), lib.Input((4,), name="b")
    x = lib.layers.Dense(16, name="d1")(a)
    y = lib.layers.Dense(16, name="d2")(b)
    z = lib.layers.Concatenate(name="cat")([x, y])
    return lib.Model([a, b], lib.layers.Dense(1, name="out")(z), name="merge")


def nested(lib):
    inner = lib.Sequential([lib.Input((2,)), lib.layers.Dense(3, name="inner_dense"),
                            lib.layers.BatchNormalization(name="bn")], name="inner")
    branch_input = lib.Input((3,), name="branch_in")
    branch = lib.Model(branch_input, lib.layers.Dense(2, name="branch_dense")(branch_input),
                       name="branch")
    x = lib.Input((2,), name="x")
    hidden = inner(x)
    outputs = lib.layers.Add(name="add")([branch(hidden), lib.layers.Dense(2, name="skip")(hidden)])
    return lib.Model(x, outputs, name="nested")


def shared_and_long_names(lib):
    """A layer called twice (call indices), several outputs, and names and connection lists
    too long for their cells (wrapped, or cut with an ellipsis)."""
    inputs = [lib.Input((4,), name=f"input_number_{i}") for i in range(4)]
    shared = lib.layers.Dense(4, name="a_shared_dense_layer_with_a_very_long_name_indeed")
    left, right = shared(inputs[0]), shared(inputs[1])
    joined = lib.layers.Concatenate(name="joined")([left, right, inputs[2], inputs[3]])
    frozen = lib.layers.Dense(3, name="frozen")
    frozen.trainable = False
    return lib.Model(inputs, [frozen(joined), lib.layers.Dense(1, name="score")(joined)],
                     name="shared")


def conv(lib):
    return lib.Sequential([lib.Input((28, 28, 1)),
                           lib.layers.Conv2D(8, 3, name="conv"),
                           lib.layers.BatchNormalization(name="norm"),
                           lib.layers.MaxPooling2D(name="pool"),
                           lib.layers.Flatten(name="flat"),
                           lib.layers.Dense(10, name="logits")], name="conv")


MODELS = {"mlp": mlp, "merge": merge, "nested": nested, "shared": shared_and_long_names,
          "conv": conv}
OPTIONS = [
    {},
    {"show_trainable": True},
    {"expand_nested": True},
    {"expand_nested": True, "show_trainable": True, "line_length": 100},
    {"line_length": 60},
    {"line_length": 50, "show_trainable": True},
]


@needs_keras
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("build", MODELS.values(), ids=MODELS.keys())
def test_summary_is_keras_summary(build, options):
    assert summary(build(lamina), **options) == summary(build(keras), **options)


@pytest.mark.parametrize("build, options", [
    (mlp, {"positions": [0.5, 0.7, 1.0]}),
    (merge, {"positions": [0.25, 0.5, 0.6, 1.0], "line_length": 90}),
    (mlp, {"layer_range": ["dropout", "dense_1"]}),
    (merge, {"layer_range": ["d.", "cat"]}),
    (nested, {"layer_range": ["skip", "inner"], "expand_nested": True}),  # reversed: both ends
])
@needs_keras
def test_positions_and_layer_range_as_keras(build, options):
    assert summary(build(lamina), **options) == summary(build(keras), **options)


@needs_keras
def test_a_trained_model_counts_its_optimizer_variables_as_keras():
    x = np.random.default_rng(0).normal(size=(8, 784)).astype("float32")
    y = np.eye(10, dtype="float32")[np.arange(8) % 10]
    texts = {}
    for lib in (lamina, keras):
        model = mlp(lib)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        model.fit(x, y, epochs=1, verbose=0)
        texts[lib] = summary(model)
    assert texts[lamina] == texts[keras]
    assert " Optimizer params: 203,542 (795.09 KB)" in texts[lamina]  # 2 x 101,770 + 2


@needs_keras
def test_an_unbuilt_model_is_listed_as_keras_lists_it():
    build = lambda lib: lib.Sequential([lib.layers.Dense(2, name="later_dense")],  # noqa: E731
                                       name="later")
    text = summary(build(lamina))
    assert text == summary(build(keras))
    assert "│ later_dense (Dense)" in text and "0 (unbuilt)" in text and "│ ?  " in text


@needs_keras
def test_an_empty_model_and_an_unbuilt_subclassed_model_as_keras():
    def subclassed(lib):
        class Two(lib.Model):
            def __init__(self):
                super().__init__(name="two")
                self.first = lib.layers.Dense(3, name="first")
                self.second = lib.layers.Dense(1, name="second")

            def call(self, x):
                return self.second(self.first(x))

        return Two()

    for build in (subclassed, lambda lib: lib.Sequential(name="empty")):
        assert summary(build(lamina), show_trainable=True) == \
            summary(build(keras), show_trainable=True)


@needs_keras
def test_the_terminal_width_narrows_the_table_unless_it_reports_none(monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    narrow = summary(mlp(lamina))
    assert narrow == summary(mlp(keras))
    assert {len(line) for line in narrow.splitlines()[1:-4]} == {66}
    # A terminal that reports 0 columns (Keras then fails: "Insufficient console width")
    # gets the default width.
    monkeypatch.setenv("COLUMNS", "200")
    wide = summary(mlp(keras))
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *args: os.terminal_size((0, 0)))
    assert summary(mlp(lamina)) == wide


def test_the_sheets_mlp_reads_as_keras_prints_it():
    lines = summary(mlp(lamina)).splitlines()
    assert lines[0] == 'Model: "sheet_mlp"'
    assert lines[1] == "┏" + "━" * 38 + "┳" + "━" * 29 + "┳" + "━" * 17 + "┓"
    assert lines[2] == "┃ Layer (type)" + " " * 25 + "┃ Output Shape" + " " * 16 + "┃" + \
        " " * 9 + "Param # ┃"
    assert lines[4].startswith("│ dense (Dense) ") and lines[4].endswith("│         100,480 │")
    assert lines[-3:] == [" Total params: 101,770 (397.54 KB)",
                          " Trainable params: 101,770 (397.54 KB)",
                          " Non-trainable params: 0 (0.00 B)"]


def cells(text: str, name: str) -> list[str]:
    for line in text.splitlines():
        parts = [part.strip() for part in line.strip("│").split("│")]
        if parts[0].startswith(name + " ("):
            return parts
    raise AssertionError(f"no row for {name!r} in:\n{text}")


def test_trainable_and_non_trainable_totals():
    model = lamina.Sequential([layers.Dense(4, input_shape=(3,), name="frozen"),
                               layers.BatchNormalization(name="bn"), layers.Dense(1, name="head"),
                               layers.Dropout(0.1, name="drop")])
    model.get_layer("frozen").trainable = False
    text = summary(model, show_trainable=True)
    assert cells(text, "frozen")[-1] == "N" and cells(text, "head")[-1] == "Y"
    assert cells(text, "drop")[-1] == "-"  # no weights, as Keras marks it
    assert cells(text, "bn")[2] == "16"
    # frozen kernel and bias (16) + moving mean and variance (8)
    assert " Total params: 37 (148.00 B)" in text
    assert " Trainable params: 13 (52.00 B)" in text
    assert " Non-trainable params: 24 (96.00 B)" in text


def test_functional_model_with_torch_modules():
    inputs = lamina.Input(shape=(8,), name="features")
    x = layers.TorchModuleWrapper(nn.Linear(8, 4), name="torch_linear")(inputs)
    outputs = layers.Dense(2, name="head")(torch.relu(x))
    text = summary(lamina.Model(inputs, outputs, name="mixed"))
    assert cells(text, "features") == ["features (InputLayer)", "(None, 8)", "0"]
    assert cells(text, "torch_linear") == ["torch_linear (TorchModuleWrapper)", "(None, 4)", "36"]
    assert " Total params: 46 " in text


def test_sequential_with_a_plain_torch_module():
    model = lamina.Sequential([lamina.Input((3,)), nn.Linear(3, 5), layers.Dense(1, name="head")])
    text = summary(model)
    assert cells(text, "linear") == ["linear (Linear)", "(None, 5)", "20"]
    assert " Total params: 26 " in text


def test_layer_range_errors_name_the_fix():
    model = mlp(lamina)
    with pytest.raises(ValueError, match=re.escape(
            "`layer_range` entry 'conv' matches no layer name. Received: layer_range=['conv', "
            "'dense_1']; the layers are ['dense', 'dropout', 'dense_1'].")):
        model.summary(layer_range=["conv", "dense_1"])
    with pytest.raises(ValueError, match=re.escape(
            "`layer_range` must be a list or tuple of 2 layer names")):
        model.summary(layer_range=["dense"])
    with pytest.raises(ValueError, match=re.escape("line_length=12 with positions=[0.45, 0.8, "
                                                   "1.0] leaves 3. Pass a larger line_length")):
        model.summary(line_length=12)


def test_summary_prints_by_default(capsys):
    model = lamina.Sequential([layers.Dense(2, input_shape=(3,))], name="printed")
    model.summary()
    out = capsys.readouterr().out
    assert out.startswith('Model: "printed"\n┏') and out.endswith("(0.00 B)\n")
