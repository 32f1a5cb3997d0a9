"""Copies of a model (`copy.deepcopy`, pickle, `torch.save`/`torch.load`) in every state: a copy
predicts what the original predicts, has the original's train/eval modes, shares no tensor with
it, and trains as the original would from the same point, without touching the original's
weights, optimizer state or metrics."""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from torch import nn

import lamina as keras
from lamina import layers
from lamina.callbacks import Callback

RNG = np.random.default_rng(7)
X = RNG.normal(size=(48, 5)).astype("float32")
Y = RNG.integers(0, 3, 48)


def sequential() -> keras.Model:
    torch.manual_seed(0)
    return keras.Sequential([layers.Input((5,)), layers.Dense(8, activation="relu"),
                             layers.BatchNormalization(), layers.Dropout(0.25),
                             layers.Dense(3, activation="softmax")])


def functional() -> keras.Model:
    torch.manual_seed(0)
    inputs = layers.Input((5,))
    hidden = layers.BatchNormalization()(layers.Dense(8, activation="relu")(inputs))
    outputs = layers.Dense(3, activation="softmax")(layers.Dropout(0.25)(hidden))
    return keras.Model(inputs, outputs)


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(8, activation="relu")
        self.norm = layers.BatchNormalization()
        self.drop = layers.Dropout(0.25)
        self.head = layers.Dense(3, activation="softmax")

    def call(self, inputs, training=None):
        return self.head(self.drop(self.norm(self.hidden(inputs))))


class GuideModel(keras.Model):
    """The Keras guides' `CustomModel(inputs, outputs)`: a functional model of a subclass."""

    def train_step(self, data):
        return super().train_step(data)


def subclassed() -> keras.Model:
    torch.manual_seed(0)
    return Subclassed()


def guide_model() -> keras.Model:
    torch.manual_seed(0)
    inputs = layers.Input((5,))
    return GuideModel(inputs, layers.Dense(3, activation="softmax")(layers.Dense(8)(inputs)))


def deepcopy(model):
    return copy.deepcopy(model)


def pickled(model):
    return pickle.loads(pickle.dumps(model))


def torch_saved(model):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def compile_(model):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def fit(model, epochs=1, **kwargs):
    torch.manual_seed(1)  # the same Dropout masks for a model and its copy
    return model.fit(X, Y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, **kwargs)


def to_fresh(model):
    pass


def to_built(model):
    model.build((None, 5))


def to_predicted(model):
    model.predict(X, verbose=0)


def to_compiled(model):
    compile_(model)


def to_fit(model):
    compile_(model)
    fit(model)


def to_evaluated(model):
    to_fit(model)
    model.evaluate(X, Y, verbose=0)


def to_fit_and_predicted(model):
    to_fit(model)
    model.predict(X, verbose=0)


KINDS = [sequential, functional, subclassed, guide_model]
STATES = [to_fresh, to_built, to_predicted, to_compiled, to_fit, to_evaluated,
          to_fit_and_predicted]
COPIES = [deepcopy, pickled, torch_saved]


def predict(model):
    torch.manual_seed(2)  # an unbuilt subclassed model builds on its first call
    return model.predict(X, verbose=0)


def weights(model) -> list[np.ndarray]:
    return [t.detach().clone().numpy() for t in model.state_dict().values()]


def optimizer_state(model) -> list[np.ndarray]:
    state = model.optimizer.torch_optimizer.state_dict()["state"]
    return [v.clone().numpy() for slots in state.values() for v in slots.values()
            if isinstance(v, torch.Tensor)]


def metric_values(model) -> list[float]:
    return [float(v) for m in model.metrics for v in m.variables]


def assert_same_arrays(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def modes(model) -> list[bool]:
    return [module.training for module in model.modules()]


@pytest.mark.parametrize("make_copy", COPIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("state", STATES, ids=lambda f: f.__name__[3:])
@pytest.mark.parametrize("kind", KINDS, ids=lambda f: f.__name__)
def test_a_copy_predicts_and_trains_as_the_original_and_apart_from_it(kind, state, make_copy):
    original = kind()
    state(original)
    clone = make_copy(original)

    assert type(clone) is type(original)
    assert modes(clone) == modes(original)
    assert not {t.data_ptr() for t in clone.state_dict().values()} & \
        {t.data_ptr() for t in original.state_dict().values()}
    np.testing.assert_array_equal(predict(clone), predict(original))

    compiled = original.optimizer is not None
    if compiled and original.optimizer.built:
        trainable = [p for p in clone.parameters() if p.requires_grad]
        assert len(clone.optimizer.variables) == len(trainable)
        assert all(a is b for a, b in zip(clone.optimizer.variables, trainable))
    for model in (original, clone) if not compiled else ():
        compile_(model)

    before = weights(original)
    before_metrics = metric_values(original)
    before_slots = optimizer_state(original) if original.optimizer.built else []
    copied = weights(clone)
    fit(clone)
    # The copy's optimizer moved the copy's weights, and nothing of the original's.
    assert any(not np.array_equal(a, b) for a, b in zip(copied, weights(clone)))
    assert_same_arrays(weights(original), before)
    assert metric_values(original) == before_metrics
    if before_slots:
        assert_same_arrays(optimizer_state(original), before_slots)

    # From the same point the original trains to the very same weights, and leaves the copy be.
    trained_copy = weights(clone)
    fit(original)
    assert_same_arrays(weights(original), trained_copy)
    assert_same_arrays(weights(clone), trained_copy)
    assert metric_values(clone) == metric_values(original)
    assert_same_arrays(optimizer_state(clone), optimizer_state(original))

    # And the original training on other data leaves the copy's weights, slots and metrics.
    kept = weights(clone), optimizer_state(clone), metric_values(clone)
    original.fit(X[:8], Y[:8], epochs=2, verbose=0)
    assert metric_values(original) != kept[2]
    assert_same_arrays(weights(clone), kept[0])
    assert_same_arrays(optimizer_state(clone), kept[1])
    assert metric_values(clone) == kept[2]


def test_a_copy_taken_inside_predict_in_another_thread_has_the_modes_outside_predict():
    model = sequential()
    to_fit(model)
    model.train()
    model.layers[1].eval()  # a frozen BatchNormalization the user left in eval mode
    expected = modes(model)
    entered, release = threading.Event(), threading.Event()

    class Blocking(Callback):
        def on_predict_batch_end(self, batch, logs=None):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=lambda: model.predict(X, batch_size=48, verbose=0,
                                                           callbacks=[Blocking()]))
    thread.start()
    try:
        assert entered.wait(10)
        assert not any(modes(model))  # the original is in eval mode meanwhile
        clones = [make_copy(model) for make_copy in COPIES]
        for clone in clones:
            assert modes(clone) == expected
        copy.copy(model)  # shares the modules: must not switch them under the running predict
        assert not any(modes(model))
        # No counters came along: the copy trains while the original is still inside predict
        # (which refuses fit on the original itself).
        with pytest.raises(RuntimeError, match="predict/evaluate is running"):
            model.fit(X, Y, verbose=0)
        fit(clones[0])
    finally:
        release.set()
        thread.join()
    assert modes(model) == expected


def test_a_copy_taken_while_evaluate_runs_evaluates_at_once():
    model = sequential()
    to_fit(model)
    expected = model.evaluate(X, Y, verbose=0)
    entered, release = threading.Event(), threading.Event()

    class Blocking(Callback):
        def on_test_batch_end(self, batch, logs=None):
            entered.set()
            release.wait(60)

    thread = threading.Thread(target=lambda: model.evaluate(X, Y, batch_size=48, verbose=0,
                                                            callbacks=[Blocking()]))
    thread.start()
    try:
        assert entered.wait(10)
        clones = [make_copy(model) for make_copy in COPIES]
        results = []
        # A lock copied in its held state would block here until the original's evaluate ends.
        worker = threading.Thread(target=lambda: results.extend(
            c.evaluate(X, Y, verbose=0) for c in clones))
        worker.start()
        worker.join(15)  # well before the original's evaluate would give up waiting
        assert not worker.is_alive() and len(results) == 3
    finally:
        release.set()
        thread.join()
        worker.join()
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_best_weights_snapshots_taken_by_a_callback_during_fit():
    model = sequential()
    compile_(model)

    class Snapshot(Callback):
        def __init__(self):
            super().__init__()
            self.copies, self.predictions = [], []

        def on_epoch_end(self, epoch, logs=None):
            self.copies.append(copy.deepcopy(self.model))
            self.predictions.append(self.model.predict(X, verbose=0))

    snapshot = Snapshot()
    fit(model, epochs=3, callbacks=[snapshot])
    for clone, predicted in zip(snapshot.copies, snapshot.predictions):
        assert clone.training  # taken in fit's training mode, as the model was
        np.testing.assert_array_equal(clone.predict(X, verbose=0), predicted)
    assert not np.array_equal(snapshot.predictions[0], snapshot.predictions[-1])
    fit(snapshot.copies[0])  # a snapshot is a model of its own: it trains


def test_ema_schedule_bfloat16_and_the_fused_softmax_carry_over():
    def make():
        model = sequential()
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01, use_ema=True),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      mixed_precision="bfloat16")
        return model

    def schedule():
        return keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate * 0.5)

    original = make()
    fit(original, epochs=2, callbacks=[schedule()])
    assert original._lamina_trainer._fused is not None  # softmax folded into the loss
    for make_copy in COPIES:
        clone = make_copy(original)
        assert clone.optimizer.learning_rate == original.optimizer.learning_rate == 0.0025
        np.testing.assert_array_equal(predict(clone), predict(original))
        reference = make_copy(original)
        fit(clone, epochs=3, initial_epoch=2, callbacks=[schedule()])
        fit(reference, epochs=3, initial_epoch=2, callbacks=[schedule()])
        assert_same_arrays(weights(clone), weights(reference))
        assert clone.optimizer.learning_rate == 0.00125
    # The EMA averages came along: a fresh optimizer's would start from the weights.
    uncopied = make()
    uncopied.load_state_dict(original.state_dict())
    fit(uncopied, epochs=3, initial_epoch=2, callbacks=[schedule()])
    assert any(not np.array_equal(a, b) for a, b in zip(weights(uncopied), weights(clone)))


def test_a_copy_of_a_jit_compiled_model_compiles_its_own_forward():
    original = keras.Sequential([layers.Input((5,)), layers.Dense(3)])
    original.compile(optimizer="sgd", loss="mse", jit_compile=True)
    target = RNG.normal(size=(48, 3)).astype("float32")
    original.fit(X, target, batch_size=16, shuffle=False, verbose=0)
    clone = copy.deepcopy(original)
    clone.fit(X, target, batch_size=16, shuffle=False, verbose=0)
    assert clone._lamina_trainer._forward._orig_mod is clone
    assert original._lamina_trainer._forward._orig_mod is original
    original.fit(X, target, batch_size=16, shuffle=False, verbose=0)
    assert_same_arrays(weights(clone), weights(original))


LOAD_IN_A_FRESH_PROCESS = """
import sys, numpy as np, torch
x, y = np.load(sys.argv[1]), np.load(sys.argv[2])
for index, path in enumerate(sys.argv[3:]):
    model = torch.load(path, weights_only=False)
    np.save(f"{path}.npy", model.predict(x, verbose=0))
    model.evaluate(x, y, verbose=0)  # the compiled state works: loss, metrics, a fresh lock
"""


def test_torch_save_of_whole_models_loads_in_a_fresh_process(tmp_path):
    models = [sequential(), functional()]
    paths = [str(tmp_path / f"model{i}.pt") for i in range(len(models))]
    for model, path in zip(models, paths):
        to_fit_and_predicted(model)
        torch.save(model, path)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    subprocess.run([sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy"), *paths], check=True, timeout=120)
    for model, path in zip(models, paths):
        np.testing.assert_array_equal(np.load(f"{path}.npy"), model.predict(X, verbose=0))


def test_weight_decay_exclusions_apply_to_the_copy():
    def make():
        model = sequential()
        optimizer = keras.optimizers.AdamW(learning_rate=0.05, weight_decay=0.5)
        optimizer.exclude_from_weight_decay(var_list=[model.layers[0].bias])
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        return model

    original = make()
    clone = copy.deepcopy(original)  # compiled, its optimizer not built yet
    fit(original)
    fit(clone)
    assert_same_arrays(weights(clone), weights(original))


def test_a_copied_adamw_decays_when_some_gradients_are_missing():
    first, second = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    optimizer = keras.optimizers.AdamW(learning_rate=0.1, weight_decay=0.5)
    optimizer.build([first, second])
    held = copy.deepcopy({"optimizer": optimizer, "weights": [first, second]})
    copied, _ = held["weights"]
    copied.grad = torch.ones(3)  # `second` gets no gradient
    held["optimizer"].step()
    # Decoupled decay w * (1 - lr * wd), then Adam's first step of -lr * g / (|g| + eps).
    expected = 1.0 * (1 - 0.1 * 0.5) - 0.1 / (1 + 1e-7)
    np.testing.assert_allclose(copied.detach().numpy(), expected, rtol=1e-6)


def test_a_copied_layer_renames_a_weight_as_the_original_does():
    original = layers.Dense(2)
    original.build((None, 3))
    for layer in (copy.deepcopy(original), pickled(original), original):
        layer.alias = layer.kernel
        assert sorted(layer.state_dict()) == ["alias", "bias"]


def test_a_copied_sequential_knows_its_plain_torch_modules_output_shapes():
    model = keras.Sequential([layers.Input((5,)), nn.Linear(5, 7), layers.Dense(2)])
    for clone in (copy.deepcopy(model), pickled(model)):
        lines = []
        clone.summary(print_fn=lines.append)
        assert any("Linear" in line and "(None, 7)" in line for line in lines), lines
