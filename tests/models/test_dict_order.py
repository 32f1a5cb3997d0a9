"""Which tensor is which in a saved functional model whose dicts are not in sorted-key order.

A saved config names a layer's output by its index, lists a TorchOp's symbolic inputs in order,
and a weights file numbers same-class layers (`layers/dense_2`, ...) in the order of `layers`.
Lamina has always walked dicts in insertion order for these, where `lamina.tree` (like Keras)
sorts the keys: the files below pin that order against the file itself and check predictions
against NumPy. Real Keras 3 (torch backend) is the oracle where its files agree with ours, and
the strict xfails record where they do not yet (Keras sorts the keys there).
"""

from __future__ import annotations

import json
import os
import re
import zipfile

import h5py
import numpy as np
import pytest
import torch

import lamina
from lamina import layers

os.environ.setdefault("KERAS_BACKEND", "torch")

# Keys deliberately out of sorted order: insertion order and sorted order disagree everywhere.
KEYS = ["zeta", "alpha"]


def unsorted_model() -> lamina.Model:
    zeta, alpha = lamina.Input((4,), name="zeta"), lamina.Input((3,), name="alpha")
    # A nested model with dict outputs: the outer config names each output by its index.
    inner_zeta, inner_alpha = lamina.Input((4,), name="inner_zeta"), lamina.Input((3,), name="inner_alpha")
    inner = lamina.Model(
        {"zeta": inner_zeta, "alpha": inner_alpha},
        {"zeta": layers.Dense(2, name="branch_zeta")(inner_zeta),
         "alpha": layers.Dense(2, name="branch_alpha")(inner_alpha)},
        name="inner",
    )
    branches = inner({"zeta": zeta, "alpha": alpha})
    middle = layers.Dense(2, name="middle")(zeta)
    # Tensor keyword arguments written min, then max: swapped, the clamp computes another thing.
    clamped = torch.clamp(middle, min=branches["alpha"], max=branches["zeta"])
    return lamina.Model(
        {"zeta": zeta, "alpha": alpha},
        {"zeta": layers.Dense(3, name="head_zeta")(clamped),
         "alpha": layers.Dense(3, name="head_alpha")(clamped)},
    )


def numpy_predictions(model: lamina.Model, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    inner = model.get_layer("inner")

    def dense(layer, value):
        kernel, bias = layer.get_weights()
        return value @ kernel + bias

    branch_zeta = dense(inner.get_layer("branch_zeta"), x["zeta"])
    branch_alpha = dense(inner.get_layer("branch_alpha"), x["alpha"])
    middle = dense(model.get_layer("middle"), x["zeta"])
    clamped = np.minimum(np.maximum(middle, branch_alpha), branch_zeta)  # torch.clamp's rule
    return {key: dense(model.get_layer(f"head_{key}"), clamped) for key in KEYS}


def inputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"zeta": rng.normal(size=(5, 4)).astype("float32"),
            "alpha": rng.normal(size=(5, 3)).astype("float32")}


def assert_predicts(model, expected: dict[str, np.ndarray], x) -> None:
    predicted = model.predict(x, verbose=0)
    assert list(predicted) == KEYS
    for key in KEYS:
        np.testing.assert_allclose(np.asarray(predicted[key]), expected[key], rtol=1e-5,
                                   atol=1e-5, err_msg=key)


def dense_paths(h5: h5py.Group, model: lamina.Model, names: list[str]) -> list[str]:
    """The `layers/dense_*` group of the file that holds each named layer's kernel."""
    paths = []
    for name in names:
        kernel = model.get_layer(name).get_weights()[0]
        found = [key for key in h5["layers"] if key.startswith("dense")
                 and np.array_equal(h5[f"layers/{key}/vars/0"][()], kernel)]
        assert len(found) == 1, (name, found)
        paths.append(found[0])
    return paths


def number(path: str) -> int:
    match = re.fullmatch(r"dense(?:_(\d+))?", path)
    return int(match.group(1) or 0)


def test_saved_file_names_tensors_in_insertion_order_and_loads_identically(tmp_path):
    torch.manual_seed(0)
    model = unsorted_model()
    x = inputs()
    expected = numpy_predictions(model, x)
    assert_predicts(model, expected, x)
    assert [t.name for t in model.inputs] == KEYS

    path = str(tmp_path / "unsorted.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))["config"]
        with h5py.File(archive.open("model.weights.h5")) as h5:
            heads = dense_paths(h5, model, ["head_zeta", "head_alpha"])
    assert list(config["input_layers"]) == KEYS and list(config["output_layers"]) == KEYS
    by_name = {entry["name"]: entry for entry in config["layers"]}
    # The clamp's inputs: its tensor argument, then min= (the inner model's "alpha" output, its
    # second), then max= ("zeta", its first): the call's order, and insertion-order numbering.
    clamp = next(entry for entry in config["layers"] if entry["class_name"] == "TorchOp")
    histories = [ref["config"]["keras_history"] for ref in clamp["inbound_nodes"][0]["args"][0]]
    assert [(name, index) for name, _, index in histories] == [
        ("middle", 0), ("inner", 1), ("inner", 0)]
    assert list(clamp["config"]["kwargs"]) == ["min", "max"]
    assert "inner" in by_name
    # Same-class layers are numbered in `layers` order: the "zeta" head first.
    assert number(heads[0]) < number(heads[1])

    loaded = lamina.models.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert [t.name for t in loaded.inputs] == KEYS
    assert_predicts(loaded, expected, x)
    # A list of inputs goes in `inputs` order, as before.
    listed = loaded.predict([x[key] for key in KEYS], verbose=0)
    np.testing.assert_allclose(np.asarray(listed["zeta"]), expected["zeta"], rtol=1e-5, atol=1e-5)

    rebuilt = lamina.Model.from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    assert_predicts(rebuilt, expected, x)


def flat_dict_model(K):
    """Dict inputs and outputs out of sorted order, the heads of different classes (so the order
    of same-class layers in the weights file does not come into it)."""
    zeta, alpha = K.Input((4,), name="zeta"), K.Input((3,), name="alpha")
    mixed = K.layers.Concatenate(name="mix")(
        [K.layers.Dense(3, name="from_zeta")(zeta), K.layers.Dense(3, name="from_alpha")(alpha)])
    return K.Model({"zeta": zeta, "alpha": alpha},
                   {"zeta": K.layers.Dense(2, name="head")(mixed),
                    "alpha": K.layers.Activation("tanh", name="squash")(mixed)})


def keras_or_skip():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("runs Keras on its torch backend")
    return keras


def exchange(keras, build, tmp_path) -> None:
    """A Keras file loads in Lamina and a Lamina file in Keras, both predicting as Keras does."""
    keras.utils.set_random_seed(0)
    keras_model = build(keras)
    x = inputs(1)
    expected = {key: np.asarray(value) for key, value in keras_model.predict(x, verbose=0).items()}
    keras_path = str(tmp_path / "from_keras.keras")
    keras_model.save(keras_path)
    ours = lamina.models.load_model(keras_path)
    assert_predicts(ours, expected, x)
    lamina_path = str(tmp_path / "from_lamina.keras")
    ours.save(lamina_path)
    theirs = keras.models.load_model(lamina_path)
    predicted = theirs.predict(x, verbose=0)
    for key in KEYS:
        np.testing.assert_allclose(np.asarray(predicted[key]), expected[key], rtol=1e-5,
                                   atol=1e-5, err_msg=key)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")
def test_keras_writes_dict_endpoints_as_we_do_and_files_cross(tmp_path):
    keras = keras_or_skip()
    ours, theirs = flat_dict_model(lamina).get_config(), flat_dict_model(keras).get_config()
    # Both keep the dicts' own key order and name each tensor by [layer, node, index].
    for field in ("input_layers", "output_layers"):
        assert json.dumps(ours[field]) == json.dumps(theirs[field])
    exchange(keras, flat_dict_model, tmp_path)


def same_class_heads(K):
    zeta, alpha = K.Input((4,), name="zeta"), K.Input((3,), name="alpha")
    mixed = K.layers.Concatenate(name="mix")([zeta, alpha])
    return K.Model({"zeta": zeta, "alpha": alpha},
                   {"zeta": K.layers.Dense(2, name="head_zeta")(mixed),
                    "alpha": K.layers.Dense(2, name="head_alpha")(mixed)})


def nested_dict_outputs(K):
    zeta, alpha = K.Input((4,), name="zeta"), K.Input((3,), name="alpha")
    # Keras wants a dict's keys to be its inputs' names; the nested model is its own namespace.
    inner_zeta, inner_alpha = K.Input((4,), name="zeta"), K.Input((3,), name="alpha")
    inner = K.Model({"zeta": inner_zeta, "alpha": inner_alpha},
                    {"zeta": K.layers.Activation("tanh", name="tanh")(inner_zeta),
                     "alpha": K.layers.Activation("sigmoid", name="sigmoid")(inner_alpha)},
                    name="inner")
    branches = inner({"zeta": zeta, "alpha": alpha})
    return K.Model({"zeta": zeta, "alpha": alpha},
                   {"zeta": K.layers.Dense(2, name="out_zeta")(branches["zeta"]),
                    "alpha": K.layers.Dense(2, name="out_alpha")(branches["alpha"])})


# Keras orders these by sorted key: `layers` (so the weights file's `dense`, `dense_1`) and a
# nested model's output indices. Lamina keeps insertion order, which its own files depend on.
@pytest.mark.xfail(strict=True, reason="Keras sorts dict keys where Lamina's files keep "
                   "insertion order: same-class layers and dict output indices swap")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")
@pytest.mark.parametrize("build", [same_class_heads, nested_dict_outputs])
def test_keras_files_with_order_dependent_dicts_cross(build, tmp_path):
    exchange(keras_or_skip(), build, tmp_path)
