"""Files move between Keras 3 and Lamina in both directions.

The oracle is real Keras (torch backend): a model built the same way in both libraries, its
weights saved by one and loaded by the other in each of Keras's three formats, must predict what
Keras predicts. The optimizer's state travels too: a Keras file with Adam state continues in
Lamina as Keras continues it, and Lamina's own save -> load -> fit is bit-identical to never
stopping.
"""

from __future__ import annotations

import json
import os
import zipfile

import h5py
import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("the interop tests run Keras on its torch backend", allow_module_level=True)

import lamina  # noqa: E402
from lamina.errors import FileFormatError  # noqa: E402
from lamina.saving.file_format import write_weights  # noqa: E402

# Keras's own deprecation warnings (NumPy 2's `__array__` protocol) are not Lamina's to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")

TOLERANCE = 1e-5
FORMATS = ("model.keras", "model.weights.h5", "model.h5")


def dense_stack(K):
    return K.Sequential([K.Input((6,)), K.layers.Dense(5, activation="relu"),
                         K.layers.Dropout(0.3), K.layers.Dense(3)])


def images(K):
    i = K.Input((10, 10, 3))
    x = K.layers.Conv2D(4, 3, padding="same", activation="relu")(i)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.DepthwiseConv2D(3)(x)
    x = K.layers.SeparableConv2D(5, 3)(x)
    x = K.layers.Conv2DTranspose(3, 3, strides=2)(x)
    x = K.layers.MaxPooling2D()(x)
    return K.Model(i, K.layers.Dense(2)(K.layers.Flatten()(x)))


def sequences(K):
    i = K.Input((12, 4))
    x = K.layers.Conv1D(6, 3)(i)
    x = K.layers.AveragePooling1D(2)(x)
    x = K.layers.LayerNormalization()(x)
    x = K.layers.GlobalAveragePooling1D()(x)
    return K.Model(i, K.layers.Reshape((2, 3))(x))


def recurrent(K):
    i = K.Input((7,))
    x = K.layers.Embedding(20, 4)(i)
    x = K.layers.LSTM(5, return_sequences=True)(x)
    x = K.layers.Bidirectional(K.layers.GRU(3, return_sequences=True))(x)
    return K.Model(i, K.layers.SimpleRNN(2)(x))


def attention(K):
    i = K.Input((5, 8))
    x = K.layers.MultiHeadAttention(2, 4)(i, i)
    return K.Model(i, K.layers.Add()([x, i]))


def nested(K):
    i = K.Input((6,))
    a = K.layers.Dense(4)(i)
    b = K.layers.Dense(4)(K.layers.Dense(5, activation="tanh")(i))
    inner = K.Sequential([K.Input((8,)), K.layers.Dense(3), K.layers.BatchNormalization()])
    return K.Model(i, inner(K.layers.Concatenate()([a, b])))


MODELS = {
    "dense_stack": (dense_stack, lambda rng: rng.normal(size=(4, 6))),
    "images": (images, lambda rng: rng.normal(size=(2, 10, 10, 3))),
    "sequences": (sequences, lambda rng: rng.normal(size=(2, 12, 4))),
    "recurrent": (recurrent, lambda rng: rng.integers(0, 20, size=(2, 7))),
    "attention": (attention, lambda rng: rng.normal(size=(2, 5, 8))),
    "nested": (nested, lambda rng: rng.normal(size=(3, 6))),
}


def predict(model, x):
    return np.asarray(model.predict(x, verbose=0))


@pytest.fixture(scope="module", params=sorted(MODELS))
def pair(request, tmp_path_factory):
    """A Keras model with weights far from their initial values (moving variances > 0), its
    input, Keras's prediction, and the files Keras and Lamina each wrote for it."""
    build, make_input = MODELS[request.param]
    rng = np.random.default_rng(7)
    x = make_input(rng)
    x = x.astype("int32" if x.dtype.kind == "i" else "float32")
    model = build(keras)
    model.set_weights([np.abs(w) + 0.5 if "variance" in v.path else
                       w + rng.normal(scale=0.2, size=w.shape).astype(w.dtype)
                       for w, v in zip(model.get_weights(), model.weights)])
    folder = tmp_path_factory.mktemp(request.param)
    twin = build(lamina)
    twin.set_weights(model.get_weights())
    for name in FORMATS:
        (model.save_weights if name.endswith(".weights.h5") else model.save)(folder / f"k_{name}")
        (twin.save_weights if name.endswith(".weights.h5") else twin.save)(folder / f"l_{name}")
    return request.param, build, x, predict(model, x), model, folder


@pytest.mark.parametrize("name", FORMATS)
def test_keras_file_loads_in_lamina(pair, name):
    model_name, build, x, expected, keras_model, folder = pair
    path = folder / f"k_{name}"
    if name.endswith(".weights.h5"):
        loaded = build(lamina)
        loaded.load_weights(path)
    else:
        loaded = lamina.saving.load_model(path)
    np.testing.assert_allclose(predict(loaded, x), expected, rtol=TOLERANCE, atol=TOLERANCE,
                               err_msg=f"{model_name}: Keras's {name} loaded in Lamina")
    # Same layer order and the same get_weights() as Keras's model.
    assert [type(layer).__name__ for layer in loaded.layers] == \
        [type(layer).__name__ for layer in keras_model.layers]
    for ours, theirs in zip(loaded.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("name", FORMATS)
def test_lamina_file_loads_in_keras(pair, name):
    model_name, build, x, expected, _, folder = pair
    path = folder / f"l_{name}"
    if name.endswith(".weights.h5"):
        loaded = build(keras)
        loaded.load_weights(path)
    else:
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(predict(loaded, x), expected, rtol=TOLERANCE, atol=TOLERANCE,
                               err_msg=f"{model_name}: Lamina's {name} loaded in Keras")


def test_lamina_writes_keras_tree_and_config(tmp_path):
    twin = recurrent(lamina)
    twin.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        config = json.loads(archive.read("config.json"))
        (tmp_path / "w.h5").write_bytes(archive.read("model.weights.h5"))
    text = json.dumps(config)
    assert '"kind"' not in text and '"lamina.' not in text
    with h5py.File(tmp_path / "w.h5") as h5:
        # Each RNN cell once, under its attribute name, as Keras writes it.
        assert sorted(h5["layers/lstm"]) == ["cell", "vars"]
        assert len(h5["layers/lstm/cell/vars"]) == 3 and len(h5["layers/lstm/vars"]) == 0
        assert sorted(h5["layers/bidirectional"]) == ["backward_layer", "forward_layer", "vars"]


def test_lamina_reads_its_earlier_weights_tree(tmp_path):
    """Files Lamina wrote before it wrote Keras's tree keep loading (RNN cells included)."""
    rng = np.random.default_rng(1)
    source = recurrent(lamina)
    source.set_weights([w + rng.normal(size=w.shape).astype(w.dtype) for w in source.get_weights()])
    with h5py.File(tmp_path / "old.weights.h5", "w") as h5:
        write_weights(source, h5.create_group("model"), layout="lamina-v1")
        assert "model/layers/lstm/layers/lstm_cell/vars/0" in h5
    target = recurrent(lamina)
    target.load_weights(tmp_path / "old.weights.h5")
    x = rng.integers(0, 20, size=(2, 7))
    np.testing.assert_array_equal(predict(target, x), predict(source, x))


def test_resnet50_weights_copy_both_ways():
    keras_model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=4)
    ours = lamina.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=4)
    # Keras lists a branched model's layers by graph depth; so does Lamina.
    # (The input layer's name carries a per-session counter.)
    assert [layer.name for layer in ours.layers][1:] == \
        [layer.name for layer in keras_model.layers][1:]
    ours.set_weights(keras_model.get_weights())
    x = np.random.default_rng(2).normal(size=(1, 32, 32, 3)).astype("float32")
    expected = predict(keras_model, x)
    np.testing.assert_allclose(predict(ours, x), expected, rtol=TOLERANCE, atol=TOLERANCE)
    ours.layers[2].set_weights([w * 0.5 for w in ours.layers[2].get_weights()])
    keras_model.set_weights(ours.get_weights())
    np.testing.assert_allclose(predict(keras_model, x), predict(ours, x), rtol=TOLERANCE,
                               atol=TOLERANCE)


# --------------------------------------------------------------------------- optimizer state

def regression(K):
    return K.Sequential([K.Input((6,)), K.layers.Dense(8, activation="tanh"),
                         K.layers.BatchNormalization(), K.layers.Dense(2)])


def adam(K):
    return K.optimizers.Adam(K.optimizers.schedules.ExponentialDecay(0.02, 3, 0.7))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    return rng.normal(size=(64, 6)).astype("float32"), rng.normal(size=(64, 2)).astype("float32")


def fit(model, data, epochs, **kwargs):
    model.fit(*data, batch_size=16, epochs=epochs, shuffle=False, verbose=0, **kwargs)


def max_difference(a, b):
    return max(float(np.abs(p - q).max()) for p, q in zip(a.get_weights(), b.get_weights(),
                                                           strict=True))


def centered_rmsprop(K):
    return K.optimizers.RMSprop(0.01, momentum=0.5, centered=True)


@pytest.mark.parametrize("optimizer", [adam, centered_rmsprop], ids=["adam", "rmsprop"])
def test_keras_optimizer_state_continues_in_lamina(tmp_path, data, optimizer):
    model = regression(keras)
    model.compile(optimizer=optimizer(keras), loss="mse", metrics=["mae"])
    fit(model, data, 2)
    model.save(tmp_path / "k.keras")
    loaded = lamina.saving.load_model(tmp_path / "k.keras")
    restarted = lamina.saving.load_model(tmp_path / "k.keras", compile=False)
    restarted.compile(optimizer=optimizer(lamina), loss="mse")
    for continued in (model, loaded, restarted):
        fit(continued, data, 2)
    assert loaded.optimizer.iterations == int(model.optimizer.iterations) == 16
    assert max_difference(loaded, model) < TOLERANCE
    # Without the saved slots and step count, the continuation is measurably different.
    assert max_difference(restarted, model) > 100 * TOLERANCE


def test_a_state_for_other_settings_is_skipped_with_a_warning(data):
    model = regression(lamina)
    model.compile(optimizer=adam(lamina), loss="mse")
    fit(model, data, 1)
    arrays, attributes = model.optimizer.keras_variables(model.trainable_weights)
    other = regression(lamina)
    other.compile(optimizer=lamina.optimizers.Adam(amsgrad=True), loss="mse")
    other.optimizer.load_keras_variables(other.trainable_weights, arrays, attributes)
    with pytest.warns(UserWarning, match="Skipping the saved state of optimizer 'adam': it "
                                         "holds 13 variables, but this Adam with 6 model "
                                         "variables has 20"):
        fit(other, data, 1)
    assert other.optimizer.iterations == 4  # a fresh start, as Keras makes on a mismatch


def test_lamina_optimizer_state_continues_in_keras(tmp_path, data):
    model = regression(lamina)
    model.compile(optimizer=adam(lamina), loss="mse")
    fit(model, data, 2)
    model.save(tmp_path / "l.keras")
    loaded = keras.saving.load_model(tmp_path / "l.keras")
    assert int(loaded.optimizer.iterations) == model.optimizer.iterations == 8
    fit(model, data, 2)
    fit(loaded, data, 2)
    assert max_difference(loaded, model) < TOLERANCE


@pytest.mark.parametrize("optimizer", [
    lambda: adam(lamina),
    lambda: lamina.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: lamina.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: lamina.optimizers.Adam(0.01, amsgrad=True, use_ema=True,
                                   gradient_accumulation_steps=3),
], ids=["adam-schedule", "sgd-nesterov", "rmsprop-centered", "adam-amsgrad-ema-accumulation"])
def test_save_load_fit_is_bit_identical_to_never_stopping(tmp_path, data, optimizer):
    torch.manual_seed(0)
    uninterrupted = regression(lamina)
    interrupted = regression(lamina)
    interrupted.set_weights(uninterrupted.get_weights())
    for model in (uninterrupted, interrupted):
        model.compile(optimizer=optimizer(), loss="mse")
    fit(uninterrupted, data, 5)
    checkpoint = lamina.callbacks.ModelCheckpoint(str(tmp_path / "epoch{epoch}.keras"),
                                                  save_weights_only=False)
    fit(interrupted, data, 3, callbacks=[checkpoint])
    resumed = lamina.saving.load_model(tmp_path / "epoch2.keras")
    fit(resumed, data, 5, initial_epoch=2)
    for ours, theirs in zip(resumed.get_weights(), uninterrupted.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert resumed.optimizer.iterations == uninterrupted.optimizer.iterations


def test_damaged_optimizer_state_is_refused_and_changes_nothing(tmp_path, data):
    model = regression(lamina)
    model.compile(optimizer=adam(lamina), loss="mse")
    fit(model, data, 1)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    (tmp_path / "w.h5").write_bytes(members["model.weights.h5"])
    with h5py.File(tmp_path / "w.h5", "r+") as h5:
        h5["optimizer/vars/3"][0] = np.nan
    members["model.weights.h5"] = (tmp_path / "w.h5").read_bytes()
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    # The checksum covers the optimizer's variables too.
    with pytest.raises(FileFormatError, match="do not match the SHA-256 checksum"):
        lamina.saving.load_model(tmp_path / "bad.keras")
    with pytest.raises(FileFormatError, match="optimizer variable 'optimizer/vars/3' holds NaN"):
        lamina.saving.load_model(tmp_path / "bad.keras", verify_checksum=False)
