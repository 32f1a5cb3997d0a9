"""The restricted unpickler: real CIFAR / IMDB layouts load exactly; hostile pickles are refused fast."""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from lamina.datasets import _download
from lamina.datasets._safe_pickle import MAX_DEPTH, load_npz, loads
from lamina.errors import UnsafePickleError
from lamina.errors import FileFormatError, UnsafeLoadError

from ._layouts import python2_dumps

# --------------------------------------------------------------------------- real layouts


def cifar_batch(count: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {
        "batch_label": "training batch 1 of 5",
        "labels": rng.integers(0, 10, count).tolist(),
        "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        "filenames": [f"image_{i:05d}.png" for i in range(count)],
    }


def assert_same(got, expected) -> None:
    """Deep equality that also compares array dtypes, shapes and contents."""
    if isinstance(expected, np.ndarray):
        assert type(got) is np.ndarray and got.dtype == expected.dtype and got.shape == expected.shape
        if expected.dtype == object:
            for a, b in zip(got.ravel(), expected.ravel()):
                assert_same(a, b)
        else:
            np.testing.assert_array_equal(got, expected)
            assert got.flags.writeable
    elif isinstance(expected, dict):
        assert type(got) is dict and list(got) == list(expected)
        for key in expected:
            assert_same(got[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert type(got) is type(expected) and len(got) == len(expected)
        for a, b in zip(got, expected):
            assert_same(a, b)
    else:
        assert type(got) is type(expected) and got == expected


def test_a_python2_cifar_batch_loads_as_the_standard_unpickler_reads_it():
    batch = cifar_batch(20, seed=0)
    blob = python2_dumps(batch)
    # The real files' markers: Python 2 strings and NumPy 1's module name.
    assert blob.startswith(b"\x80\x02}") and b"U\x04data" in b"".join(blob.split(b"q"))
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in blob and b"U\x02u1" in blob
    got = loads(blob, encoding="bytes")
    assert_same(got, pickle.loads(blob, encoding="bytes"))  # trusted test data: stdlib as oracle
    np.testing.assert_array_equal(got[b"data"], batch["data"])
    assert got[b"labels"] == batch["labels"]
    assert got[b"filenames"][3] == b"image_00003.png"


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_pickle_dumps_of_a_dict_of_arrays_loads_exactly(protocol):
    rng = np.random.default_rng(protocol)
    ragged = np.empty(3, dtype=object)
    ragged[:] = [[1, 2, 300], [70_000], []]
    same_length = np.empty(2, dtype=object)
    same_length[0], same_length[1] = [1, 2], [3, 4]  # must stay a 1-D array of lists
    arrays = {
        "u1": rng.integers(0, 256, (4, 3, 2), dtype=np.uint8),
        "big_endian": np.arange(6, dtype=">i8").reshape(2, 3),
        "fortran": np.asfortranarray(rng.random((3, 4)).astype(np.float32)),
        "f2": np.arange(5, dtype=np.float16),
        "complex": np.array([1 + 2j, -3j]),
        "bool": np.array([True, False]),
        "bytes": np.array([b"ab", b"c"]),
        "text": np.array(["héllo", "x"]),
        "empty": np.zeros((0, 3), np.int32),
        "zero_d": np.array(3.5),
        "ragged": ragged,
        "same_length": same_length,
    }
    blob = pickle.dumps({"arrays": arrays, "labels": [1, 2, 3], "name": "x", "raw": b"\0\xff", "t": (1, 2.5, None)}, protocol=protocol)
    for encoding in ("ASCII", "latin1", "bytes"):
        got = loads(blob, encoding=encoding)
        assert_same(got, pickle.loads(blob, encoding=encoding))
        for name, array in arrays.items():
            assert_same(got["arrays"][name], array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("=")))
    assert got["arrays"]["fortran"].flags.f_contiguous


def reviews(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    array = np.empty(count, dtype=object)
    for i in range(count):
        array[i] = (rng.zipf(1.3, rng.integers(1, 60)) % 90_000).tolist()
    return array


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_an_imdb_style_npz_loads_as_numpy_reads_it(tmp_path, save):
    path = str(tmp_path / "imdb.npz")
    written = {"x_train": reviews(300, 0), "y_train": np.arange(300) % 2, "x_test": reviews(5, 1), "y_test": np.ones(5, np.int64)}
    save(path, **written)
    got = load_npz(path)
    with np.load(path, allow_pickle=True) as reference:  # trusted test data: NumPy as oracle
        assert sorted(got) == sorted(reference.files)
        for name in reference.files:
            assert_same(got[name], reference[name])
    for name, array in written.items():
        assert_same(got[name], array)


# --------------------------------------------------------------------------- hostile pickles


def assert_refused(blob: bytes, match: str, encoding: str = "ASCII") -> None:
    """Refused with UnsafePickleError within 2 s of CPU time (wall time on a shared machine is
    noise) without allocating much."""
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(UnsafePickleError, match=match):
            loads(blob, encoding=encoding)
        elapsed = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2, f"took {elapsed:.2f} s"
    assert peak < 3 * len(blob) + (16 << 20), f"peak memory {peak} bytes"


class Gadget:
    def __init__(self, function, *args):
        self.call = (function, args)

    def __reduce__(self):
        return self.call


def uint(value: int) -> bytes:
    """LONG1: any non-negative int."""
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little")
    return b"\x8a" + bytes([len(raw)]) + raw


def text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


RECONSTRUCT = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"


def dtype(code: str, state: bytes | None = None) -> bytes:
    state = state if state is not None else b"(K\x03" + text("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    return b"cnumpy\ndtype\n" + text(code) + b"\x89\x88\x87R" + state + b"b"


def array(shape: tuple[int, ...], dtype_ops: bytes, data_ops: bytes) -> bytes:
    """An ndarray as NumPy pickles it: _reconstruct(...) then BUILD (1, shape, dtype, False, data)."""
    shape_ops = b"(" + b"".join(uint(size) for size in shape) + b"t"
    return RECONSTRUCT + b"(K\x01" + shape_ops + dtype_ops + b"\x89" + data_ops + b"tb"


def bytes_op(raw: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(raw)) + raw


def test_the_hand_assembled_array_matches_numpy():
    # Checks the assembler the hostile rows below rely on, against the standard unpickler.
    blob = b"\x80\x03" + array((3,), dtype("u1"), bytes_op(b"abc")) + b"."
    np.testing.assert_array_equal(pickle.loads(blob), [97, 98, 99])
    assert_same(loads(blob), pickle.loads(blob))


def test_code_execution_gadgets_are_refused_and_nothing_runs(tmp_path):
    canary = tmp_path / "canary"
    gadgets = [
        Gadget(os.system, f"touch {canary}"),
        Gadget(eval, f"open({str(canary)!r}, 'w')"),
        Gadget(__import__, "os"),
        Gadget(np.save, str(canary), np.zeros(1)),
    ]
    for gadget in gadgets:
        for protocol in range(6):
            assert_refused(pickle.dumps(gadget, protocol=protocol), "refers to `|opcode")
            nested = pickle.dumps({b"data": gadget, b"labels": [0]}, protocol=protocol)
            assert_refused(nested, "refers to `|opcode")
    assert not canary.exists()


HOSTILE = {
    # Calls that allocate what the file asks for.
    "ndarray-called": (b"\x80\x02cnumpy\nndarray\n" + uint(2**33) + b"\x85\x85R.", "`numpy.ndarray` may only be called|calls `numpy.ndarray`"),
    "array-claims-8-GiB": (b"\x80\x03" + array((2**33,), dtype("u1"), bytes_op(b"")) + b".", "claims 8589934592 bytes but holds 0"),
    "array-claims-more-rows": (b"\x80\x03" + array((2, 3), dtype("u1"), bytes_op(b"abc")) + b".", "claims 6 bytes but holds 3"),
    "object-array-claims-items": (b"\x80\x03" + array((2**40,), dtype("O8", b"(K\x03" + text("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t"), b"]") + b".", "claims 1099511627776 items but holds 0"),
    "shell-never-built": (b"\x80\x02" + RECONSTRUCT + b".", "used before its state was set"),
    "reconstruct-other-class": (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85C\x01b\x87R.", "other than \\(numpy.ndarray"),
    # _codecs.encode: only latin1, and only as much as the file can hold.
    "encode-punycode": (b"\x80\x02c_codecs\nencode\n" + text("a" * 20_000) + text("punycode") + b"\x86R.", "something other than \\(text, 'latin1'\\)"),
    "encode-zlib": (b"\x80\x02c_codecs\nencode\n" + text("a") + text("zlib_codec") + b"\x86R.", "something other than"),
    "encode-repeated": (
        b"\x80\x02c_codecs\nencode\nq\x00" + text("a" * (1 << 20)) + b"q\x01" + text("latin1") + b"q\x02("
        + b"h\x00h\x01h\x02\x86R" * 2000 + b"l.",
        "more data than a",
    ),
    # Nesting and cycles.
    "nested-lists": (b"\x80\x02" + b"]" * 20_000 + b"a" * 19_999 + b".", f"deeper than {MAX_DEPTH} levels"),
    "nested-tuples": (b"\x80\x02)" + b"\x85" * 20_000 + b".", f"deeper than {MAX_DEPTH} levels"),
    "nested-dicts": (b"\x80\x02" + b"}K\x00" * 20_000 + b"}" + b"s" * 20_000 + b".", f"deeper than {MAX_DEPTH} levels"),
    "nested-marks": (b"\x80\x02" + b"(" * 20_000 + b".", f"MARKs nest deeper than {MAX_DEPTH}"),
    "self-containing-list": (b"\x80\x02]q\x00h\x00a.", "contain itself"),
    "cycle-through-a-child": (b"\x80\x02]q\x00]q\x01h\x00a0h\x00h\x01a.", "changes a container after storing it"),
    # BUILD only sets a new array's or dtype's state.
    "build-on-dict": (b"\x80\x02}}b.", "BUILD sets the state of something"),
    "build-on-list": (b"\x80\x02]}b.", "BUILD sets the state of something"),
    "build-on-global": (b"\x80\x02cnumpy\nndarray\n}b.", "BUILD sets the state of something"),
    "build-twice": (b"\x80\x03" + array((1,), dtype("u1"), bytes_op(b"a")) + b"}b.", "BUILD sets the state of something"),
    "array-data-beyond-latin1": (b"\x80\x03" + array((1,), dtype("u1"), text("\u0400")) + b".", "text beyond latin1"),
    "array-state-not-data": (b"\x80\x03" + RECONSTRUCT + b"}b.", "array's state is not"),
    # Dtypes: plain codes only, never a state that describes structure.
    "dtype-structured-code": (b"\x80\x03" + dtype("i8,i8") + b".", "not a plain number"),
    "dtype-datetime": (b"\x80\x03" + dtype("M8") + b".", "not a plain number"),
    "dtype-void": (b"\x80\x03" + dtype("V8") + b".", "not a plain number"),
    "dtype-with-fields": (b"\x80\x03" + dtype("u1", b"(K\x03" + text("|") + b"N(" + text("a") + b"t}J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t") + b".", "structured"),
    "dtype-as-data": (b"\x80\x02]cnumpy\ndtype\na.", "may only be called"),
    # Other globals and every opcode that builds objects.
    "stack-global-eval": (b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.", "refers to `builtins.eval`"),
    "numpy-runstring": (b"\x80\x02cnumpy.testing._private.utils\nrunstring\n.", "refers to `numpy.testing"),
    "INST": (b"(inumpy\nndarray\n.", "opcode INST"),
    "OBJ": (b"\x80\x02(cnumpy\nndarray\no.", "opcode OBJ"),
    "NEWOBJ": (b"\x80\x02cnumpy\nndarray\n)\x81.", "opcode NEWOBJ"),
    "NEWOBJ_EX": (b"\x80\x04cnumpy\nndarray\n)}\x92.", "opcode NEWOBJ_EX"),
    "EXT1": (b"\x80\x02\x82\x01.", "opcode EXT1"),
    "EXT2": (b"\x80\x02\x83\x01\x00.", "opcode EXT2"),
    "EXT4": (b"\x80\x02\x84\x01\x00\x00\x00.", "opcode EXT4"),
    "PERSID": (b"P0\n.", "opcode PERSID"),
    "BINPERSID": (b"\x80\x02K\x00Q.", "opcode BINPERSID"),
    "EMPTY_SET": (b"\x80\x04\x8f.", "opcode EMPTY_SET"),
    "BYTEARRAY8": (b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b".", "opcode BYTEARRAY8"),
    "NEXT_BUFFER": (b"\x80\x05\x97.", "opcode NEXT_BUFFER"),
    "text-INT": (b"I1\n.", "opcode INT"),
    "unknown-opcode": (b"\x80\x02\xff.", "no pickle opcode"),
    # Lengths and sizes that ask for more than the file holds.
    "bytes8-length-2**62": (b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b".", "truncated"),
    "unicode-length-4GiB": (b"\x80\x02X\xff\xff\xff\xff.", "truncated"),
    "huge-integer": (b"\x80\x02\x8b" + struct.pack("<i", 1 << 20) + b"\x01" * (1 << 20) + b".", "1048576-byte integer"),
    "missing-memo": (b"\x80\x02j\xff\xff\xff\x00.", "memo entry 16777215"),
    "no-stop": (b"\x80\x02]", "truncated"),
}


@pytest.mark.parametrize("blob, match", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_pickles_are_refused_quickly_with_little_memory(blob, match):
    assert_refused(blob, match)


def test_the_error_is_a_value_error_and_an_unpickling_error():
    with pytest.raises(ValueError) as caught:
        loads(b"\x80\x02cos\nsystem\n.")
    assert isinstance(caught.value, (UnsafeLoadError, pickle.UnpicklingError))
    assert "delete it so it is downloaded again" in str(caught.value)


def test_a_huge_memo_index_allocates_nothing():
    # The standard unpickler grows its memo table to the index: 2**32 entries here.
    tracemalloc.start()
    try:
        assert loads(b"\x80\x02]r\xff\xff\xff\xffj\xff\xff\xff\xff\x86.") == ([], [])
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 1 << 20


def test_nesting_up_to_the_limit_loads():
    depth = MAX_DEPTH
    blob = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
    got = loads(blob)
    assert got == pickle.loads(blob)
    with pytest.raises(UnsafePickleError, match="deeper"):
        loads(b"\x80\x02" + b"]" * (depth + 1) + b"a" * depth + b".")


def test_dtype_flags_from_the_file_are_never_applied():
    # Flags 63 would tell NumPy a uint8 array holds object pointers; the loader rebuilds the
    # dtype from its code, so the bytes stay bytes.
    lying = dtype("u1", b"(K\x03" + text("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t")
    got = loads(b"\x80\x03" + array((3,), lying, bytes_op(b"\x01\x02\x03")) + b".")
    assert got.dtype == np.uint8 and got.tolist() == [1, 2, 3]


# --------------------------------------------------------------------------- damaged real files


def real_blobs() -> dict[str, tuple[bytes, str]]:
    buffer = io.BytesIO()
    np.save(buffer, reviews(40, 2))
    raw = buffer.getvalue()
    return {
        "cifar-python2": (python2_dumps(cifar_batch(4, 1)), "bytes"),
        "cifar-protocol2": (pickle.dumps({b"data": cifar_batch(4, 1)["data"], b"labels": [1, 2, 3, 4]}, protocol=2), "bytes"),
        "npy-object-array": (raw[raw.index(b"\n") + 1 :], "latin1"),
    }


@pytest.mark.parametrize("name", ["cifar-python2", "cifar-protocol2", "npy-object-array"])
def test_truncated_and_mutated_real_pickles_raise_only_the_refusal(name):
    blob, encoding = real_blobs()[name]
    for cut in range(0, len(blob) - 1, max(1, len(blob) // 300)):
        with pytest.raises(UnsafePickleError):
            loads(blob[:cut], encoding=encoding)
    rng = np.random.default_rng(7)
    start = time.process_time()
    for _ in range(300):
        mutated = bytearray(blob)
        for position in rng.integers(0, len(blob), rng.integers(1, 4)):
            mutated[position] = rng.integers(0, 256)
        try:
            loads(bytes(mutated), encoding=encoding)
        except UnsafePickleError:
            pass
    assert time.process_time() - start < 20


# --------------------------------------------------------------------------- hostile .npz files


def npz_with(member: bytes, name: str = "x.npy", compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        archive.writestr(name, member)
    return buffer.getvalue()


def npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_an_npy_header_claiming_more_than_the_member_holds_is_refused(tmp_path):
    path = tmp_path / "lie.npz"
    path.write_bytes(npz_with(npy_header("|u1", (2**31, 4)) + b"\x00" * 10))
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=r"\(8589934592 bytes\) but holds 10 bytes"):
            load_npz(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_an_object_npy_whose_pickle_is_not_that_array_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    path.write_bytes(npz_with(npy_header("|O", (2,)) + pickle.dumps({"not": "an array"}, protocol=3)))
    with pytest.raises(UnsafePickleError, match="declares a object array of shape \\(2,\\) but its pickle holds dict"):
        load_npz(str(path))


def test_an_npz_bomb_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(_download, "MIN_EXPANSION_BYTES", 1 << 20)
    zeros = npy_header("|u1", (8 << 20,)) + b"\0" * (8 << 20)
    path = tmp_path / "bomb.npz"
    path.write_bytes(npz_with(zeros, compression=zipfile.ZIP_DEFLATED))
    with pytest.raises(_download.UnsafeArchiveError, match="decompression bomb"):
        load_npz(str(path))


def test_a_file_that_is_not_an_npz_names_the_fix(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(FileFormatError, match="not a readable .npz file.*delete it"):
        load_npz(str(path))
