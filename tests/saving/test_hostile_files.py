"""Hostile model and weights files: each attack raises FileFormatError naming what is wrong, fast
and in little memory, reads no byte of any other file, writes nothing, and leaves the model it
was loading into unchanged. Checksums catch edits; atomic writes survive kills."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
import zipfile

import h5py
import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import FileFormatError
from lamina.saving import state_file

CANARY = np.arange(12, dtype=np.float32).reshape(3, 4) + 1000.0  # bytes no model holds
KERNEL = "layers/dense/vars/0"
SECONDS = 5.0  # of CPU time: wall time on a shared CI machine measures the neighbours
PEAK_BYTES = 64 << 20


def kernel_path(h5):
    """The first Dense kernel's dataset: Keras 3's tree, or Keras's legacy `.h5` layout."""
    if "model_weights" not in h5:
        return KERNEL
    group = h5["model_weights"]
    layer = group.attrs["layer_names"][0].decode()
    return f"model_weights/{layer}/{group[layer].attrs['weight_names'][0].decode()}"


def small_model(units=4, head=2):
    return lamina.Sequential([layers.Dense(units, input_shape=(3,)), layers.Dense(head)])


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A work folder, a canary folder outside it, and an empty current directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    CANARY.tofile(outside / "canary.bin")
    with h5py.File(outside / "canary.h5", "w") as h5:
        h5["data"] = CANARY
    work = tmp_path / "work"
    work.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return work, outside


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def without_checksum(path):
    with h5py.File(path, "r+") as h5:
        del h5.attrs["lamina_weights_sha256"]
    return path


def weights_file(work, edit, keep_checksum=False):
    """A real weights file, edited by `edit(h5)`; without its checksum unless asked, so the
    check under test is the one that answers (files from Keras carry no checksum)."""
    path = work / "w.weights.h5"
    small_model().save_weights(path)
    with h5py.File(path, "r+") as h5:
        edit(h5)
    return path if keep_checksum else without_checksum(path)


def replace_kernel(make):
    def edit(h5):
        del h5[KERNEL]
        make(h5["layers/dense/vars"], "0")
    return edit


def kernel_of(data, **kwargs):
    return replace_kernel(lambda group, name: group.create_dataset(name, data=data, **kwargs))


# --------------------------------------------------------------------------- the attack table


def external_storage(work, outside):
    return weights_file(work, replace_kernel(lambda g, n: g.create_dataset(
        n, shape=(3, 4), dtype="f4", external=[(str(outside / "canary.bin"), 0, CANARY.nbytes)])))


def external_link(work, outside):
    return weights_file(work, replace_kernel(
        lambda g, n: g.__setitem__(n, h5py.ExternalLink(str(outside / "canary.h5"), "/data"))))


def soft_link(work, outside):
    def edit(h5):
        h5["stash"] = CANARY
        replace_kernel(lambda g, n: g.__setitem__(n, h5py.SoftLink("/stash")))(h5)
    return weights_file(work, edit)


def virtual_dataset(work, outside):
    def make(group, name):
        layout = h5py.VirtualLayout(shape=(3, 4), dtype="f4")
        layout[:] = h5py.VirtualSource(str(outside / "canary.h5"), "data", shape=(3, 4))
        group.create_virtual_dataset(name, layout)
    return weights_file(work, replace_kernel(make))


def declared_giant(work, outside):
    # A (5e8,) float32 weight declared in a 17 KB file: reading it would allocate 2 GB.
    def edit(h5):
        h5["layers/dense/vars"].create_dataset("giant", shape=(500_000_000,), dtype="f4")
    return weights_file(work, edit)


def giant_model_h5(work, outside):
    # The legacy .h5 whose config agrees with a giant unallocated kernel: no shape check can
    # catch it, the storage check must.
    path = work / "giant.h5"
    small_model().save(path)
    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        config["config"]["layers"][0]["config"]["units"] = 125_000_000
        h5.attrs["model_config"] = json.dumps(config)
        del h5.attrs["lamina_config_sha256"], h5.attrs["lamina_weights_sha256"]
        kernel = kernel_path(h5)
        del h5[kernel]
        h5.create_dataset(kernel, shape=(3, 125_000_000), dtype="f4")
    return path


def config_larger_than_weights(work, outside):
    path = work / "budget.h5"
    small_model().save(path)
    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        config["config"]["layers"][1]["config"]["units"] = 3_000_000
        h5.attrs["model_config"] = json.dumps(config)
        del h5.attrs["lamina_config_sha256"]
    return path


def hard_link_cycle(work, outside):
    return weights_file(work, lambda h5: h5["layers/dense"].__setitem__(
        "loop", h5["layers/dense"]))


def gzip_kernel(work, outside):
    return weights_file(work, kernel_of(np.zeros((3, 4), "f4"), compression="gzip", chunks=(3, 4)))


def lzf_kernel(work, outside):
    return weights_file(work, kernel_of(np.zeros((3, 4), "f4"), compression="lzf", chunks=(3, 4)))


def reference_kernel(work, outside):
    def make(group, name):
        group.create_dataset(name, shape=(3, 4), dtype=h5py.ref_dtype)
    return weights_file(work, replace_kernel(make))


def string_kernel(work, outside):
    return weights_file(work, kernel_of(np.full((3, 4), b"x")))


def compound_kernel(work, outside):
    return weights_file(work, kernel_of(np.zeros((3, 4), dtype=[("a", "f4"), ("b", "f4")])))


def zip_of(work, members, name="m.keras"):
    path = work / name
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we want
        for member, data in members:
            archive.writestr(member, data)
    return path


def real_members(work):
    small_model().save(work / "real.keras")
    with zipfile.ZipFile(work / "real.keras") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def config_zip_bomb(work, outside):
    members = real_members(work)
    members["config.json"] = b" " * (40 << 20) + members["config.json"]  # 40 MB -> 40 KB deflated
    return zip_of(work, members.items())


def weights_zip_bomb(work, outside):
    members = real_members(work)
    members["model.weights.h5"] += bytes(200 << 20)
    return zip_of(work, members.items())


def duplicate_members(work, outside):
    members = real_members(work)
    return zip_of(work, list(members.items()) + [("config.json", b'{"class_name": "Evil"}')])


def odd_member(work, outside):
    return zip_of(work, list(real_members(work).items()) + [("../escape.txt", b"x")])


def json_nesting_bomb(work, outside):
    members = real_members(work)
    members["config.json"] = b"[" * 200_000 + b"]" * 200_000
    metadata = json.loads(members["metadata.json"])
    del metadata["config_sha256"]
    members["metadata.json"] = json.dumps(metadata).encode()
    return zip_of(work, members.items())


def member_lies_about_its_size(work, outside):
    path = work / "m.keras"
    small_model().save(path)
    data = bytearray(path.read_bytes())
    config = zipfile.ZipFile(path).getinfo("config.json")
    size = config.file_size.to_bytes(4, "little")
    smaller = (config.file_size - 10).to_bytes(4, "little")
    # Both the local header and the central directory declare the same smaller size.
    data[:] = data.replace(size * 2, smaller * 2)
    path.write_bytes(bytes(data))
    return path


def legacy_config_not_text(work, outside):
    path = work / "m.h5"
    small_model().save(path)
    with h5py.File(path, "r+") as h5:
        h5.attrs["model_config"] = np.arange(10)
    return path


def legacy_h5(edit):
    """A Lamina `.h5` (Keras's legacy layout), edited by `edit(model_weights group)`."""
    def make(work, outside):
        path = work / "m.h5"
        small_model().save(path)
        with h5py.File(path, "r+") as h5:
            edit(h5["model_weights"])
            del h5.attrs["lamina_weights_sha256"]
        return path
    return make


def first_layer(group):
    return group[group.attrs["layer_names"][0].decode()]


def optimizer_attribute(name, value):
    """A trained model's `.keras` file whose optimizer group has `name` set to `value`."""
    def make(work, outside):
        model = small_model()
        model.compile(optimizer="adam", loss="mse")
        model.fit(np.ones((4, 3), "f4"), np.ones((4, 2), "f4"), verbose=0)
        model.save(work / "trained.keras")
        with zipfile.ZipFile(work / "trained.keras") as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        (work / "trained.keras").unlink()
        inner = work / "inner.h5"
        inner.write_bytes(members["model.weights.h5"])
        with h5py.File(inner, "r+") as h5:
            h5["optimizer/vars"].attrs[name] = value
        members["model.weights.h5"] = inner.read_bytes()
        inner.unlink()
        return zip_of(work, members.items(), "m.keras")
    return make


def load_weights_into(model):
    return lambda path: model.load_weights(path)


ATTACKS = {
    # name: (make file, loader, message fragment)
    "external storage": (external_storage, "weights", "keeps its data in external files"),
    "external link": (external_link, "weights", "has a ExternalLink at 'layers/dense/vars/0'"),
    "soft link": (soft_link, "weights", "has a SoftLink at 'layers/dense/vars/0'"),
    "virtual dataset": (virtual_dataset, "weights", "'layers/dense/vars/0' is a virtual dataset"),
    "int64 kernel": (lambda w, o: weights_file(w, kernel_of(np.ones((3, 4), "i8"))), "weights",
                     "(dataset 'layers/dense/vars/0') is stored as int64, which cannot hold a float32"),
    "complex kernel": (lambda w, o: weights_file(w, kernel_of(np.ones((3, 4), "c8"))), "weights",
                       "is stored as complex64, which cannot hold a float32"),
    "bool kernel": (lambda w, o: weights_file(w, kernel_of(np.ones((3, 4), bool))), "weights",
                    "is stored as bool, which cannot hold a float32"),
    "float64 1e300 kernel": (lambda w, o: weights_file(w, kernel_of(np.full((3, 4), 1e300))),
                             "weights", "holds values beyond the range of torch.float32"),
    "NaN kernel": (lambda w, o: weights_file(w, kernel_of(np.full((3, 4), np.nan, "f4"))),
                   "weights", "holds NaN or infinite values"),
    "string kernel": (string_kernel, "weights", "has dtype |S1; weights are plain numbers"),
    "compound kernel": (compound_kernel, "weights", "weights are plain numbers"),
    "reference kernel": (reference_kernel, "weights", "weights are plain numbers"),
    "declared (5e8,) dataset": (declared_giant, "weights",
                                "declares shape (500000000,) (2,000,000,000 bytes) but stores only 0"),
    "giant kernel agreeing with its config": (giant_model_h5, "model",
                                              "declares shape (3, 125000000)"),
    "config larger than its weights": (config_larger_than_weights, "model",
                                       "describes a model larger than the weights it holds"),
    "hard-link cycle": (hard_link_cycle, "weights", "has a weights tree deeper than 64"),
    "gzip kernel": (gzip_kernel, "weights", "uses the HDF5 filter 'deflate'"),
    "lzf kernel": (lzf_kernel, "weights", "uses the HDF5 filter 'lzf'"),
    "config.json zip bomb": (config_zip_bomb, "model",
                             "the archive member 'config.json' is 41,"),
    "weights zip bomb": (weights_zip_bomb, "model", "would expand from"),
    "duplicate members": (duplicate_members, "model", "has duplicate archive members ['config.json']"),
    "odd member": (odd_member, "model", "has an unexpected archive member '../escape.txt'"),
    "JSON nesting bomb": (json_nesting_bomb, "model", "has a model config that is not valid JSON"),
    "member lies about its size": (member_lies_about_its_size, "model", "Bad CRC-32"),
    "legacy config not text": (legacy_config_not_text, "model",
                               "the attribute 'model_config' is not a text value"),
    "legacy layer without a group": (
        legacy_h5(lambda g: g.attrs.__setitem__("layer_names", np.array([b"nowhere", b"x"]))),
        "model", "the layer 'nowhere' listed in `layer_names` has no group"),
    "legacy weight names not text": (
        legacy_h5(lambda g: first_layer(g).attrs.__setitem__("weight_names", np.arange(3.0))),
        "model", "is not a list of names"),
    "legacy weight name pointing nowhere": (
        legacy_h5(lambda g: first_layer(g).attrs.__setitem__(
            "weight_names", np.array([b"missing", b"bias"]))),
        "model", "is not a dataset where the weight 'kernel'"),
    "legacy layer name beyond the cap": (
        legacy_h5(lambda g: g.attrs.__setitem__("layer_names", np.array([b"n" * 5000]))),
        "model", "names more (or longer) entries than a model has"),
    "optimizer steps not numbers": (optimizer_attribute("lamina_steps", "many"), "model",
                                    "the optimizer attribute 'lamina_steps' is not a list"),
    "optimizer slots not JSON": (optimizer_attribute("lamina_slots", "[[exp_avg"), "model",
                                 "the optimizer attribute 'lamina_slots' is not JSON"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_is_refused(attack, place):
    work, outside = place
    make, loader, fragment = ATTACKS[attack]
    path = make(work, outside)
    outside_before, work_before = snapshot(outside), snapshot(work)
    model = small_model()
    weights_before = model.get_weights()
    # torch imports its meta kernels at their first use (~1 s of CPU, several under
    # tracemalloc): a one-time cost of the process, not of refusing this file.
    torch.addmm(*(torch.empty(shape, device="meta") for shape in ((4,), (2, 3), (3, 4))))
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(FileFormatError) as error:
            if loader == "weights":
                model.load_weights(path)
            else:
                lamina.models.load_model(path)
        elapsed = time.process_time() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fragment in str(error.value), str(error.value)
    assert str(path) in str(error.value)
    assert elapsed < SECONDS and peak < PEAK_BYTES, (elapsed, peak)
    assert snapshot(outside) == outside_before and snapshot(work) == work_before
    assert os.listdir(".") == []
    for before, after in zip(weights_before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_the_canary_loads_when_it_is_inside_the_file(place):
    # The control for the link attacks: the same bytes stored in the file itself do load, so
    # the refusals above are about where the bytes live.
    work, _ = place
    path = weights_file(work, kernel_of(CANARY))
    model = small_model()
    model.load_weights(path)
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], CANARY)


def test_shape_mismatch_in_layer_2_leaves_layer_1_unchanged(place):
    work, _ = place
    small_model(head=3).save_weights(work / "other.weights.h5")
    model = small_model()
    before = model.get_weights()
    with pytest.raises(FileFormatError, match=re.escape(
            "Layer 'dense_1' weight 'kernel' has shape (4, 2) in the model but (4, 3) in the file.")):
        model.load_weights(work / "other.weights.h5")
    for mine, original in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(mine, original)


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.weights.h5"])
def test_an_edited_weight_is_caught_by_the_checksum(name, place):
    work, _ = place
    path = work / name
    saved = small_model()
    (saved.save_weights if name.endswith(".weights.h5") else saved.save)(path)
    edited = saved.get_weights()[0].copy()
    edited[1, 2] += 0.5
    if name.endswith(".keras"):
        members = {n: zipfile.ZipFile(path).read(n) for n in zipfile.ZipFile(path).namelist()}
        weights = work / "inner.h5"
        weights.write_bytes(members["model.weights.h5"])
        with h5py.File(weights, "r+") as h5:
            h5[KERNEL][...] = edited
        members["model.weights.h5"] = weights.read_bytes()
        weights.unlink()
        zip_of(work, members.items(), name)
    else:
        with h5py.File(path, "r+") as h5:
            h5[kernel_path(h5)][...] = edited
    model = small_model()
    before = model.get_weights()
    with pytest.raises(FileFormatError, match="is corrupted: its weights do not match the SHA-256"):
        model.load_weights(path)
    np.testing.assert_array_equal(model.get_weights()[0], before[0])
    if not name.endswith(".weights.h5"):
        with pytest.raises(FileFormatError, match="is corrupted"):
            lamina.models.load_model(path)
    model.load_weights(path, verify_checksum=False)  # the opt-out loads what the file holds
    np.testing.assert_array_equal(model.get_weights()[0], edited)


def test_an_edited_config_is_caught_by_the_checksum(place):
    work, _ = place
    small_model().save(work / "m.h5")
    with h5py.File(work / "m.h5", "r+") as h5:
        h5.attrs["model_config"] = h5.attrs["model_config"].replace('"linear"', '"relu"')
    with pytest.raises(FileFormatError, match="is corrupted: its model config does not match"):
        lamina.models.load_model(work / "m.h5")
    loaded = lamina.models.load_model(work / "m.h5", verify_checksum=False)
    assert loaded.layers[0].get_config()["activation"] == "relu"


def test_a_file_without_checksums_loads(place):
    # Files written by Keras or by older Lamina carry no checksum; they load unchecked.
    work, _ = place
    saved = small_model()
    saved.save(work / "m.h5")
    with h5py.File(work / "m.h5", "r+") as h5:
        del h5.attrs["lamina_weights_sha256"], h5.attrs["lamina_config_sha256"]
    loaded = lamina.models.load_model(work / "m.h5")
    for mine, theirs in zip(saved.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_the_checksum_does_not_depend_on_the_hdf5_layout(place):
    # The same weights rewritten chunked, big-endian and in another order keep their digest.
    work, _ = place
    path = work / "w.weights.h5"
    saved = small_model()
    saved.save_weights(path)
    with h5py.File(path, "r+") as h5:
        group = h5["layers/dense/vars"]
        kernel = group["0"][()]
        del group["0"]
        group.create_dataset("0", data=kernel.astype(">f4"), chunks=(1, 4), fletcher32=True)
    model = small_model()
    model.load_weights(path)
    for mine, theirs in zip(saved.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_skip_mismatch_still_refuses_damage(place):
    work, _ = place
    path = weights_file(work, kernel_of(np.ones((3, 4), "i8")))
    with pytest.raises(FileFormatError, match="is stored as int64"):
        small_model().load_weights(path, skip_mismatch=True)


# --------------------------------------------------------------------------- training state


def state_with(work, edit):
    path = work / "s.state.h5"
    state_file.save_state(path, {"step": 3, "moments": (np.ones(3), np.zeros(2))})
    with h5py.File(path, "r+") as h5:
        del h5.attrs["lamina_sha256"]
        edit(h5)
    return path


def set_state(document):
    return lambda h5: h5.attrs.__setitem__("state", json.dumps(document))


@pytest.mark.parametrize("edit, fragment", [
    (set_state({"__tensor__": 0, "dtype": "load"}), "tensor dtype 'load' is not one of"),
    (set_state([{"__array__": 0}, {"__array__": 0}]), "array 0 is referenced twice"),
    (set_state({"__array__": 7}), "it refers to array 7, which it does not hold"),
    (set_state({"__dict__": [[[1], 2]]}), "a dictionary key is a list"),
    (set_state({"__class__": "os.system"}), "is none of the stored forms"),
    (lambda h5: h5["arrays"].__setitem__("9", h5py.ExternalLink("/etc/passwd", "/")),
     "has a ExternalLink at '9'"),
    (lambda h5: h5.attrs.__setitem__("state", "[" * 100_000), "is not valid JSON"),
])
def test_hostile_training_state(edit, fragment, place):
    work, _ = place
    path = state_with(work, edit)
    with pytest.raises(FileFormatError, match=re.escape(fragment)):
        state_file.load_state(path)


def test_training_state_round_trip_and_checksum(place):
    import torch

    work, _ = place
    state = {"w": torch.arange(4, dtype=torch.bfloat16), 1: [None, True, "x", 2.5],
             "t": (np.arange(3, dtype=np.uint32),)}
    state_file.save_state(work / "s.h5", state)
    loaded = state_file.load_state(work / "s.h5")
    assert loaded["w"].dtype == torch.bfloat16 and torch.equal(loaded["w"], state["w"])
    assert loaded[1] == [None, True, "x", 2.5]
    np.testing.assert_array_equal(loaded["t"][0], state["t"][0])
    with h5py.File(work / "s.h5", "r+") as h5:
        h5["arrays/1"][0] = 7
    with pytest.raises(FileFormatError, match="is corrupted"):
        state_file.load_state(work / "s.h5")


# --------------------------------------------------------------------------- atomic writes


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".lamina-tmp"))


SLOW_SAVE = textwrap.dedent("""
    import sys, lamina
    from lamina import layers
    model = lamina.Sequential([layers.Dense(2048, input_shape=(2048,)), layers.Dense(2048)])
    import lamina.saving.saving_api as api
    real = api.write_legacy_weights
    def slow(module, group):
        print("writing", flush=True)
        real(module, group)
        __import__("time").sleep(60)
    api.write_legacy_weights = slow
    model.save(sys.argv[1])
""")


def test_killed_saves_leave_no_temporaries_behind(tmp_path):
    # A legacy .h5 save writes its 32 MB of weights straight into the temporary file, which
    # holds part of them when the writer is killed.
    path = tmp_path / "big.h5"
    small_model().save(path)
    before = path.read_bytes()
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(path)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "writing\n"
        deadline = time.time() + 60
        while not temporaries(tmp_path) and time.time() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        # The killed writer's file stays until the next save; each new writer swept the last.
        assert len(temporaries(tmp_path)) == 1
        assert os.path.getsize(tmp_path / temporaries(tmp_path)[0]) > 0
    assert path.read_bytes() == before
    lamina.models.load_model(path)
    small_model().save(path)
    assert temporaries(tmp_path) == []


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    live = tmp_path / f".x.keras.{_host()}.{os.getpid()}.0000.lamina-tmp"
    dead = tmp_path / f".y.keras.{_host()}.{_dead_pid()}.0000.lamina-tmp"
    live.write_bytes(b"in progress")
    dead.write_bytes(b"abandoned")
    small_model().save(tmp_path / "m.keras")
    assert temporaries(tmp_path) == [live.name]


def _host():
    from lamina.saving.file_format import _host_tag

    return _host_tag()


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_mode_open_gives(umask, tmp_path):
    previous = os.umask(umask)
    try:
        with open(tmp_path / "reference", "w"):
            pass
        small_model().save(tmp_path / "m.keras")
        small_model().save_weights(tmp_path / "w.weights.h5")
    finally:
        os.umask(previous)
    expected = stat.S_IMODE(os.stat(tmp_path / "reference").st_mode)
    assert expected == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(tmp_path / "m.keras").st_mode) == expected
    assert stat.S_IMODE(os.stat(tmp_path / "w.weights.h5").st_mode) == expected


def test_an_existing_files_mode_is_kept(tmp_path):
    small_model().save(tmp_path / "m.keras")
    os.chmod(tmp_path / "m.keras", 0o640)
    small_model().save(tmp_path / "m.keras")
    assert stat.S_IMODE(os.stat(tmp_path / "m.keras").st_mode) == 0o640


def test_saving_through_a_symlink_writes_its_target(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "model.keras"
    link = tmp_path / "latest.keras"
    small_model().save(target)
    link.symlink_to(target)
    saved = small_model(units=5)
    saved.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert lamina.models.load_model(target).layers[0].units == 5
    assert temporaries(tmp_path) == [] and temporaries(tmp_path / "store") == []


# --------------------------------------------------------------------------- HDF5 global heaps

_HEAP_LOAD = textwrap.dedent("""
    import sys, lamina
    from lamina.errors import FileFormatError
    model = lamina.Sequential([lamina.layers.Dense(2, input_shape=(3,))])
    try:
        model.load_weights(sys.argv[1]) if sys.argv[1].endswith(".weights.h5") \\
            else lamina.models.load_model(sys.argv[1])
    except FileFormatError as error:
        print("refused:", error)
""")


def _grow_first_heap_object(data: bytes, grow: int) -> bytes:
    """The first global heap object's size field grown by `grow` bytes, as one flipped bit does."""
    start = data.index(b"GCOL") + 16
    size = int.from_bytes(data[start + 8:start + 16], "little")
    return data[:start + 8] + (size + grow).to_bytes(8, "little") + data[start + 16:]


@pytest.mark.parametrize("name, grow", [("m.h5", 8), ("m.h5", -512), ("m.weights.h5", 8)])
def test_a_damaged_global_heap_is_refused_before_hdf5_reads_it(name, grow, tmp_path):
    # HDF5 loops forever, holding the GIL, reading a text attribute whose heap object size is
    # off (found by the fuzz): the file must be refused before h5py reads any text. Run in a
    # child process so that a regression fails on the timeout instead of hanging the suite.
    model = lamina.Sequential([layers.Dense(2, input_shape=(3,))])
    path = tmp_path / name
    model.save_weights(path) if name.endswith(".weights.h5") else model.save(path)
    path.write_bytes(_grow_first_heap_object(path.read_bytes(), grow))
    done = subprocess.run([sys.executable, "-c", _HEAP_LOAD, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(r"refused: .* is damaged: object \d+ of the global heap", done.stdout), \
        done.stdout


def test_a_local_heap_free_list_that_loops_is_refused(tmp_path):
    # A group's link names live in a local heap; a free-list head moved into the names (one
    # flipped bit, found by a random fuzz) made HDF5 loop forever while listing the group.
    model = lamina.Sequential([layers.Dense(2, input_shape=(3,))])
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    data = bytearray(path.read_bytes())
    head = data.index(b"HEAP") + 16          # after signature, version, reserved, data size
    data[head:head + 8] = (8).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    done = subprocess.run([sys.executable, "-c", _HEAP_LOAD, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(r"refused: .* is damaged: .*local heap", done.stdout), done.stdout
