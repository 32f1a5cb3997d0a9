"""The training-state file format, checked against documents written by hand with h5py."""

from __future__ import annotations

import collections
import json

import h5py
import numpy as np
import pytest
import torch

from lamina.errors import FileFormatError
from lamina.saving import state_file

Moments = collections.namedtuple("Moments", ["m", "v"])


def test_document_and_dataset_numbering_are_the_format(tmp_path):
    state = {
        "step": np.int64(3),
        "state": {1: Moments(torch.ones(2), np.zeros(1)), 0: [None, torch.Size([2, 3])]},
        ("a", 1): collections.OrderedDict([("z", 1.5), ("b", True)]),
    }
    state_file.save_state(tmp_path / "s.h5", state)
    # Datasets are numbered in the order they appear in the text; dicts keep insertion order.
    expected = {"__dict__": [
        ["step", 3],
        ["state", {"__dict__": [
            [1, {"__tuple__": [{"__tensor__": 0, "dtype": "float32"}, {"__array__": 1}]}],
            [0, [None, {"__tuple__": [2, 3]}]],
        ]}],
        [{"__tuple__": ["a", 1]}, {"__dict__": [["z", 1.5], ["b", True]]}],
    ]}
    with h5py.File(tmp_path / "s.h5", "r") as h5:
        assert h5.attrs["state"] == json.dumps(expected)
        np.testing.assert_array_equal(h5["arrays/0"][()], np.ones(2, np.float32))
        np.testing.assert_array_equal(h5["arrays/1"][()], np.zeros(1))


def test_a_file_written_by_hand_loads(tmp_path):
    document = {"__dict__": [["lr", 0.5], [7, {"__tuple__": [{"__tensor__": 1, "dtype": "int8"},
                                                               {"__array__": 0}]}]]}
    with h5py.File(tmp_path / "s.h5", "w") as h5:
        h5.attrs["state"] = json.dumps(document)
        h5.create_dataset("arrays/0", data=np.arange(3.0))
        h5.create_dataset("arrays/1", data=np.array([-1, 2], np.int64))
    loaded = state_file.load_state(tmp_path / "s.h5")
    assert loaded["lr"] == 0.5 and isinstance(loaded[7], tuple)
    assert loaded[7][0].dtype == torch.int8 and loaded[7][0].tolist() == [-1, 2]
    np.testing.assert_array_equal(loaded[7][1], np.arange(3.0))


def nested(depth: int):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def test_depth_is_capped_on_save_and_on_load(tmp_path):
    state_file.save_state(tmp_path / "ok.h5", nested(state_file.MAX_STATE_DEPTH))
    assert state_file.load_state(tmp_path / "ok.h5") == nested(state_file.MAX_STATE_DEPTH)
    with pytest.raises(ValueError, match="nests deeper than 100 levels"):
        state_file.save_state(tmp_path / "deep.h5", nested(state_file.MAX_STATE_DEPTH + 1))
    # Valid JSON that json.loads accepts but that would exhaust the stack while decoded.
    with h5py.File(tmp_path / "crafted.h5", "w") as h5:
        h5.attrs["state"] = json.dumps(nested(900))
        h5.create_group("arrays")
    with pytest.raises(FileFormatError, match="nests deeper than 100 levels"):
        state_file.load_state(tmp_path / "crafted.h5")


def test_what_cannot_be_stored_is_named(tmp_path):
    with pytest.raises(TypeError, match=r"Cannot store set .* Received: \{1\}"):
        state_file.save_state(tmp_path / "s.h5", {"seen": {1}})
