"""Loading a missing, truncated or foreign file raises FileNotFoundError or FileFormatError with a
message that says what is wrong, never a bare h5py or zipfile error; weights saved from another
architecture are refused (or skipped on request) layer by layer."""

from __future__ import annotations

import re
import zipfile

import h5py
import numpy as np
import pytest

import lamina
from lamina import layers
from lamina.errors import FileFormatError
from lamina.saving.file_format import open_h5
from tests.saving.files import save_each_kind, small_model


@pytest.fixture
def saved(tmp_path):
    """A real file of each kind, written by the library."""
    return save_each_kind(tmp_path)


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def load_model(path):
    return lamina.models.load_model(path)


def load_weights(path):
    return small_model().load_weights(path)


@pytest.mark.parametrize("load", [load_model, load_weights], ids=["load_model", "load_weights"])
@pytest.mark.parametrize("name", ["nothing.keras", "nothing.h5", "nothing.weights.h5"])
def test_missing_file(load, name, tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / name))):
        load(tmp_path / name)


@pytest.mark.parametrize("load, name, message", [
    (load_model, "model.keras", "is not a valid .keras file (not a complete zip archive: it may be truncated"),
    (load_model, "model.h5", "is truncated: it holds"),
    (load_weights, "model.weights.h5", "is truncated: it holds"),
    (load_weights, "model.keras", "is not a valid .keras file"),
])
def test_truncated_file(load, name, message, saved):
    path = truncate(saved / name)
    with pytest.raises(FileFormatError, match=re.escape(message)) as error:
        load(path)
    assert str(path) in str(error.value)


def heap_cuts(data):
    """Lengths that cut through each local and global heap, and the file's last byte."""
    starts = [m.start() for m in re.finditer(b"HEAP|GCOL", data)]
    return sorted({*(start + 24 for start in starts), len(data) - 1})


@pytest.mark.parametrize("load, name", [(load_model, "model.h5"),
                                        (load_weights, "model.weights.h5")])
def test_a_cut_anywhere_is_reported_as_truncation(load, name, saved):
    # Which message a truncated file got used to depend on where the cut fell: through a heap
    # it was "damaged heap", elsewhere "truncated". Each cut below goes through a heap.
    data = (saved / name).read_bytes()
    cuts = heap_cuts(data)
    assert len(cuts) >= 4
    for cut in cuts:
        (saved / name).write_bytes(data[:cut])
        with pytest.raises(FileFormatError, match=re.escape(
                f"is truncated: it holds {cut:,} of the {len(data):,} bytes its HDF5 header "
                "records (it may still be being written, or was cut short in a copy or "
                "download)")):
            load(saved / name)


@pytest.mark.parametrize("libver", ["earliest", "v108", "latest"])  # superblocks 0, 2 and 3
def test_truncation_agrees_with_hdf5_for_every_superblock(tmp_path, libver):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w", libver=libver) as h5:
        h5.create_dataset("x", data=np.arange(500.0))
    data = path.read_bytes()
    open_h5(path, "read it").close()
    path.write_bytes(data[:-1])
    with pytest.raises(OSError, match="truncated file"):  # the HDF5 library's own verdict
        h5py.File(path, "r")
    with pytest.raises(FileFormatError, match=f"is truncated: it holds {len(data) - 1:,} of "
                                              f"the {len(data):,} bytes"):
        open_h5(path, "read it")


@pytest.mark.parametrize("load, name, message", [
    (load_model, "notes.keras", "is not a valid .keras file"),
    (load_model, "notes.h5", "is not a readable HDF5 file"),
    (load_model, "notes.txt", "is not a readable HDF5 file"),
    (load_weights, "notes.weights.h5", "is not a readable HDF5 file"),
])
def test_text_file(load, name, message, tmp_path):
    path = tmp_path / name
    path.write_text("model = 'not really'\n")
    with pytest.raises(FileFormatError, match=re.escape(message)):
        load(path)


@pytest.mark.parametrize("entries, message", [
    ({"readme.txt": "hello"}, "is a zip archive but not a .keras model: it lacks ['config.json', 'model.weights.h5']"),
    ({"config.json": "{not json", "model.weights.h5": ""}, "has a model config that is not valid JSON"),
    ({"config.json": "[1, 2]", "model.weights.h5": ""}, "has no model description in its config"),
])
def test_foreign_zip(entries, message, tmp_path):
    path = tmp_path / "foreign.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    with pytest.raises(FileFormatError, match=re.escape(message)):
        load_model(path)


def test_keras_archive_with_damaged_weights(saved):
    with zipfile.ZipFile(saved / "model.keras") as archive:
        config = archive.read("config.json")
    damaged = saved / "damaged.keras"
    with zipfile.ZipFile(damaged, "w") as archive:
        archive.writestr("config.json", config)
        archive.writestr("model.weights.h5", b"\x89HDF garbage")
    with pytest.raises(FileFormatError, match="The weights inside .* are not a readable HDF5 file"):
        load_model(damaged)


def test_foreign_hdf5(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images", data=np.zeros((2, 2)))
    with pytest.raises(FileFormatError, match="is an HDF5 file but not a Lamina/Keras model"):
        load_model(path)
    with pytest.raises(FileFormatError, match="is an HDF5 file but holds no Lamina/Keras weights"):
        load_weights(path)


def test_weights_file_given_to_load_model(saved):
    with pytest.raises(FileFormatError, match=r"holds no model architecture \(no `model_config`\): it is a weights file. Build the model in code and call model.load_weights\(path\)"):
        load_model(saved / "model.weights.h5")


def test_model_h5_without_weights(tmp_path):
    path = tmp_path / "config_only.h5"
    model = small_model()
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = model.to_json()
    with pytest.raises(FileFormatError, match="has no `model_weights` group: it holds no weights"):
        load_model(path)


def test_weights_of_another_architecture(saved):
    wider = small_model(units=5)
    with pytest.raises(ValueError, match=re.escape("Layer 'dense' weight 'kernel' has shape (3, 5) in the model but (3, 4) in the file. Pass skip_mismatch=True to skip it.")):
        wider.load_weights(saved / "model.weights.h5")
    deeper = lamina.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2),
                                layers.Dense(1)])
    with pytest.raises(ValueError, match=r"Layer 'dense_2' \(Dense\) has no weights in the file"):
        deeper.load_weights(saved / "model.weights.h5")


def test_skip_mismatch_loads_what_matches(saved):
    reference = small_model()
    reference.load_weights(saved / "model.weights.h5")
    wider_head = lamina.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(3)])
    with pytest.warns(UserWarning, match=r"Layer 'dense_1' weight '(kernel|bias)' has shape .* Skipping it."):
        wider_head.load_weights(saved / "model.weights.h5", skip_mismatch=True)
    np.testing.assert_array_equal(wider_head.layers[0].get_weights()[0],
                                  reference.layers[0].get_weights()[0])


def test_errors_are_value_errors_for_keras_style_handlers(saved):
    # FileFormatError subclasses ValueError, which Keras code catches.
    with pytest.raises(ValueError):
        load_model(truncate(saved / "model.keras"))
