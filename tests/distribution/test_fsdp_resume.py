"""BackupAndRestore under FSDP and ModelParallel, and per-layer FSDP units, over two processes
(gloo on the CPU) against the same training in one process."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lamina
from lamina import callbacks, layers
from lamina.distribution.runtime import shard_units

sys.path.insert(0, str(Path(__file__).parent))
import resume_scenarios  # noqa: E402
import scenarios  # noqa: E402
from test_multiprocess import _keras_file_arrays  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forks rank processes")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    return out, scenarios.run_ranks(resume_scenarios.NAMES, out)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The uninterrupted run in one process, and the sharded runs' reference."""
    out = tmp_path_factory.mktemp("one")
    model = scenarios.mlp()
    history = resume_scenarios.fit(model, out / "backup", crash=False)
    model.save(str(out / "one.keras"))
    return out, history, scenarios.run("fsdp_one_unit", out, "units.one", False)


def _close(a, b, tolerance=2e-5):
    np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", ["fsdp_resume", "model_parallel_resume"])
def test_interrupted_sharded_run_resumes_to_the_uninterrupted_weights(ranks, one_process, name):
    out, results = ranks
    resumed = _keras_file_arrays(out / f"{name}.dist-resumed.keras")
    uninterrupted = _keras_file_arrays(out / f"{name}.dist-uninterrupted.keras")
    one = _keras_file_arrays(one_process[0] / "one.keras")
    # Weights, Adam's moments and its step count: 2 + 4 weights x (1 + 2 moments).
    assert resumed.keys() == uninterrupted.keys() == one.keys() and len(one) == 2 + 4 * 3
    for key in one:
        # The same two processes, bit for bit; one process, to float rounding.
        np.testing.assert_array_equal(resumed[key], uninterrupted[key], err_msg=key)
        _close(resumed[key], one[key])
    for result in (r[name] for r in results):
        # The resumed epoch's loss and accuracy count the batches before the backup too (its
        # sums, backed up whole and split over the processes again, may round differently).
        assert len(result["resumed"]["loss"]) == resume_scenarios.EPOCHS
        for key, values in one_process[1].items():
            _close(result["resumed"][key], values)
            _close(result["uninterrupted"][key], values)
        assert result["backup_left"] is False


def test_backup_of_two_processes_is_refused_in_one(ranks):
    out, _ = ranks
    model = scenarios.mlp()
    backup = out / "fsdp_resume.dist-left"
    with pytest.raises(ValueError) as raised:
        model.fit(*scenarios.data(69), batch_size=16, epochs=4, verbose=0,
                  callbacks=[callbacks.BackupAndRestore(str(backup))])
    assert str(raised.value) == (
        f"The backup in {str(backup)!r} was written by a run of 2 process(es), but this run has "
        "1: its data order and per-process state would not continue the same run. Resume with "
        "2 process(es) (torchrun --nproc-per-node), or delete the directory to start training "
        "afresh.")


def test_processes_that_see_different_backups_all_fail(ranks):
    for result in (r["unshared_backup"] for r in ranks[1]):
        assert result["error"] == (
            f"The processes of this run found different backups in {result['backup']!r} "
            "(process 0: latest; process 1: none). Every process reads the backup directory: "
            "put it on storage all machines share.")


def test_each_large_layer_is_gathered_only_while_it_runs(ranks, one_process):
    _, results = ranks
    for result in results:
        # Per-layer units: the first Dense (its own unit) is whole only during its call; the
        # second stays in the root unit, whole for the whole forward.
        assert result["fsdp_units"]["seen"] == {"0": [0, 1], "1": [1]}
        # The whole model as one unit: every weight whole throughout.
        assert result["fsdp_one_unit"]["seen"] == {"0": [0, 1], "1": [0, 1]}
    expected = one_process[2]
    for result in (r[name] for r in results for name in ("fsdp_units", "fsdp_one_unit")):
        for key, values in expected["history"].items():
            _close(result["history"][key], values)
        for key, value in expected["evaluate"].items():
            _close(result["evaluate"][key], value)
        _close(result["predict"], expected["predict"])


def _nested():
    lamina.set_random_seed(0)
    inner = lamina.Sequential([lamina.Input((32,)), layers.Dense(32, name="inner_big"),
                               layers.Dense(2, name="inner_small")], name="block")
    return lamina.Sequential([lamina.Input((8,)), layers.Dense(32, name="first"), inner,
                              layers.Dense(2, name="head")])


def test_units_are_large_layers_innermost_first_by_not_yet_taken_weights():
    model = _nested()
    by_name = lambda units: [u.name for u in units]  # noqa: E731
    # first: 8*32+32 = 288; inner_big: 32*32+32 = 1056; inner_small: 32*2+2 = 66; head: 6.
    assert by_name(shard_units(model, 288)) == ["first", "inner_big"]
    assert by_name(shard_units(model, 6)) == ["first", "inner_big", "inner_small", "head"]
    assert by_name(shard_units(model, 66)) == ["first", "inner_big", "inner_small"]
    # The block's weights left after inner_big became a unit (66) are too few at 67.
    assert by_name(shard_units(model, 67)) == ["first", "inner_big"]
    # Nothing taken inside: the block's 1122 weights make it one unit.
    assert by_name(shard_units(model, 1100)) == ["block"]
    assert shard_units(model, 10**6) == []


def test_units_inside_a_wrapped_torch_module_are_found_through_its_containers():
    blocks = torch.nn.ModuleList([torch.nn.Linear(16, 16) for _ in range(2)])  # 272 each

    class Blocks(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.blocks = torch.nn.Linear(8, 16), blocks  # stem: 144

        def forward(self, x):
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
            return x

    model = lamina.wrap(torch.nn.Sequential(Blocks(), torch.nn.Linear(16, 3)))  # head: 51
    # A plain module (Blocks) is not looked into: its own forward calls its sublayers.
    assert shard_units(model, 100) == [model.module[0]]
    assert shard_units(model, 10) == [model.module[0], model.module[1]]
    wrapped = lamina.wrap(torch.nn.Sequential(torch.nn.Linear(8, 16), blocks))
    assert shard_units(wrapped, 200) == [blocks[0], blocks[1]]
    assert shard_units(wrapped, 100) == [wrapped.module[0], blocks[0], blocks[1]]
    assert shard_units(wrapped, 600) == [wrapped.module]


def test_a_layer_sharing_a_weight_outside_it_is_not_a_unit():
    model = _nested()
    head = model.layers[-1]
    inner_small = model.layers[1].layers[-1]
    head.kernel = inner_small.kernel  # tied: the head calls the block's weight
    assert "inner_small" not in [u.name for u in shard_units(model, 1)]
    assert "block" not in [u.name for u in shard_units(model, 1100)]
    assert isinstance(head.kernel, torch.nn.Parameter)


@pytest.mark.parametrize("value", [0, -5, 1.5, True, "big"])
def test_min_unit_size_must_be_a_positive_count(value):
    for strategy in (lambda: lamina.distribution.FSDP(min_unit_size=value),
                     lambda: lamina.distribution.ModelParallel(
                         layout_map=lamina.distribution.LayoutMap(
                             lamina.distribution.DeviceMesh((1,), ["batch"])),
                         min_unit_size=value)):
        with pytest.raises(ValueError) as raised:
            strategy()
        assert str(raised.value) == (
            "`min_unit_size` must be a positive number of weight elements (a layer with at least "
            f"that many is gathered on its own). Received: min_unit_size={value!r}. Use e.g. "
            "1_000_000.")


def test_a_new_tensor_with_a_freed_weights_id_is_not_that_weight():
    # FSDP sets sharded and gathered copies of each weight on its layer (setattr), freeing the
    # ones before: a new tensor may take a freed weight's id (its address). Setting it as the
    # bias must not rename the kernel, which made `Dense.kernel` vanish mid-training.
    layer = layers.Dense(3)
    layer.build((None, 4))
    kernel = layer.kernel
    stand_in = torch.nn.Parameter(torch.zeros(3))
    layer._weight_attr_by_id[id(stand_in)] = "kernel"  # as if the kernel's id were reused
    layer.bias = stand_in
    assert layer.kernel is kernel and layer.bias is stand_in
    assert dict(layer.named_parameters()) == {"kernel": kernel, "bias": stand_in}
