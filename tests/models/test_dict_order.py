"""Which tensor is which in a saved functional model whose dicts are not in sorted-key order.

A saved config names a layer's output by its index, lists a TorchOp's symbolic inputs in order,
and a weights file numbers same-class layers (`layers/dense_2`, ...) in the order of `layers`.
Keras 3 sorts dict keys for all of these (`tree.flatten`) and so, from format 2, does Lamina;
its format-1 files kept insertion order and must still load as they did (the committed
`dict_order_format1.*` fixtures, written before the change, with each layer's weights by name
in an `.npz`). Predictions are checked against NumPy, and real Keras 3 (torch backend) reads
our files and we read its.
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


def numpy_predictions(weights, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs in NumPy; `weights(name)` gives a layer's (kernel, bias)."""
    def dense(name, value):
        kernel, bias = weights(name)
        return value @ kernel + bias

    branch_zeta = dense("inner/branch_zeta", x["zeta"])
    branch_alpha = dense("inner/branch_alpha", x["alpha"])
    middle = dense("middle", x["zeta"])
    clamped = np.minimum(np.maximum(middle, branch_alpha), branch_zeta)  # torch.clamp's rule
    return {key: dense(f"head_{key}", clamped) for key in KEYS}


def weights_of(model: lamina.Model):
    def weights(name: str):
        layer = model
        for part in name.split("/"):
            layer = layer.get_layer(part)
        return layer.get_weights()
    return weights


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


def test_saved_file_names_tensors_in_sorted_order_and_loads_identically(tmp_path):
    torch.manual_seed(0)
    model = unsorted_model()
    x = inputs()
    expected = numpy_predictions(weights_of(model), x)
    assert_predicts(model, expected, x)
    assert [t.name for t in model.inputs] == sorted(KEYS)
    assert [t.name for t in model.get_layer("inner").outputs] == ["branch_alpha", "branch_zeta"]

    path = str(tmp_path / "unsorted.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))["config"]
        metadata = json.loads(archive.read("metadata.json"))
        with h5py.File(archive.open("model.weights.h5")) as h5:
            heads = dense_paths(h5, model, ["head_zeta", "head_alpha"])
    assert metadata["format_version"] == "2"
    # The dicts themselves keep their keys' order, as Keras writes them.
    assert list(config["input_layers"]) == KEYS and list(config["output_layers"]) == KEYS
    # The clamp's inputs: its tensor argument, then min= (the inner model's "alpha" output, its
    # first in sorted-key numbering), then max= ("zeta", its second).
    clamp = next(entry for entry in config["layers"] if entry["class_name"] == "TorchOp")
    histories = [ref["config"]["keras_history"] for ref in clamp["inbound_nodes"][0]["args"][0]]
    assert [(name, index) for name, _, index in histories] == [
        ("middle", 0), ("inner", 0), ("inner", 1)]
    assert list(clamp["config"]["kwargs"]) == ["min", "max"]
    # Same-class layers are numbered in `layers` order, sorted keys: the "alpha" head first.
    assert number(heads[1]) < number(heads[0])

    loaded = lamina.models.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert [t.name for t in loaded.inputs] == sorted(KEYS)
    assert_predicts(loaded, expected, x)
    # A list is ambiguous here (insertion or sorted order?): refused, as Keras refuses it.
    with pytest.raises(ValueError, match=r"not in sorted order.*Pass a dict by input name"):
        loaded.predict([x[key] for key in KEYS], verbose=0)

    rebuilt = lamina.Model.from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    assert_predicts(rebuilt, expected, x)


def test_list_on_a_sorted_dict_input_model_goes_in_key_order():
    alpha, beta = lamina.Input((2,), name="alpha"), lamina.Input((2,), name="beta")
    model = lamina.Model({"alpha": alpha, "beta": beta}, alpha - beta)
    a, b = np.ones((3, 2), "float32"), np.zeros((3, 2), "float32")
    np.testing.assert_array_equal(np.asarray(model.predict([a, b], verbose=0)), a - b)


def test_fit_checks_dict_data_against_the_inputs_of_the_same_key():
    """Data validation pairs a dict of arrays with `model.inputs` (sorted keys) key by key."""
    model = flat_dict_model(lamina)
    model.compile(optimizer="sgd", loss="mse")
    x = inputs()
    y = {"zeta": np.zeros((5, 2), "float32"), "alpha": np.zeros((5, 6), "float32")}
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"`x\['alpha'\]` has shape \(5, 4\).*\(None, 3\)"):
        model.fit({"zeta": x["zeta"], "alpha": x["zeta"]}, y, epochs=1, verbose=0)


def test_export_takes_dict_inputs_as_a_list_in_sorted_key_order(tmp_path):
    model = flat_dict_model(lamina)
    x = inputs(3)
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "model.pt2")
    model.export(path, verbose=False)
    program = torch.export.load(path).module()
    got = program([torch.from_numpy(x[key]) for key in sorted(KEYS)])
    for key in KEYS:
        np.testing.assert_allclose(got[key].detach().numpy(), expected[key], rtol=1e-5, atol=1e-6)


FIXTURES = os.path.join(os.path.dirname(__file__), "dict_order_format1")


def fixture_weights():
    stored = np.load(f"{FIXTURES}_weights.npz")
    return lambda name: [stored[f"{name}/0"], stored[f"{name}/1"]]


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_format1_files_in_insertion_order_load_as_before(suffix):
    """Files Lamina wrote before sorting (format 1, insertion order) load every layer's own
    weights: same-class layers and the nested model's output indices are not swapped."""
    weights = fixture_weights()
    if suffix == ".weights.h5":
        torch.manual_seed(1)
        model = unsorted_model()
        model.load_weights(FIXTURES + suffix)
    else:
        model = lamina.models.load_model(FIXTURES + suffix)
    for name in ["middle", "head_zeta", "head_alpha", "inner/branch_zeta", "inner/branch_alpha"]:
        for got, want in zip(weights_of(model)(name), weights(name)):
            np.testing.assert_array_equal(got, want, err_msg=name)
    x = inputs(2)
    assert_predicts(model, numpy_predictions(weights, x), x)


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
# nested model's output indices.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")
@pytest.mark.parametrize("build", [same_class_heads, nested_dict_outputs])
def test_keras_files_with_order_dependent_dicts_cross(build, tmp_path):
    exchange(keras_or_skip(), build, tmp_path)


def test_format1_file_resumes_adam_with_each_weights_own_moments():
    """A format-1 `.keras` file of two same-class heads, saved after one Adam step: one more step
    here gives the weights the uninterrupted run (written by that Lamina) reached."""
    after = np.load(f"{FIXTURES}_adam_after_step2.npz")
    model = lamina.models.load_model(f"{FIXTURES}_adam.keras")
    x = {key: after[f"x/{key}"] for key in KEYS}
    y = {key: after[f"y/{key}"] for key in KEYS}
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for name in ["head_zeta", "head_alpha"]:
        for index, weight in enumerate(model.get_layer(name).get_weights()):
            np.testing.assert_allclose(weight, after[f"{name}/{index}"], rtol=1e-6, atol=1e-6,
                                       err_msg=name)
