"""The engine: parity with a hand-written loop, every kind of input, logs, and bad input."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import pytest
import torch
from torch import nn

import lamina as keras
from lamina import layers
from lamina.errors import DataError, NotCompiledError


def classification_data(n=256, features=10, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    w = rng.normal(size=(features, classes))
    y = (x @ w).argmax(axis=1).astype("int64")
    return x, y


def mlp(features=10, classes=3, activation="softmax"):
    return keras.Sequential([
        layers.Dense(16, activation="relu", input_shape=(features,)),
        layers.Dense(classes, activation=activation),
    ])


def test_fit_matches_a_hand_written_torch_loop():
    x, y = classification_data()
    torch.manual_seed(0)
    model = mlp(activation=None)
    reference = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        kernel0, bias0, kernel1, bias1 = (torch.as_tensor(w) for w in model.get_weights())
        reference[0].weight.copy_(kernel0.t()); reference[0].bias.copy_(bias0)
        reference[2].weight.copy_(kernel1.t()); reference[2].bias.copy_(bias1)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)

    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(3):
        for start in range(0, len(x), 32):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(reference(xt[start:start + 32]), yt[start:start + 32])
            loss.backward()
            optimizer.step()
    kernel0, _, kernel1, _ = model.get_weights()
    np.testing.assert_allclose(kernel0, reference[0].weight.detach().numpy().T, atol=1e-5)
    np.testing.assert_allclose(kernel1, reference[2].weight.detach().numpy().T, atol=1e-5)


def test_fit_learns_and_reports_keras_logs():
    x, y = classification_data(512)
    model = mlp()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=15, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 15
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.85
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.85
    as_dict = model.evaluate(x, y, verbose=0, return_dict=True)
    assert as_dict == pytest.approx({"loss": loss, "accuracy": accuracy})
    predictions = model.predict(x[:7], verbose=0)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (7, 3)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, atol=1e-5)


def test_evaluate_matches_the_loss_computed_by_hand():
    x, y = classification_data(100)
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    probabilities = torch.as_tensor(model.predict(x, verbose=0))
    expected = nn.functional.nll_loss(probabilities.clamp(1e-7, 1 - 1e-7).log(), torch.as_tensor(y))
    # Batches of 32, 32, 32, 4: the epoch loss is the sample-weighted mean, as Keras reports it.
    assert model.evaluate(x, y, batch_size=32, verbose=0) == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize("kind", ["numpy", "tensor", "dataset", "dataloader", "generator", "pydataset"])
def test_fit_accepts_every_kind_of_input(kind):
    x, y = classification_data(128)
    steps = None
    if kind == "numpy":
        data = dict(x=x, y=y, batch_size=16)
    elif kind == "tensor":
        data = dict(x=torch.from_numpy(x), y=torch.from_numpy(y), batch_size=16)
    elif kind == "dataset":
        data = dict(x=torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                    batch_size=16)
    elif kind == "dataloader":
        data = dict(x=torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=16))
    elif kind == "generator":
        def batches():
            while True:
                for start in range(0, 128, 16):
                    yield x[start:start + 16], y[start:start + 16]
        data, steps = dict(x=batches()), 8
    else:
        class Batches(keras.utils.PyDataset):
            def __len__(self):
                return 8

            def __getitem__(self, index):
                return x[index * 16:(index + 1) * 16], y[index * 16:(index + 1) * 16]
        data = dict(x=Batches())
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(**data, epochs=3, steps_per_epoch=steps, verbose=0)
    assert len(history.history["loss"]) == 3
    assert history.history["loss"][2] < history.history["loss"][0]


def test_multi_input_multi_output_losses_weights_and_log_names():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 3)).astype("float32")
    target_class = (a.sum(1) > 0).astype("int64")
    target_value = b.sum(1, keepdims=True).astype("float32")
    input_a, input_b = keras.Input(shape=(4,), name="a"), keras.Input(shape=(3,), name="b")
    hidden = layers.Concatenate()([layers.Dense(8, activation="relu")(input_a), input_b])
    class_output = layers.Dense(2, activation="softmax", name="kind")(hidden)
    value_output = layers.Dense(1, name="value")(hidden)
    model = keras.Model(inputs=[input_a, input_b], outputs=[class_output, value_output])
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics={"kind": ["accuracy"], "value": ["mae"]})
    history = model.fit([a, b], [target_class, target_value], epochs=2, batch_size=16,
                        validation_split=0.25, verbose=0)
    assert {"loss", "kind_loss", "value_loss", "kind_accuracy", "value_mae", "val_loss",
            "val_kind_loss", "val_value_mae"} <= set(history.history)
    logs = model.evaluate({"a": a, "b": b}, [target_class, target_value], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["kind_loss"] + 0.5 * logs["value_loss"], rel=1e-4)


def test_custom_train_step_in_a_subclassed_model():
    x, y = classification_data(128)

    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(16, activation="relu")
            self.out = layers.Dense(3)
            self.steps_run = 0

        def call(self, inputs, training=None):
            return self.out(self.hidden(inputs))

        def train_step(self, data):
            inputs, targets = data
            self.steps_run += 1
            predictions = self(inputs, training=True)
            loss = self.compute_loss(y=targets, y_pred=predictions)
            loss.backward()
            self.optimizer.step()
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss.detach())
                else:
                    metric.update_state(targets, predictions.detach())
            return {m.name: m.result() for m in self.metrics}

    model = Custom()
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    assert model.steps_run == 16
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_a_plain_torch_module_trains_through_wrap():
    class Net(nn.Module):  # the sheet's Net
        def __init__(self, input_size, hidden_size, num_classes):
            super(Net, self).__init__()
            self.fc1 = nn.Linear(input_size, hidden_size)
            self.dropout = nn.Dropout(0.2)
            self.fc2 = nn.Linear(hidden_size, num_classes)

        def forward(self, x):
            x = nn.functional.relu(self.fc1(x))
            x = self.dropout(x)
            return self.fc2(x)

    x, y = classification_data(256)
    net = Net(10, 32, 3)
    before = net.fc1.weight.detach().clone()
    model = keras.wrap(net)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    assert not torch.equal(before, net.fc1.weight)  # the module's own parameters were trained
    assert history.history["accuracy"][-1] > 0.8
    assert not net.training  # back in eval mode after fit


PACKAGE_DIR = os.path.dirname(keras.__file__) + os.sep


# Every Tensor method that copies a value to the host: on an accelerator each one waits for the
# device to finish, so one per step serializes the loop. Python's float()/int()/bool() and
# operator.index() reach the tensor through the dunders.
HOST_READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__",
              "__array__")


def test_hot_loop_has_no_per_step_host_sync(monkeypatch):
    x, y = classification_data(512)
    counts: dict[str, int] = {}

    def counting(name, original):
        # Count reads made by Lamina's code. torch.optim reads its own step counters with
        # .item(), but those live on the CPU by design (even for CUDA models): no device sync.
        def method(self, *args, **kwargs):
            # The package's own files only: a checkout folder named `lamina` (as `git clone`
            # names it) also holds the virtualenv with torch inside it.
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(PACKAGE_DIR):
                where = f"{name} at {caller.f_code.co_filename}:{caller.f_lineno}"
                counts[where] = counts.get(where, 0) + 1
            return original(self, *args, **kwargs)
        return method

    def syncs_for(batch_size):
        model = mlp()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[:32], y[:32], epochs=1, verbose=0)  # first-call input checks happen here
        # The non-finite flag as on an accelerator: read at epoch ends only (on CPU it is read
        # every step, which costs no device sync there).
        model._lamina_trainer.nonfinite_check_every = 1000
        counts.clear()
        with monkeypatch.context() as patch:
            for name in HOST_READS:
                patch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
            model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0)
        return dict(counts)

    # 64 vs 4 steps per epoch: the same reads, at the same places, in both.
    assert syncs_for(8) == syncs_for(128)


def test_the_host_sync_counter_sees_every_kind_of_read(monkeypatch):
    """Patching the class catches every kind of read: float(), int(), bool(), indexing with a
    tensor, .cpu(), .numpy(), np.asarray() as well as .item() and .tolist()."""
    seen = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def method(self, *args, _name=name, _original=original, **kwargs):
            seen.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, method)
    t = torch.tensor(3.0)
    float(t), int(t), bool(t), [0, 1, 2, 3][torch.tensor(1)], t.cpu(), t.numpy(), t.item()
    t.tolist(), np.asarray(t)
    assert set(seen) == set(HOST_READS)


def test_bad_input_errors_before_training():
    x, y = classification_data(64)
    model = mlp()
    with pytest.raises(NotCompiledError, match="compile"):
        model.fit(x, y, verbose=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(DataError, match="same number of samples"):
        model.fit(x, y[:50], verbose=0)
    with pytest.raises(DataError, match="empty"):
        model.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(DataError, match="validation"):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="label|class|range"):
        model.fit(x, np.full(64, 7), verbose=0)  # 3 classes: label 7 is out of range
    with pytest.raises(ValueError, match="epochs"):
        model.fit(x, y, epochs=-1, verbose=0)


def test_train_test_predict_on_batch():
    x, y = classification_data(32)
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    first = model.train_on_batch(x, y)
    assert isinstance(first, list) and len(first) == 2
    for _ in range(30):
        logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] < first[0]
    assert set(model.test_on_batch(x, y, return_dict=True)) == {"loss", "accuracy"}
    assert model.predict_on_batch(x).shape == (32, 3)


def test_class_weight_scales_the_loss_of_each_class():
    x, y = classification_data(64)
    model = mlp()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    plain = model.fit(x, y, epochs=1, batch_size=64, verbose=0).history["loss"][0]
    doubled = model.fit(x, y, epochs=1, batch_size=64, verbose=0,
                        class_weight={0: 2.0, 1: 2.0, 2: 2.0}).history["loss"][0]
    assert doubled == pytest.approx(2 * plain, rel=1e-5)


def test_bfloat16_mixed_precision_trains_with_float32_weights():
    x, y = classification_data(256)
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  mixed_precision="bfloat16")
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert all(w.dtype == torch.float32 for w in model.weights)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_regularization_losses_are_added_to_the_training_loss():
    x, y = classification_data(32)
    model = keras.Sequential([layers.Dense(3, input_shape=(10,), kernel_regularizer=keras.regularizers.L2(1.0))])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    kernel = torch.as_tensor(model.get_weights()[0])
    plain = nn.functional.cross_entropy(torch.as_tensor(model.predict(x, verbose=0)), torch.as_tensor(y))
    assert logs["loss"] == pytest.approx(plain.item() + kernel.square().sum().item(), rel=1e-4)


def test_jit_compile_trains_through_torch_compile():
    x, y = classification_data(128)
    model = mlp()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=True)
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    assert type(model._lamina_trainer._forward).__name__ == "OptimizedModule"
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_the_logged_loss_does_not_depend_on_when_logs_are_read():
    # A progress bar reads the logs on a timer; the epoch loss must be the same sum however
    # the reads fell (a resumed run's history is compared bit for bit with an uninterrupted one).
    x = np.random.default_rng(0).normal(size=(640, 20)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")

    class Reader(keras.callbacks.Callback):
        def __init__(self, probability):
            self.draw, self.probability = random.Random(3), probability

        def on_train_batch_end(self, batch, logs=None):
            if self.draw.random() < self.probability:
                float(logs["loss"])

    def history(probability):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((20,)), layers.Dense(16, activation="relu"),
                                   layers.Dense(2)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model.fit(x, y, batch_size=8, epochs=2, verbose=0,
                         callbacks=[Reader(probability)]).history["loss"]

    unread = history(0.0)
    assert history(0.3) == unread and history(1.0) == unread


def test_reset_metrics_zeroes_the_loss_tracker_and_compiled_metrics_as_keras_does():
    x, y = classification_data(64)
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert loss > 0 and accuracy > 0
    assert [float(m.result()) for m in model.metrics] == pytest.approx([loss, accuracy])
    model.reset_metrics()
    assert [float(m.result()) for m in model.metrics] == [0.0, 0.0]  # Keras's Mean and accuracy


def test_the_loss_tracker_sums_in_place_and_keeps_no_tensor_of_a_step():
    # A list of the steps' losses pinned one small allocation a step above the freed
    # activations, and glibc grew the heap by an activation every evaluate step.
    import weakref

    from lamina.training.trainer import StepLossMean

    tracker = StepLossMean()
    losses = [torch.tensor(v) for v in (0.5, 2.0, 1.25)]
    kept = [weakref.ref(loss) for loss in losses]
    for loss, size in zip(losses, (4, 4, 2)):
        tracker.record(loss, size)
    del losses, loss
    assert [ref() for ref in kept] == [None, None, None]
    expected = (0.5 * 4 + 2.0 * 4 + 1.25 * 2) / 10
    assert float(tracker.result()) == pytest.approx(expected)
    assert float(tracker.count) == 0  # counted on the host until a reader folds it in
    tracker.fold()
    assert (float(tracker.total), float(tracker.count)) == (12.5, 10.0)
    assert float(tracker.result()) == pytest.approx(expected)
    tracker.reset_state()
    tracker.record(torch.tensor(3.0), 2)
    assert float(tracker.result()) == 3.0


def test_a_backup_written_with_unsummed_step_losses_resumes_their_sum():
    # Backups from before the in-place sum list the steps' losses under "pending".
    x, y = classification_data(64)
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.evaluate(x, y, verbose=0)
    trainer = model._lamina_trainer
    trainer.load_metric_state({"pending": [(torch.tensor(2.0), 3), (torch.tensor(1.0), 1)],
                               "metrics": {"loss": [torch.tensor(4.0), torch.tensor(2.0)]}})
    assert float(trainer.loss_tracker.result()) == pytest.approx((4 + 6 + 1) / 6)
    state = trainer.metric_state()
    assert "pending" not in state
    assert [float(v) for v in state["metrics"]["loss"]] == [11.0, 6.0]
