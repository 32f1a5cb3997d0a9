"""Keras 3's Layer methods in Lamina, with the real Keras 3 (torch backend) as the oracle.

The same custom-layer source (`custom_layers`, written once against a Keras-like module) runs
in Keras and in Lamina; each test asserts both give the same answer, and `.keras` files written
by one load in the other with the custom layers' extra state (a numpy table saved by
`save_own_variables`, variables sized by `build_from_config`) intact.
"""

from __future__ import annotations

import os
import types

import h5py
import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("these tests run Keras on its torch backend", allow_module_level=True)

import lamina  # noqa: E402
from lamina.errors import FileFormatError  # noqa: E402

# Keras's torch backend converts tensors with np.array(tensor), which NumPy 2 flags.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")


def custom_layers(K: types.ModuleType) -> types.SimpleNamespace:
    """Custom layers as a keras.io guide writes them, against `K` (keras or lamina)."""

    class TableDense(K.layers.Layer):
        """A dense layer plus a bias table that is a numpy array, not a variable (as a lookup
        table would be): only its own save/load_own_variables put it in the file."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.table = None

        def build(self, input_shape):
            self.kernel = self.add_variable((input_shape[-1], self.units), "glorot_uniform",
                                            name="kernel")
            self.table = np.zeros((self.units,), dtype="float32")

        def call(self, inputs):
            return K.ops.matmul(inputs, self.kernel) + K.ops.convert_to_tensor(self.table)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

        def save_own_variables(self, store):
            store["0"] = self.kernel.value
            store["table"] = self.table

        def load_own_variables(self, store):
            self.kernel.assign(store["0"])
            self.table = np.array(store["table"])

    class Tally(K.layers.Layer):
        """Counts of the ids `adapt` saw: its state's size comes from data, not from the input
        shape, so loading must rebuild it through build_from_config."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.size = None

        def adapt(self, ids):
            self._create(int(np.max(ids)) + 1)
            self.counts.assign(np.bincount(ids, minlength=self.size).astype("float32"))

        def _create(self, size):
            self.size = size
            self.counts = self.add_variable((size,), "zeros", trainable=False, name="counts")

        def build(self, input_shape):
            pass  # the state comes from adapt() or build_from_config()

        def get_build_config(self):
            return {"size": self.size}

        def build_from_config(self, config):
            self._create(config["size"])

        def call(self, inputs):
            return inputs * K.ops.max(self.counts) + K.ops.sum(self.counts[:2])

    class Checked(K.layers.Layer):
        def __init__(self, spec=None, **kwargs):
            super().__init__(**kwargs)
            self.input_spec = spec

        def call(self, inputs):
            return inputs

    class TwoShapes(K.layers.Layer):
        def build(self, a_shape, b_shape):
            self.w = self.add_variable((a_shape[-1],), "ones")

        def call(self, a, b):
            return a * self.w + b

    class ToInt(K.layers.Layer):
        def call(self, inputs):
            return K.ops.cast(inputs, "int32")

    class Plain(K.layers.Layer):
        def call(self, inputs):
            return inputs

    class MasksItself(K.layers.Layer):
        def call(self, inputs):
            return inputs

        def compute_mask(self, inputs, mask=None):
            return K.ops.greater(inputs[..., 0], 0)

    class Declared(K.layers.Layer):
        supports_masking = True

        def call(self, inputs):
            return inputs

    class OptedOut(MasksItself):
        supports_masking = False

    class OptedOutChild(OptedOut):
        pass

    return types.SimpleNamespace(**{c.__name__: c for c in (
        TableDense, Tally, Checked, TwoShapes, ToInt, Plain, MasksItself, Declared, OptedOut,
        OptedOutChild)})


@pytest.fixture(scope="module")
def libraries():
    return {"keras": (keras, custom_layers(keras)), "lamina": (lamina, custom_layers(lamina))}


def to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, keras.Variable):
        value = value.value  # (Keras's own Variable.numpy() warns under NumPy 2)
    return np.asarray(keras.ops.convert_to_numpy(value))


# --------------------------------------------------------------------------- .keras files

IDS = np.array([0, 1, 1, 3, 3, 3, 4])
INPUTS = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")


def build_model(library):
    K, ns = library
    inputs = K.Input((3,))
    table_dense = ns.TableDense(2, name="table_dense")
    tally = ns.Tally(name="tally")
    tally.adapt(IDS)
    outputs = tally(K.layers.Dense(2, name="dense")(table_dense(inputs)))
    model = K.Model(inputs, outputs)
    table_dense.table = np.array([0.5, -1.25], dtype="float32")
    return model


def load(library, path):
    K, ns = library
    return K.saving.load_model(path, custom_objects={"TableDense": ns.TableDense,
                                                     "Tally": ns.Tally})


def state(model):
    """What a round trip must keep: the table (no variable), the counts (sized by adapt) and
    the model's output."""
    layers = {layer.name: layer for layer in model.layers}
    return (np.asarray(layers["table_dense"].table), to_numpy(layers["tally"].counts),
            to_numpy(model.predict(INPUTS, verbose=0)))


@pytest.mark.parametrize("writer,reader", [("lamina", "lamina"), ("lamina", "keras"),
                                           ("keras", "lamina")])
def test_custom_state_survives_a_keras_file(libraries, tmp_path, writer, reader):
    model = build_model(libraries[writer])
    path = str(tmp_path / "custom.keras")
    model.save(path)
    loaded = load(libraries[reader], path)
    table, counts, outputs = state(loaded)
    np.testing.assert_array_equal(table, [0.5, -1.25])
    np.testing.assert_array_equal(counts, np.bincount(IDS))
    np.testing.assert_allclose(outputs, state(model)[2], rtol=1e-6, atol=1e-6)


def test_weights_file_honours_the_hooks_and_refuses_a_damaged_one(libraries, tmp_path):
    model = build_model(libraries["lamina"])
    path = str(tmp_path / "custom.weights.h5")
    model.save_weights(path)
    fresh = build_model(libraries["lamina"])
    fresh.get_layer("table_dense").table = np.zeros(2, dtype="float32")
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.get_layer("table_dense").table, [0.5, -1.25])
    np.testing.assert_allclose(to_numpy(fresh.predict(INPUTS, verbose=0)),
                               to_numpy(model.predict(INPUTS, verbose=0)), rtol=1e-6)

    def damaged(edit):
        target = str(tmp_path / f"damaged_{edit.__name__}.weights.h5")
        with open(path, "rb") as source, open(target, "wb") as copy:
            copy.write(source.read())
        with h5py.File(target, "r+") as h5:
            edit(h5["layers/table_dense/vars"])
        untouched = build_model(libraries["lamina"])
        untouched.get_layer("table_dense").table = np.full(2, 7.0, dtype="float32")
        before = [w.copy() for w in untouched.get_weights()]
        return target, untouched, before

    def change_table(group):
        group["table"][...] = np.array([9.0, 9.0], dtype="float32")

    def add_group(group):
        group.create_group("nested")

    for edit, message in ((change_table, "SHA-256"), (add_group, "group inside the variables")):
        target, untouched, before = damaged(edit)
        with pytest.raises(FileFormatError, match=message):
            untouched.load_weights(target)
        # Refused before any hook ran: neither the table nor a weight changed.
        np.testing.assert_array_equal(untouched.get_layer("table_dense").table, [7.0, 7.0])
        for old, new in zip(before, untouched.get_weights()):
            np.testing.assert_array_equal(old, new)


def test_a_layer_without_hooks_writes_what_it_wrote_before(libraries, tmp_path):
    """Default layers: no build_config in their config, datasets 0..n-1 named after the weights."""
    K, ns = libraries["lamina"]
    inputs = K.Input((3,))
    model = K.Model(inputs, ns.TwoShapes(name="two")(inputs, inputs))
    config = model.get_config()
    assert all("build_config" not in entry for entry in config["layers"])
    path = str(tmp_path / "plain.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "r") as h5:
        assert list(h5["layers/two_shapes/vars"]) == ["0"]
        assert h5["layers/two_shapes/vars/0"].attrs["name"] == "variable"


def test_a_store_value_that_is_not_numbers_is_refused_on_save(libraries, tmp_path):
    K, ns = libraries["lamina"]

    class Named(ns.TableDense):
        def save_own_variables(self, store):
            super().save_own_variables(store)
            store["labels"] = np.array(["cat", "dog"])

    model = K.Sequential([K.Input((3,)), Named(2)])
    with pytest.raises(ValueError, match=r"Named.save_own_variables .* dtype <U3 under "
                                         r"'labels'.*Encode it as numbers"):
        model.save(str(tmp_path / "named.keras"))


def test_default_own_variables_round_trip_and_keras_errors(libraries):
    results = {}
    for name, (K, ns) in libraries.items():
        source, target = K.layers.Dense(3), K.layers.Dense(3)
        source.build((None, 2))
        store = {}
        source.save_own_variables(store)
        target.build((None, 2))
        target.load_own_variables({k: to_numpy(v) for k, v in store.items()})
        np.testing.assert_array_equal(to_numpy(target.kernel), to_numpy(source.kernel))
        with pytest.raises(ValueError) as count_error:
            target.load_own_variables({"0": store["0"]})
        with pytest.raises(ValueError) as unbuilt_error:
            K.layers.Dense(3, name="never").load_own_variables({"0": store["0"]})
        results[name] = (sorted(store), str(count_error.value), str(unbuilt_error.value))
    assert results["lamina"][0] == results["keras"][0] == ["0", "1"]
    assert results["lamina"][1].startswith("Layer 'dense")
    assert "expected 2 variables, but received 1 variables during loading" in \
        results["lamina"][1] and results["keras"][1].split("'")[2] in results["lamina"][1]
    keras_unbuilt = results["keras"][2].split("\n")[0]
    assert results["lamina"][2].startswith(keras_unbuilt)


# --------------------------------------------------------------------------- input_spec

SPEC_ROWS = [
    # (InputSpec kwargs, a good input, a bad input)
    (dict(ndim=3), (2, 4, 5), (2, 4)),
    (dict(min_ndim=3), (2, 4, 5, 6), (2, 4)),
    (dict(max_ndim=2), (2, 4), (2, 3, 4)),
    (dict(axes={-1: 3}), (2, 5, 3), (2, 4)),
    (dict(ndim=4, axes={1: 7}), (2, 7, 1, 1), (2, 6, 1, 1)),
    (dict(shape=(None, 4)), (8, 4), (2, 5)),
    (dict(shape=(None, 4, 1), allow_last_axis_squeeze=True), (2, 4), (2, 5)),
    (dict(dtype="float32"), (2, 3), "int32"),
    (dict(dtype="int64", ndim=2), "int64", "float32"),
]


def make_input(spec):
    if isinstance(spec, str):
        return torch.ones((2, 3), dtype=getattr(torch, spec))
    return torch.ones(spec)


@pytest.mark.parametrize("spec,good,bad", SPEC_ROWS, ids=[str(row[0]) for row in SPEC_ROWS])
def test_input_spec_accepts_and_refuses_as_keras(libraries, spec, good, bad):
    messages = {}
    for name, (K, ns) in libraries.items():
        layer = ns.Checked(K.layers.InputSpec(**spec), name="checked")
        assert tuple(layer(make_input(good)).shape) == tuple(make_input(good).shape)
        with pytest.raises(ValueError) as error:
            layer(make_input(bad))
        messages[name] = str(error.value)
    assert messages["lamina"] == messages["keras"]
    assert "'checked'" in messages["lamina"]


def test_input_spec_on_a_symbolic_call_and_on_several_inputs(libraries):
    messages = {}
    for name, (K, ns) in libraries.items():
        with pytest.raises(ValueError) as rank:
            ns.Checked(K.layers.InputSpec(ndim=3), name="checked")(K.Input((4,)))
        specs = [K.layers.InputSpec(ndim=2), K.layers.InputSpec(ndim=2)]
        with pytest.raises(ValueError) as count:
            ns.Checked(specs, name="pair")([torch.ones(2, 3)])
        with pytest.raises(ValueError) as second:
            ns.Checked(specs, name="pair")([torch.ones(2, 3), torch.ones(2, 3, 1)])
        named = [K.layers.InputSpec(name="a"), K.layers.InputSpec(name="b")]
        with pytest.raises(ValueError) as missing:
            ns.Checked(named, name="named")({"a": torch.ones(2)})
        messages[name] = [str(e.value) for e in (rank, count, second, missing)]
    assert messages["lamina"][0] == messages["keras"][0]
    assert "Full shape received: (None, 4)" in messages["lamina"][0]
    # Keras prints the received tensors; the sentence before them is the same.
    prefix = 'Layer "pair" expects 2 input(s), but it received 1 input tensors.'
    assert messages["lamina"][1].startswith(prefix) and messages["keras"][1].startswith(prefix)
    assert messages["lamina"][2:] == messages["keras"][2:]


def test_input_spec_object_matches_keras(libraries):
    for spec in (dict(ndim=4, axes={-1: 3}), dict(shape=[None, 28, 28, 1], dtype="float32"),
                 dict(min_ndim=2, max_ndim=5, name="x", optional=True)):
        ours, theirs = lamina.layers.InputSpec(**spec), keras.layers.InputSpec(**spec)
        assert repr(ours) == repr(theirs)
        assert ours.get_config() == theirs.get_config()
        assert lamina.layers.InputSpec.from_config(ours.get_config()).get_config() == \
            ours.get_config()
    for module in (lamina.layers, keras.layers):
        with pytest.raises(ValueError, match="Axis 3 is greater than the maximum allowed value: 2"):
            module.InputSpec(ndim=3, axes={3: 1})
        with pytest.raises(TypeError, match="must be a dict with integer keys"):
            module.InputSpec(axes={"last": 3})


# --------------------------------------------------------------------------- the other methods


def test_add_variable_takes_keras_3_argument_order(libraries):
    found = {}
    for name, (K, _) in libraries.items():
        layer = K.layers.Layer()
        fixed = layer.add_variable((2, 3), "ones", trainable=False, name="fixed")
        ids = layer.add_variable((4,), "zeros", "int32", False, name="ids")
        trained = layer.add_variable((3,), "ones", regularizer=K.regularizers.L2(0.5),
                                     constraint=K.constraints.NonNeg())
        found[name] = (to_numpy(fixed), to_numpy(ids).dtype, tuple(trained.shape),
                       [w.name for w in layer.non_trainable_weights],
                       [tuple(w.shape) for w in layer.trainable_weights],
                       float(to_numpy(sum(layer.losses))))
    for ours, theirs in zip(found["lamina"], found["keras"]):
        np.testing.assert_array_equal(ours, theirs)
    assert found["lamina"][5] == pytest.approx(1.5)


def test_build_config_path_and_input_dtype_as_keras(libraries):
    found = {}
    for name, (K, ns) in libraries.items():
        dense = K.layers.Dense(2, name="d")
        unbuilt = (dense.get_build_config(), dense.path)
        dense(torch.ones(5, 3))
        two = ns.TwoShapes()
        two(torch.ones(2, 3), torch.ones(2, 3))
        rebuilt = ns.TwoShapes()
        rebuilt.build_from_config(two.get_build_config())
        found[name] = (unbuilt, dense.get_build_config(), dense.path,
                       [w.path == f"{dense.path}/{w.name}" for w in dense.weights],
                       two.get_build_config(), rebuilt.built, tuple(rebuilt.w.shape),
                       K.layers.Dense(2).input_dtype,
                       K.layers.Dense(2, dtype="float64").input_dtype,
                       K.layers.Dense(2, dtype="mixed_bfloat16").input_dtype)
    assert found["lamina"] == found["keras"]
    assert found["lamina"][1] == {"input_shape": (5, 3)}
    assert found["lamina"][4] == {"shapes_dict": {"a_shape": (2, 3), "b_shape": (2, 3)}}


def test_build_from_config_builds_from_a_json_shape(libraries):
    layer = lamina.layers.Dense(4)
    layer.build_from_config({"input_shape": [None, 6]})
    assert layer.built and tuple(layer.kernel.shape) == (6, 4)
    assert layer.get_build_config() == {"input_shape": (None, 6)}
    layer.build_from_config(None)  # Keras: nothing to do
    assert lamina.layers.Dense(1).get_build_config() is None


def test_supports_masking_defaults_and_class_attribute(libraries):
    found = {}
    for name, (K, ns) in libraries.items():
        values = torch.tensor([[[1.0], [0.0], [2.0]]])
        masked = K.layers.Masking(0.0)(values)
        flags = [getattr(ns, c)().supports_masking for c in
                 ("Plain", "MasksItself", "Declared", "OptedOut", "OptedOutChild")]
        passed = getattr(ns.Declared()(masked), "_keras_mask", None)
        made = getattr(ns.MasksItself()(torch.tensor([[1.0, 2.0], [-1.0, 3.0]])),
                       "_keras_mask", None)
        found[name] = (flags, to_numpy(passed), to_numpy(made))
    assert found["lamina"][0] == found["keras"][0] == [False, True, True, False, False]
    for ours, theirs in zip(found["lamina"][1:], found["keras"][1:]):
        np.testing.assert_array_equal(ours, theirs)


def test_compute_output_spec_as_keras(libraries):
    found = {}
    for name, (K, ns) in libraries.items():
        table = ns.TableDense(2)
        table(torch.ones(1, 3))
        specs = [K.layers.Dense(4).compute_output_spec(K.Input((3,))),
                 table.compute_output_spec(K.Input((3,))),
                 ns.ToInt().compute_output_spec(K.Input((5, 2))),
                 K.layers.Concatenate().compute_output_spec([K.Input((3,)), K.Input((2,))])]
        found[name] = [(tuple(s.shape), lamina.config.dtype_name(s.dtype)
                        if isinstance(s.dtype, torch.dtype) else s.dtype) for s in specs]
    assert found["lamina"] == found["keras"]
    assert found["lamina"][2] == ((None, 5, 2), "int32")


def test_activity_penalties_match_keras_per_output_and_per_sample():
    # Keras 3 adds one penalty per output tensor, divided by that output's batch size; the
    # loss evaluate reports includes it.
    def build(K, Split):
        inputs = K.Input((3,))
        dense = K.layers.Dense(4, activity_regularizer=K.regularizers.L1L2(0.01, 0.02),
                               kernel_initializer="ones")
        split = Split(activity_regularizer="l2")
        model = K.Model(inputs, split(dense(inputs)))
        model.compile("sgd", ["mse", "mse"])
        return model

    def split_class(K):
        class Split(K.layers.Layer):
            def call(self, inputs):
                return inputs[:, :2], inputs[:, 2:] * 2.0
        return Split

    x = np.arange(15, dtype="float32").reshape(5, 3) / 10
    targets = [np.zeros((5, 2), "float32")] * 2
    ours, theirs = build(lamina, split_class(lamina)), build(keras, split_class(keras))
    ours(torch.from_numpy(x))
    theirs(x)
    np.testing.assert_allclose([float(v.detach()) for v in ours.losses],
                               [float(v.detach()) for v in theirs.losses], rtol=1e-6)
    np.testing.assert_allclose(ours.evaluate(x, targets, verbose=0)[0],
                               theirs.evaluate(x, targets, verbose=0)[0], rtol=1e-6)


def test_input_spec_is_exported_where_keras_exports_it():
    assert keras.InputSpec is keras.layers.InputSpec
    assert lamina.InputSpec is lamina.layers.InputSpec
