"""Training over two processes (gloo on the CPU) against the same training in one process.

The rank processes are forked from this already-imported interpreter (scenarios.run_ranks), so
the pair costs seconds, and every collective has a 60 s timeout, so a hang fails the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import lamina

sys.path.insert(0, str(Path(__file__).parent))
import scenarios  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forks rank processes")

NAMES = ["arrays", "module", "generator", "custom", "fsdp", "model_parallel", "uneven_layout",
         "loader", "first_use", "stream_inference", "conv_unit_axes", "load_on_chief",
         "broadcast_chunks"]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    return out, scenarios.run_ranks(NAMES, out)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    return out, {name: scenarios.run(name, out, f"{name}.one", False)
                 for name in ("arrays", "module", "generator", "custom", "fsdp", "first_use",
                              "stream_inference", "conv_unit_axes", "load_on_chief")}


def _keras_file_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a .keras file's weights archive, by its HDF5 path (read with h5py)."""
    import io
    import zipfile

    import h5py

    found = {}
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as h5:
        h5.visititems(lambda name, item: found.__setitem__(name, item[()])
                      if isinstance(item, h5py.Dataset) else None)
    return found


def _close(a, b, tolerance=2e-5):
    np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", ["arrays", "module"])
def test_data_parallel_trains_as_one_process(ranks, reference, name):
    _, results = ranks
    expected = reference[1][name]
    for result in (r[name] for r in results):
        for mine, theirs in zip(result["weights"], expected["weights"]):
            _close(mine, theirs)
        # Same epochs (EarlyStopping stopped both after epoch 3), same learning rates
        # (ReduceLROnPlateau halved both), same reduced losses and metrics on every rank.
        assert result["history"].keys() == expected["history"].keys()
        for key, values in expected["history"].items():
            assert len(values) == 3
            _close(result["history"][key], values)
        assert expected["history"]["learning_rate"] == [0.02, 0.02, 0.01]
        for key, value in expected["evaluate"].items():
            _close(result["evaluate"][key], value)
        # The whole prediction, in order, on every rank: 23 rows split 11/12.
        assert result["predict"].shape == (23, 3)
        _close(result["predict"], expected["predict"])


def test_generator_batches_are_split_in_fit_evaluate_and_predict(ranks, reference):
    expected = reference[1]["generator"]
    for result in (r["generator"] for r in ranks[1]):
        for mine, theirs in zip(result["weights"], expected["weights"]):
            _close(mine, theirs)
        for key, values in expected["history"].items():
            _close(result["history"][key], values)
        for key, value in expected["evaluate"].items():
            _close(result["evaluate"][key], value)
        assert result["predict"].shape == (69, 3)
        _close(result["predict"], expected["predict"])


def test_custom_train_step_averages_gradients_over_processes(ranks, reference):
    expected = reference[1]["custom"]
    for result in (r["custom"] for r in ranks[1]):
        for mine, theirs in zip(result["weights"], expected["weights"]):
            _close(mine, theirs)
        for key, values in expected["history"].items():
            _close(result["history"][key], values)


def test_only_rank_zero_writes_and_its_checkpoint_loads_in_one_process(ranks, reference):
    out, _ = ranks
    written = sorted(p.name for p in out.iterdir() if p.suffix in (".csv", ".keras", ".h5"))
    assert written == ["arrays.dist.csv", "arrays.dist.keras", "first_use.dist.keras", "fsdp.dist.keras",
                       "load_on_chief.dist-other.weights.h5", "model_parallel.dist.keras",
                       "module.dist.csv", "module.dist.weights.h5"]
    rows = (out / "arrays.dist.csv").read_text().splitlines()
    assert len(rows) == 4  # a header and one row per epoch, written once
    model = lamina.saving.load_model(str(out / "arrays.dist.keras"))
    x, _ = scenarios.data(23, seed=1)
    _close(model.predict(x, verbose=0), reference[1]["arrays"]["predict"])


# Per rank, the shape each process stores: FSDP splits the first axis (3 units: 2 and 1); the
# LayoutMap puts the first kernel's second axis and its bias on the "model" axis, and the
# weights it does not name are split along their first axis.
STORED = {
    "fsdp": [[[4, 16], [8], [8, 3], [2]], [[4, 16], [8], [8, 3], [1]]],
    "model_parallel": [[[8, 8], [8], [8, 3], [2]], [[8, 8], [8], [8, 3], [1]]],
}


@pytest.mark.parametrize("name", ["fsdp", "model_parallel"])
def test_sharded_parameters_train_as_one_process_and_save_whole(ranks, reference, name):
    out, results = ranks
    expected = reference[1]["fsdp"]
    for rank, result in enumerate(r[name] for r in results):
        assert result["stored_shapes"] == STORED[name][rank]
        for key, values in expected["history"].items():
            _close(result["history"][key], values)
        for key, value in expected["evaluate"].items():
            _close(result["evaluate"][key], value)
        _close(result["predict"], expected["predict"])
    saved = _keras_file_arrays(out / f"{name}.dist.keras")
    one = _keras_file_arrays(reference[0] / "fsdp.one.keras")
    # Whole weights and whole optimizer slots (Adam's moments), as one process saves them.
    assert saved.keys() == one.keys() and len(one) == 2 + 4 + 8
    for key in one:
        assert saved[key].shape == one[key].shape, key
        _close(saved[key], one[key])
    model = lamina.saving.load_model(str(out / f"{name}.dist.keras"))
    _close(model.predict(scenarios.data(23, seed=1)[0], verbose=0), expected["predict"])


def test_layout_that_does_not_divide_the_weight(ranks):
    for result in (r["uneven_layout"] for r in ranks[1]):
        assert result["error"] == (
            "The LayoutMap splits axis 1 of weight 'dense_1/kernel' (shape (16, 3)) over the 2 "
            "devices of mesh axis 'model'; that axis must exist and its size be a multiple of "
            "theirs. Change the layout (None leaves an axis whole) or the mesh.")


def test_data_loader_is_split_over_processes_in_a_new_order_each_epoch(ranks):
    _, results = ranks
    epochs = [r["loader"]["epochs"] for r in results]
    for epoch in range(2):
        first, second = epochs[0][epoch], epochs[1][epoch]
        assert len(first) == len(second) == 16
        assert sorted(first + second) == list(range(32))
    assert epochs[0][0] != epochs[0][1]
    # predict reads the loader in order, each process a contiguous half: the rows come back
    # whole and in the dataset's order, as predict on the arrays gives them.
    for result in results:
        assert result["loader"]["predict"].shape == (32, 3)
        _close(result["loader"]["predict"], result["loader"]["predict_arrays"])


def test_before_fit_every_process_evaluates_rank_zeros_weights(ranks, reference):
    # Each process was seeded differently; the one process was seeded as rank 0 was.
    expected = reference[1]["first_use"]
    for result in (r["first_use"] for r in ranks[1]):
        for key, value in expected["evaluate"].items():
            _close(result["evaluate"][key], value)
        _close(result["predict"], expected["predict"])
        # A subclassed model's weights are made by its first call, inside predict.
        _close(result["lazy_predict"], expected["lazy_predict"])
        _close(result["lazy_evaluate"], expected["lazy_evaluate"])


def test_verbose_checkpoint_prints_once(ranks):
    out, results = ranks
    printed = [r["first_use"]["printed"] for r in results]
    assert printed == [f"Epoch 1: saving model to {out / 'first_use.dist.keras'}\n", ""]


def test_stream_evaluation_is_split_and_reduced(ranks, reference):
    expected = reference[1]["stream_inference"]
    results = [r["stream_inference"] for r in ranks[1]]
    for result in results:
        for name in ("evaluate", "pydataset_evaluate"):
            assert result[name].keys() == expected[name].keys()
            for key, value in expected[name].items():
                _close(result[name][key], value)
        for name in ("predict", "pydataset_predict"):
            assert result[name].shape == (38, 3)
            _close(result[name], expected[name])
    # Each process's model ran only its slices: together, each row once per call.
    assert expected["rows_run"] == 4 * 38
    assert sum(r["rows_run"] for r in results) == 4 * 38
    assert all(r["rows_run"] < 4 * 38 for r in results)
    # Batches of one row leave rank 0 nothing: every rank fails, none waits for the others.
    assert "single_rows" not in expected
    assert [r["single_rows"] for r in results] == [
        f"The stream's batches (of {rows} rows on this process) are split over 2 processes, and "
        "some process received no rows at all. Make some batch hold at least 2 samples, or "
        "evaluate or predict in one process." for rows in ([0], [1])]


def test_conv_kernels_with_unit_axes_take_gradients_as_they_come_and_ddp_does_not_warn(ranks, reference):
    expected = reference[1]["conv_unit_axes"]
    # Torch's convolutions decide the gradients' strides: each kernel is stored with them.
    assert expected["kernel_strides"] == expected["gradient_strides"]
    assert expected["kernel_strides"][0] == [9, 1, 3, 1]  # (4, 1, 3, 3): channels_last
    for result in (r["conv_unit_axes"] for r in ranks[1]):
        assert result["warnings"] == []
        assert result["kernel_strides"] == expected["kernel_strides"]
        for key, values in expected["history"].items():
            _close(result["history"][key], values)
        for mine, theirs in zip(result["weights"], expected["weights"]):
            _close(mine, theirs)


def test_weights_loaded_on_rank_zero_alone_reach_every_process(ranks, reference):
    # The one process loads where rank 0 does; every rank must end as it does.
    expected = reference[1]["load_on_chief"]
    for result in (r["load_on_chief"] for r in ranks[1]):
        for key, value in expected["evaluate"].items():
            _close(result["evaluate"][key], value)
        _close(result["predict"], expected["predict"])
        for key, values in expected["history"].items():
            _close(result["history"][key], values)
        for mine, theirs in zip(result["weights"], expected["weights"]):
            _close(mine, theirs)


def test_weights_are_broadcast_in_chunks_of_each_dtype(ranks):
    expected = scenarios.mixed_tensors(0)  # rank 0's
    for result in (r["broadcast_chunks"] for r in ranks[1]):
        for index, tensor in enumerate(expected):
            np.testing.assert_array_equal(result[f"tensor{index}"], tensor.numpy())
