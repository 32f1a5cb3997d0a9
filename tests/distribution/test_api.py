"""The Keras distribution API in one process: its objects, the single-process fallback, and the
errors for set-ups that cannot work (checked without starting other processes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import callbacks, distribution, layers
from lamina.distribution import sharding
from lamina.errors import DataError
from lamina.training import data_adapters


@pytest.fixture(autouse=True)
def no_distribution():
    yield
    distribution.set_distribution(None)


def _model():
    lamina.set_random_seed(0)
    model = lamina.Sequential([lamina.Input((4,)), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _data(n=32):
    rng = np.random.RandomState(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 3)).astype("float32")


def test_keras_objects():
    assert distribution.list_devices() == ["cpu:0"]
    assert distribution.process_count() == 1 and distribution.is_chief()
    mesh = distribution.DeviceMesh((1,), ["batch"])
    layout_map = distribution.LayoutMap(mesh)
    layout_map["dense.*kernel"] = (None, "batch")
    assert layout_map.get_layout("layers.0.dense_3.kernel").axes == (None, "batch")
    assert layout_map.get_layout("bias") is None
    parallel = distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
    assert parallel.device_mesh is mesh and parallel.data_shards == 1
    assert distribution.distribution() is None
    with parallel.scope():
        assert distribution.distribution() is parallel
    assert distribution.distribution() is None


@pytest.mark.parametrize("build, message", [
    (lambda: distribution.DeviceMesh((2, 2), ["batch", "model"], ["cpu:0"] * 3),
     "A mesh of shape (2, 2) holds 4 devices, but 3 were given"),
    (lambda: distribution.DeviceMesh((2,), ["batch", "model"], ["cpu:0"] * 2),
     "`axis_names` must name each of the 1 axes"),
    (lambda: distribution.LayoutMap(distribution.DeviceMesh((1,), ["batch"])).__setitem__(
        "kernel", ("model",)), "names mesh axes ['model'] that the mesh does not have"),
    (lambda: distribution.set_distribution("data_parallel"), "set_distribution takes"),
    (lambda: distribution.DataParallel(device_mesh=distribution.DeviceMesh(
        (1, 1), ["batch", "model"], ["cpu:0"])), "DataParallel takes a one-axis mesh"),
])
def test_bad_objects(build, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(").replace(
            ")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        build()


def test_one_process_fallback_trains_as_without_distribution():
    x, y = _data()
    plain = _model()
    plain.fit(x, y, batch_size=8, epochs=2, verbose=0)
    with distribution.DataParallel().scope():
        model = _model()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_distribution_set_after_the_model_was_compiled():
    model = _model()
    distribution.set_distribution(distribution.DataParallel())
    with pytest.raises(ValueError, match=r"was built and compiled before the distribution "
                                         r"DataParallel.*was set.*set_distribution"):
        model.fit(*_data(), verbose=0)


def test_mesh_larger_than_the_job():
    with pytest.raises(ValueError, match="spans 2 devices but this job has 1 processes"):
        with distribution.DataParallel(devices=["cpu:0", "cpu:1"]).scope():
            _model()


def test_data_loader_batch_must_divide_over_processes():
    x, y = _data()
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    adapter = data_adapters.make_adapter(torch.utils.data.DataLoader(dataset, batch_size=5))
    with pytest.raises(ValueError, match=r"batch_size \(5\) is the global batch and must be "
                                         r"divisible by the 2 processes"):
        sharding.for_training(adapter, 2, 0, sharding.StepShare())


def test_last_batch_smaller_than_the_processes():
    x, y = _data(33)
    adapter = data_adapters.make_adapter(x, y, batch_size=16)
    with pytest.raises(DataError, match=r"last batch of each epoch holds 1 sample\(s\).*fewer "
                                        r"than the 2 processes"):
        sharding.for_training(adapter, 2, 0, sharding.StepShare())


def test_array_shards_cover_each_global_batch_once():
    x, y = _data(21)
    adapter = data_adapters.make_adapter(x, y, batch_size=8)
    indices = adapter.indices()
    share = sharding.StepShare()
    rows, fractions = [], []
    for index in range(3):
        part = sharding.ShardedArrays(adapter, 3, index, share)
        batches = list(part._slices(indices, lambda i: torch.arange(21)[i]))
        rows.append(batches)
        fractions.append(share.fraction)
    for step in range(3):
        joined = torch.cat([rows[p][step] for p in range(3)]).tolist()
        assert joined == list(range(8 * step, min(8 * step + 8, 21)))
    # The last batch has 5 rows: 1, 2 and 2 of them.
    assert fractions == [1 / 5, 2 / 5, 2 / 5]


def test_inference_parts_are_contiguous_and_in_order():
    x, y = _data(23)
    adapter = data_adapters.make_adapter(x, y, batch_size=4)
    parts = [sharding.for_inference(adapter, 2, index) for index in range(2)]
    assert [p.num_samples for p in parts] == [11, 12]
    np.testing.assert_array_equal(torch.cat([p.x for p in parts]).numpy(), x)


def test_resume_with_another_number_of_processes(tmp_path, monkeypatch):
    x, y = _data()
    backup = callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    _model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[backup])
    from lamina.callbacks import backup_and_restore

    monkeypatch.setattr(backup_and_restore, "process_count", lambda: 2)
    with pytest.raises(ValueError, match=r"written by a run of 1 process\(es\), but this run has "
                                         r"2.*Resume with 1 process"):
        _model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[backup])


@pytest.mark.parametrize("chief", [True, False])
def test_only_the_chief_prints_and_writes_logs(tmp_path, monkeypatch, capsys, chief):
    from lamina.callbacks import callback_list as callback

    monkeypatch.setattr(callback, "is_chief", lambda: chief)
    history = _model().fit(*_data(), batch_size=8, epochs=2, verbose=2, callbacks=[
        callbacks.CSVLogger(str(tmp_path / "log.csv")),
        callbacks.TensorBoard(str(tmp_path / "tb")),
        callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=100.0)])
    printed = capsys.readouterr().out
    assert ("Epoch 1/2" in printed) is chief
    assert (tmp_path / "log.csv").exists() is chief
    assert (tmp_path / "tb").exists() is chief
    # Every process still steers training: EarlyStopping stopped both after epoch 2.
    assert len(history.history["loss"]) == 2
