"""predict/evaluate after the batch-1 cost cuts of issue #15: same behaviour, checked against
torch itself (no timings here)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import lamina
from lamina import callbacks as callbacks_module
from lamina import layers
from lamina.training.concurrency import _training_modules
from lamina.training.trainer import _device_of


def _mlp() -> lamina.Sequential:
    torch.manual_seed(0)
    return lamina.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                              layers.Dropout(0.5), layers.Dense(3)])


def _reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_predict_sees_an_input_changed_in_place_between_calls():
    model = _mlp()
    x = np.random.default_rng(0).random((1, 4), dtype=np.float32)
    first = model.predict(x, verbose=0)
    x[0, :] = [5.0, -3.0, 2.0, 7.0]  # the same array object, new values
    second = model.predict(x, verbose=0)
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, _reference(model, x), rtol=1e-6)


def test_predict_result_is_a_fresh_numpy_array_even_for_an_identity_model():
    inputs = lamina.Input(shape=(3,))
    model = lamina.Model(inputs, layers.Identity()(inputs))
    x = torch.ones(2, 3)
    out = model.predict(x, verbose=0)
    assert isinstance(out, np.ndarray)
    out[:] = 7.0
    assert torch.equal(x, torch.ones(2, 3))  # the caller's input is not aliased


def test_predict_still_calls_callbacks_and_restores_training_mode():
    model = _mlp()
    model.train()
    model.layers[1].eval()  # a frozen submodule stays frozen afterwards
    seen: list[tuple[str, int]] = []

    class Recorder(callbacks_module.Callback):
        def on_predict_begin(self, logs=None):
            seen.append(("begin", -1))

        def on_predict_batch_end(self, batch, logs=None):
            assert not self.model.training and not self.model.layers[0].training
            seen.append(("batch", batch))

        def on_predict_end(self, logs=None):
            seen.append(("end", -1))

    x = np.random.default_rng(1).random((5, 4), dtype=np.float32)
    out = model.predict(x, batch_size=2, verbose=0, callbacks=[Recorder()])
    assert seen == [("begin", -1), ("batch", 0), ("batch", 1), ("batch", 2), ("end", -1)]
    assert model.training and model.layers[0].training and not model.layers[1].training
    np.testing.assert_allclose(out, _reference(model, x), rtol=1e-6)


def test_training_modules_match_torch_modules_with_shared_and_frozen_children():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Sequential(nn.Dropout(), nn.Tanh()))
    model[3][0].eval()
    assert _training_modules(model) == [m for m in model.modules() if m.training]


def test_device_of_matches_the_first_parameter_and_defaults_to_cpu():
    model = _mlp()
    assert _device_of(model) == next(model.parameters()).device
    model = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Linear(2, 2).to(torch.float64)))
    assert _device_of(model) == next(model.parameters()).device
    assert _device_of(nn.Sequential(nn.ReLU())) == torch.device("cpu")


def test_evaluate_on_numpy_and_tensor_inputs_agrees_with_torch():
    model = _mlp()
    model.compile(optimizer="sgd", loss=lamina.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    rng = np.random.default_rng(2)
    x = rng.random((10, 4), dtype=np.float32)
    y = rng.integers(0, 3, 10)
    logits = torch.from_numpy(_reference(model, x))
    expected_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
    expected_accuracy = (logits.argmax(1).numpy() == y).mean()
    for data in ((x, y), (torch.from_numpy(x), torch.from_numpy(y))):
        loss, accuracy = model.evaluate(*data, batch_size=4, verbose=0)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
        np.testing.assert_allclose(accuracy, expected_accuracy, rtol=1e-6)


def test_predict_keeps_a_numpy_string_array_as_text():
    # Keras's StringLookup: index 0 is the out-of-vocabulary token, the vocabulary follows.
    model = lamina.Sequential([layers.StringLookup(vocabulary=["a", "b", "c"])])
    out = model.predict(np.array([["a"], ["c"], ["zz"]]), verbose=0)
    np.testing.assert_array_equal(out, [[1], [3], [0]])


# ---------------------------------------------------------------- the one-batch fast path
# predict(x, verbose=0) on data that is one batch skips the adapter and the callbacks; a
# callback (even one that does nothing) sends the same call down the general path, so every
# fast-path result below is checked against the general path and against torch itself.


def _general(model, x, **kwargs):
    return model.predict(x, verbose=0, callbacks=[callbacks_module.Callback()], **kwargs)


class _Counter:
    """Counts calls of a function it stands in for (the work a fast path must not do)."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def _count_general_path(monkeypatch) -> tuple[_Counter, _Counter]:
    from lamina.training import trainer as trainer_module

    adapters = _Counter(trainer_module.data_adapters.make_adapter)
    callback_lists = _Counter(trainer_module.CallbackList)
    monkeypatch.setattr(trainer_module.data_adapters, "make_adapter", adapters)
    monkeypatch.setattr(trainer_module, "CallbackList", callback_lists)
    return adapters, callback_lists


def test_one_sample_predict_skips_the_adapter_and_callbacks_and_matches_torch(monkeypatch):
    model = _mlp()
    model.train()  # Dropout must be off in predict all the same
    x = np.random.default_rng(3).random((1, 4), dtype=np.float32)
    expected = _reference(model, x)
    model.train()
    adapters, callback_lists = _count_general_path(monkeypatch)
    for call in (lambda: model.predict(x, verbose=0), lambda: model.predict_on_batch(x),
                 lambda: model.predict(torch.from_numpy(x), verbose=0),
                 lambda: model.predict(x.astype(np.float64), verbose=0)):
        out = call()
        assert out.dtype == np.float32 and out.shape == (1, 3) and out.flags.c_contiguous
        np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert adapters.calls == callback_lists.calls == 0
    assert model.training and model.layers[1].training  # the caller's mode is kept
    # A torch module reads its mode from `module.training`, not from `training=False`.
    torch_dropout = lamina.Sequential([layers.Dense(8, input_shape=(4,)), nn.Dropout(0.9),
                                       layers.Dense(3)])
    torch_dropout.train()
    rows = np.repeat(x, 8, axis=0)
    np.testing.assert_allclose(torch_dropout.predict(rows, verbose=0),
                               _reference(torch_dropout, rows), rtol=1e-6)
    torch_dropout.train()
    torch_dropout.predict(rows, verbose=0)
    assert torch_dropout.training and torch_dropout.layers[1].training
    # Anything that observes batches, or data of several batches, takes the general path.
    model.predict(x, verbose=1)
    _general(model, x)
    model.predict(np.repeat(x, 33, axis=0), verbose=0)
    model.predict(np.repeat(x, 3, axis=0), batch_size=2, verbose=0)
    assert adapters.calls == callback_lists.calls == 4


def test_fast_path_matches_the_general_path_on_multi_input_and_multi_output_models():
    torch.manual_seed(1)
    left, right = lamina.Input(shape=(3,), name="left"), lamina.Input(shape=(2,), name="right")
    joined = layers.Concatenate()([layers.Dense(4)(left), layers.Dense(4)(right)])
    two_outputs = lamina.Model([left, right], [layers.Dense(2)(joined), layers.Dense(1)(joined)])
    named = lamina.Model({"left": left, "right": right},
                         {"score": layers.Dense(1, name="score")(joined),
                          "codes": layers.Dense(3, name="codes")(joined)})
    rng = np.random.default_rng(4)
    a, b = rng.random((5, 3), dtype=np.float32), rng.random((5, 2), dtype=np.float32)
    for model, x in ((two_outputs, [a, b]), (two_outputs, (torch.from_numpy(a), b)),
                     (named, {"left": a, "right": b})):
        fast, general = model.predict(x, verbose=0), _general(model, x, batch_size=2)
        with torch.no_grad():
            ordered = [x["left"], x["right"]] if isinstance(x, dict) else list(x)
            expected = model([torch.as_tensor(v) for v in ordered] if not isinstance(x, dict)
                             else {k: torch.as_tensor(v) for k, v in x.items()})
        assert type(fast) is type(general) is (dict if isinstance(x, dict) else list)
        keys = list(general) if isinstance(general, dict) else range(len(general))
        assert (list(fast) if isinstance(fast, dict) else len(fast)) == \
            (list(general) if isinstance(general, dict) else len(general))
        for key in keys:
            assert fast[key].dtype == general[key].dtype == np.float32
            np.testing.assert_allclose(fast[key], general[key], rtol=1e-6)
            np.testing.assert_allclose(fast[key], expected[key].numpy(), rtol=1e-6)
        assert model.predict_on_batch(x)[keys[0] if isinstance(x, dict) else 0].shape[0] == 5


def test_predict_on_batch_runs_a_dict_of_inputs_as_one_batch_of_its_samples():
    inputs = {"a": lamina.Input(shape=(2,), name="a"), "b": lamina.Input(shape=(2,), name="b")}
    model = lamina.Model(inputs, layers.Dense(1)(layers.Add()([inputs["a"], inputs["b"]])))
    calls = []
    model.layers[-1].register_forward_hook(lambda module, args, out: calls.append(len(out)))
    rng = np.random.default_rng(6)
    x = {"a": rng.random((40, 2), dtype=np.float32), "b": rng.random((40, 2), dtype=np.float32)}
    out = model.predict_on_batch(x)
    assert calls == [40]  # one forward pass over the 40 samples, not batches of 2 (the keys)
    dense = model.layers[-1]
    expected = torch.nn.functional.linear(torch.from_numpy(x["a"] + x["b"]),
                                          dense.kernel.detach().t(), dense.bias.detach())
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5)


def test_fast_path_integer_and_bfloat16_outputs_come_back_as_the_general_path_makes_them():
    class Ranked(lamina.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(3)

        def call(self, inputs):
            return self.dense(inputs)

        def predict_step(self, data):
            scores = self(data, training=False)
            return {"top": scores.argmax(-1), "scores": scores.to(torch.bfloat16)}

    torch.manual_seed(2)
    model = Ranked()
    x = np.random.default_rng(5).random((4, 2), dtype=np.float32)
    fast, general = model.predict(x, verbose=0), _general(model, x, batch_size=3)
    with torch.no_grad():
        scores = model(torch.from_numpy(x))
    assert fast["top"].dtype == general["top"].dtype == np.int64
    np.testing.assert_array_equal(fast["top"], scores.argmax(-1).numpy())
    assert fast["scores"].dtype == general["scores"].dtype == np.float32
    np.testing.assert_array_equal(fast["scores"], scores.to(torch.bfloat16).float().numpy())
    np.testing.assert_array_equal(fast["scores"], general["scores"])


def test_fast_path_masks_apply_as_in_the_general_path():
    torch.manual_seed(3)
    model = lamina.Sequential([layers.Embedding(6, 4, mask_zero=True, input_shape=(5,)),
                               layers.LSTM(3)])
    x = np.array([[1, 2, 0, 0, 0], [3, 4, 5, 1, 0]])
    fast = model.predict(x, verbose=0)
    np.testing.assert_allclose(fast, _general(model, x, batch_size=1), rtol=1e-6)
    # The mask drops the padding: the first row equals the same tokens without it.
    np.testing.assert_allclose(fast[0], model.predict(x[:1, :2], verbose=0)[0], rtol=1e-5)


def _error_of(call) -> tuple[type, str]:
    try:
        call()
    except Exception as error:  # noqa: BLE001 (the error is the result under test)
        return type(error), str(error)
    raise AssertionError("no error was raised")


def test_fast_path_refuses_bad_input_with_the_general_paths_errors():
    model = _mlp()
    bad_inputs = [
        np.ones((1, 5), np.float32),                        # wrong feature size
        np.full((1, 4), "x"),                               # text for a numeric model
        np.ones((1, 4), np.complex64),                      # complex numbers
        np.ones((0, 4), np.float32),                        # no samples
        np.float32(1.0),                                    # a scalar
        [np.ones((2, 4), np.float32), np.ones((3, 4), np.float32)],  # ragged inputs
    ]
    for x in bad_inputs:
        fast = _error_of(lambda: model.predict(x, verbose=0))
        assert fast == _error_of(lambda: _general(model, x)), x
        assert issubclass(fast[0], (ValueError, TypeError)) and fast[1]


def test_evaluate_records_each_step_loss_and_weights_the_batches_by_size(monkeypatch):
    from lamina.training.trainer import StepLossMean

    folds = []
    update_state = StepLossMean.update_state

    def counting(self, *args, **kwargs):  # the per-step path: four kernels a step
        folds.append(args)
        return update_state(self, *args, **kwargs)

    monkeypatch.setattr(StepLossMean, "update_state", counting)
    model = _mlp()
    model.compile(optimizer="sgd", loss=lamina.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    rng = np.random.default_rng(7)
    x, y = rng.random((10, 4), dtype=np.float32), rng.integers(0, 3, 10)
    logits = torch.from_numpy(_reference(model, x))
    # Batches of 3, 3, 3 and 1: the mean over samples, not over batches.
    expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
    logs = model.evaluate(x, y, batch_size=3, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(logs["accuracy"], (logits.argmax(1).numpy() == y).mean())
    assert folds == []


def test_reversed_and_big_endian_arrays_are_read_as_numpy_reads_them():
    # torch.from_numpy/as_tensor refuse both (negative strides, non-native byte order).
    model = _mlp()
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(8)
    x, y = rng.random((6, 4), dtype=np.float32), rng.random((6, 3), dtype=np.float32)
    for view in (x[::-1], x.astype(">f4"), x[:, ::-1]):
        expected = _reference(model, np.ascontiguousarray(view, dtype=np.float32))
        np.testing.assert_allclose(model.predict(view, verbose=0), expected, rtol=1e-6)
        np.testing.assert_allclose(_general(model, view, batch_size=4), expected, rtol=1e-6)
        mse = ((expected - y[::-1]) ** 2).mean()
        np.testing.assert_allclose(model.evaluate(view, y[::-1], verbose=0), mse, rtol=1e-5)
