"""A file of a Lamina format newer than this code knows is refused, before anything in it is
read, by every loader; the versions it knows and files without one (Keras's own, Lamina's
older ones) keep loading. The files are real ones written by the library, then edited as a
newer Lamina would mark them."""

from __future__ import annotations

import json
import re
import zipfile

import h5py
import numpy as np
import pytest
import torch

import lamina
from lamina.applications import load_weights_by_name
from lamina.errors import FileFormatError
from lamina.saving import state_file
from tests.saving.files import save_each_kind, small_model


def set_version(path, version, config=None):
    """Mark a saved file with `version` (None: remove the mark), as a newer writer would."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        metadata = json.loads(members["metadata.json"])
        if version is None:
            metadata.pop("format_version")
        else:
            metadata["format_version"] = version
        members["metadata.json"] = json.dumps(metadata).encode()
        if config is not None:
            members["config.json"] = config
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    else:
        with h5py.File(path, "r+") as h5:
            if version is None:
                del h5.attrs["format_version"]
            else:
                h5.attrs["format_version"] = version
            if config is not None:
                h5.attrs["model_config"] = config
    return path


def weights(model):
    return [w.copy() for w in model.get_weights()]


@pytest.fixture
def saved(tmp_path):
    return save_each_kind(tmp_path)


LOADERS = {
    "load_model": lambda path, model: lamina.models.load_model(path),
    "load_weights": lambda path, model: model.load_weights(path),
    "load_weights_by_name": lambda path, model: load_weights_by_name(model, path),
}
CASES = [("load_model", "model.keras"), ("load_model", "model.h5"),
         ("load_weights", "model.keras"), ("load_weights", "model.h5"),
         ("load_weights", "model.weights.h5"), ("load_weights_by_name", "model.weights.h5")]


def refusal(found, known="'1', '2'"):
    return (rf"has format_version {re.escape(found)}, written by Lamina '{lamina.__version__}', "
            rf"which this Lamina \({lamina.__version__}\) does not know: it reads format "
            rf"versions {known}\. .* Upgrade Lamina \(pip install --upgrade lamina\) to load it\.")


@pytest.mark.parametrize("loader, name", CASES)
def test_a_newer_format_is_refused_and_the_model_is_unchanged(saved, loader, name):
    path = set_version(saved / name, "3")
    model = small_model()
    before = weights(model)
    with pytest.raises(FileFormatError, match=refusal("'3'")) as error:
        LOADERS[loader](path, model)
    assert str(path) in str(error.value)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("name", ["model.keras", "model.h5"])
def test_the_version_is_checked_before_the_config(saved, name):
    # A newer format may change the config too: the user is told to upgrade, not that the file
    # is damaged.
    path = set_version(saved / name, "3", config=b'{"class_name": "Sequential", "future":')
    with pytest.raises(FileFormatError, match=refusal("'3'")):
        lamina.models.load_model(path)


@pytest.mark.parametrize("version, found", [(3, "3"), ("2.0", "'2.0'"), (["2"], "['2']"),
                                            ("9" * 80, "'" + "9" * 36 + "...")])
def test_a_version_that_is_not_one_of_the_known_strings_is_refused(saved, version, found):
    path = set_version(saved / "model.keras", version)
    with pytest.raises(FileFormatError, match=refusal(found)):
        lamina.models.load_model(path)


@pytest.mark.parametrize("loader, name", CASES)
@pytest.mark.parametrize("version", ["1", "2", None])
def test_known_versions_and_unversioned_files_load(saved, loader, name, version):
    # Format 1's insertion order and format 2's sorted order agree for a Sequential, so each
    # mark loads the same weights; which order each version means is tests/models/test_dict_order.
    original = lamina.models.load_model(saved / "model.keras")
    path = set_version(saved / name, version)
    model = small_model()
    loaded = LOADERS[loader](path, model) or model
    for expected, received in zip(original.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(expected, received)


def test_training_state_files_carry_and_check_their_own_version(tmp_path):
    state = {"step": 7, "moments": torch.arange(6.0).reshape(2, 3)}
    path = tmp_path / "state.h5"
    state_file.save_state(path, state)
    with h5py.File(path) as h5:
        assert h5.attrs["format_version"] == state_file.STATE_FORMAT_VERSION == "1"
    set_version(path, None)  # as written before versions were recorded: still read
    assert torch.equal(state_file.load_state(path)["moments"], state["moments"])
    set_version(path, "2")
    with pytest.raises(FileFormatError, match=r"has format_version '2', which this Lamina .* "
                       r"reads format versions '1'\. .*pip install --upgrade lamina"):
        state_file.load_state(path)
