"""Read-only NumPy inputs (a memmap opened with mode 'r', an array after setflags(write=False))
go through fit, evaluate and predict without torch's "not writable" warning, without a copy of
their memory, and untouched."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.training.data_adapters import ArrayAdapter, to_tensor


@pytest.fixture
def warn_always():
    # torch gives its "not writable" warning once per process: without this, a test that ran
    # earlier would hide it from these.
    torch.set_warn_always(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
    torch.set_warn_always(False)


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 5)).astype(np.float32)
    y = (x @ rng.standard_normal((5, 1)) + 0.5).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return x, y, np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy",
                                                                      mmap_mode="r")


def trained(x, y):
    lamina.utils.set_random_seed(3)
    model = lamina.Sequential([layers.Dense(1, input_shape=(5,))])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=16, epochs=2, shuffle=True, verbose=0)
    return model


def test_fit_evaluate_predict_on_read_only_memmaps(data, warn_always):
    x, y, x_map, y_map = data
    assert not x_map.flags.writeable and isinstance(x_map, np.memmap)
    model = trained(x_map, y_map)
    reference = trained(x, y)  # the same run on writable in-memory copies
    for received, expected in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(received, expected)

    kernel, bias = model.get_weights()
    predicted = model.predict(x_map, batch_size=32, verbose=0)
    np.testing.assert_allclose(predicted, x @ kernel + bias, rtol=1e-5, atol=1e-6)
    loss = model.evaluate(x_map, y_map, batch_size=32, verbose=0)
    np.testing.assert_allclose(loss, np.mean((x @ kernel + bias - y) ** 2), rtol=1e-5)
    np.testing.assert_array_equal(x_map, x)  # the file's memory was never written
    np.testing.assert_array_equal(y_map, y)


def test_a_read_only_array_is_shared_not_copied(data, warn_always):
    _, y, x_map, _ = data
    address = x_map.__array_interface__["data"][0]
    assert to_tensor(x_map).data_ptr() == address
    adapter = ArrayAdapter(x_map, None, None, 16, False, torch.device("cpu"))
    assert adapter.x.data_ptr() == address

    frozen = y.copy()
    frozen.setflags(write=False)
    tensor = to_tensor(frozen)
    assert tensor.data_ptr() == frozen.__array_interface__["data"][0]
    assert not frozen.flags.writeable  # the caller's array keeps its flag
    np.testing.assert_array_equal(tensor.numpy(), y)


@pytest.mark.parametrize("make", [
    lambda a: a[::-1],                       # torch refuses negative strides: copied
    lambda a: a.astype(">f4"),               # big-endian: copied in native order
    lambda a: a[:, ::2],                     # a strided view: shared
    lambda a: a.astype(np.float64),          # cast to float32 once
    lambda a: np.broadcast_to(a[:1], a.shape),  # zero strides, read-only by construction
], ids=["reversed", "big-endian", "strided", "float64", "broadcast"])
def test_read_only_views_of_every_layout_convert_to_their_values(data, warn_always, make):
    x = data[0]
    array = make(x)
    array.setflags(write=False)
    tensor = to_tensor(array)
    assert tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor.numpy(), np.asarray(array, dtype=np.float32))
