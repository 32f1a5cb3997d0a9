"""The `load_data()` of each data set, on small files in the real formats served from loopback."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest

from lamina import config
from lamina.datasets import cifar10, cifar100, digits, fashion_mnist, imdb, mnist

from ._layouts import python2_dumps


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def serve(file_server, monkeypatch, module, name: str, data: bytes, hash_attribute: str = "FILE_HASH") -> None:
    """Serve `data` as `name` and point `module`'s origin and pinned hash at it."""
    file_server.files[name] = data
    if hasattr(module, "ORIGIN_FOLDER"):
        monkeypatch.setattr(module, "ORIGIN_FOLDER", file_server.url(""))
    else:
        monkeypatch.setattr(module, "ORIGIN", file_server.url(name))
    if isinstance(getattr(module, hash_attribute), dict):
        monkeypatch.setitem(getattr(module, hash_attribute), name, sha256(data))
    else:
        monkeypatch.setattr(module, hash_attribute, sha256(data))


# --------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_and_range():
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert x_train.shape == (1438, 8, 8, 1) and x_test.shape == (359, 8, 8, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert set(np.unique(np.concatenate([y_train, y_test]))) == set(range(10))


def test_digits_is_the_sklearn_data_shuffled_by_seed():
    from sklearn.datasets import load_digits

    reference = load_digits()
    (x_train, y_train), (x_test, y_test) = digits.load_data(test_split=0.25, seed=7)
    order = np.random.RandomState(7).permutation(1797)
    images = np.concatenate([x_train, x_test])[..., 0] * 16
    np.testing.assert_array_equal(images, reference.images[order])
    np.testing.assert_array_equal(np.concatenate([y_train, y_test]), reference.target[order])
    assert len(x_test) == int(1797 * 0.25)
    (again, _), _ = digits.load_data(test_split=0.25, seed=7)
    np.testing.assert_array_equal(again, x_train)


def test_digits_test_split_zero_keeps_everything_for_training():
    (x_train, _), (x_test, _) = digits.load_data(test_split=0.0)
    assert len(x_train) == 1797 and len(x_test) == 0


@pytest.mark.parametrize("test_split", [1.0, -0.1, "0.2", True])
def test_digits_rejects_bad_test_split(test_split):
    with pytest.raises(ValueError, match=r"`test_split` must be a fraction in \[0, 1\)"):
        digits.load_data(test_split=test_split)


# --------------------------------------------------------------------------- mnist


def test_mnist_downloads_verifies_and_loads(file_server, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "y_train": np.arange(6, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "y_test": np.array([7, 9], dtype=np.uint8),
    }
    serve(file_server, monkeypatch, mnist, "mnist.npz", npz_bytes(**arrays))
    (x_train, y_train), (x_test, y_test) = mnist.load_data(cache_dir=tmp_path)
    for name, array in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        np.testing.assert_array_equal(array, arrays[name])
        assert array.dtype == np.uint8
    assert os.path.isfile(tmp_path / "datasets" / "mnist.npz")
    mnist.load_data(cache_dir=tmp_path)  # from the cache
    assert len(file_server.requests) == 1


def test_mnist_without_network_says_where_to_put_the_file(dead_url, tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "ORIGIN_FOLDER", dead_url.rsplit("/", 1)[0] + "/")
    with pytest.raises(ConnectionError, match="copy it to .*mnist.npz"):
        mnist.load_data(cache_dir=tmp_path)


def test_mnist_uses_lamina_data_dir(file_server, tmp_path, monkeypatch):
    serve(file_server, monkeypatch, mnist, "mnist.npz", npz_bytes(
        x_train=np.zeros((1, 28, 28), np.uint8), y_train=np.zeros(1, np.uint8),
        x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8),
    ))
    monkeypatch.setenv("LAMINA_DATA_DIR", str(tmp_path / "data"))
    mnist.load_data()
    assert os.path.isfile(tmp_path / "data" / "mnist.npz")


# --------------------------------------------------------------------------- fashion-mnist


def idx_gz(array: np.ndarray) -> bytes:
    # IDX: magic (0, 0, dtype 0x08 = uint8, ndim) then big-endian int32 dims, then the bytes.
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.tobytes())


def test_fashion_mnist_reads_idx_files(file_server, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    files = {
        "train-labels-idx1-ubyte.gz": idx_gz(np.array([1, 2, 3], np.uint8)),
        "train-images-idx3-ubyte.gz": idx_gz(x_train),
        "t10k-labels-idx1-ubyte.gz": idx_gz(np.array([9, 0], np.uint8)),
        "t10k-images-idx3-ubyte.gz": idx_gz(x_test),
    }
    for name, data in files.items():
        serve(file_server, monkeypatch, fashion_mnist, name, data, hash_attribute="FILE_HASHES")
    (xa, ya), (xb, yb) = fashion_mnist.load_data(cache_dir=tmp_path)
    np.testing.assert_array_equal(xa, x_train)
    np.testing.assert_array_equal(ya, [1, 2, 3])
    np.testing.assert_array_equal(xb, x_test)
    np.testing.assert_array_equal(yb, [9, 0])
    assert os.path.isdir(tmp_path / "datasets" / "fashion-mnist")


# --------------------------------------------------------------------------- cifar


def cifar_batch(images: np.ndarray, labels: dict[str, list[int]]) -> bytes:
    """A batch pickled the way the CIFAR files are: protocol 2, bytes keys, flat uint8 rows."""
    batch = {b"data": images.reshape(len(images), -1), b"batch_label": b"test batch"}
    batch.update({key.encode(): value for key, value in labels.items()})
    return pickle.dumps(batch, protocol=2)


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def cifar_images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)


def test_cifar10_extracts_batches_and_returns_channels_last(file_server, tmp_path, monkeypatch):
    train = [cifar_images(2, seed) for seed in range(5)]
    test = cifar_images(3, 9)
    members = {
        f"cifar-10-batches-py/data_batch_{i + 1}": cifar_batch(images, {"labels": [i, i + 1]})
        for i, images in enumerate(train)
    }
    members["cifar-10-batches-py/test_batch"] = cifar_batch(test, {"labels": [7, 8, 9]})
    serve(file_server, monkeypatch, cifar10, "cifar-10-python.tar.gz", tar_gz(members))
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(cache_dir=tmp_path)
    assert x_train.shape == (10, 32, 32, 3) and x_test.shape == (3, 32, 32, 3)
    assert y_train.shape == (10, 1) and y_train.dtype == np.uint8 and x_train.dtype == np.uint8
    # Pixel (row 5, column 7) of channel 2 of the third training image:
    assert x_train[2, 5, 7, 2] == train[1][0, 2, 5, 7]
    np.testing.assert_array_equal(y_train[:, 0], [0, 1, 1, 2, 2, 3, 3, 4, 4, 5])
    np.testing.assert_array_equal(y_test[:, 0], [7, 8, 9])


def test_cifar10_channels_first_follows_the_config(file_server, tmp_path, monkeypatch):
    members = {f"cifar-10-batches-py/data_batch_{i}": cifar_batch(cifar_images(1, i), {"labels": [0]}) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = cifar_batch(cifar_images(1, 0), {"labels": [0]})
    serve(file_server, monkeypatch, cifar10, "cifar-10-python.tar.gz", tar_gz(members))
    monkeypatch.setattr(config, "_IMAGE_DATA_FORMAT", "channels_first")
    (x_train, _), _ = cifar10.load_data(cache_dir=tmp_path)
    assert x_train.shape == (5, 3, 32, 32)


@pytest.mark.parametrize("label_mode, expected_train", [("fine", [11, 42]), ("coarse", [1, 4])])
def test_cifar100_label_modes(file_server, tmp_path, monkeypatch, label_mode, expected_train):
    members = {
        "cifar-100-python/train": cifar_batch(cifar_images(2, 0), {"fine_labels": [11, 42], "coarse_labels": [1, 4]}),
        "cifar-100-python/test": cifar_batch(cifar_images(1, 1), {"fine_labels": [99], "coarse_labels": [19]}),
    }
    serve(file_server, monkeypatch, cifar100, "cifar-100-python.tar.gz", tar_gz(members))
    (x_train, y_train), (x_test, y_test) = cifar100.load_data(label_mode, cache_dir=tmp_path)
    assert x_train.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(y_train[:, 0], expected_train)
    assert y_test.shape == (1, 1)


def test_cifar100_reads_batches_in_the_python2_layout_of_the_real_files(file_server, tmp_path, monkeypatch):
    def batch(images: np.ndarray, fine: list[int], coarse: list[int], label: str) -> bytes:
        return python2_dumps({
            "filenames": [f"img_{i}.png" for i in range(len(images))], "batch_label": label,
            "fine_labels": fine, "coarse_labels": coarse, "data": images.reshape(len(images), -1),
        })

    train, test = cifar_images(3, 5), cifar_images(2, 6)
    members = {
        "cifar-100-python/train": batch(train, [5, 99, 0], [1, 19, 0], "training batch 1 of 1"),
        "cifar-100-python/test": batch(test, [7, 8], [2, 3], "testing batch 1 of 1"),
    }
    serve(file_server, monkeypatch, cifar100, "cifar-100-python.tar.gz", tar_gz(members))
    (x_train, y_train), (x_test, y_test) = cifar100.load_data("fine", cache_dir=tmp_path)
    np.testing.assert_array_equal(x_train, train.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(x_test, test.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y_train[:, 0], [5, 99, 0])
    (_, y_train), _ = cifar100.load_data("coarse", cache_dir=tmp_path)
    np.testing.assert_array_equal(y_train[:, 0], [1, 19, 0])


def test_cifar100_rejects_unknown_label_mode():
    with pytest.raises(ValueError, match="`label_mode` must be 'fine' or 'coarse'. Received: label_mode='medium'"):
        cifar100.load_data("medium")


class _Gadget:
    """What a tampered pickle would smuggle in: a callable run at load time."""

    def __reduce__(self):
        return (os.makedirs, ("SHOULD-NOT-EXIST",))


def test_a_tampered_cifar_batch_is_refused_without_running_code(file_server, tmp_path, monkeypatch):
    evil = pickle.dumps({b"data": _Gadget(), b"labels": [0]}, protocol=2)
    members = {f"cifar-10-batches-py/data_batch_{i}": evil for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = evil
    serve(file_server, monkeypatch, cifar10, "cifar-10-python.tar.gz", tar_gz(members))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="refers to `os.makedirs`"):
        cifar10.load_data(cache_dir=tmp_path)
    assert not (tmp_path / "SHOULD-NOT-EXIST").exists()


# --------------------------------------------------------------------------- imdb


def ragged(*sequences: list[int]) -> np.ndarray:
    array = np.empty(len(sequences), dtype=object)
    for i, sequence in enumerate(sequences):
        array[i] = list(sequence)
    return array


@pytest.fixture
def imdb_file(file_server, monkeypatch):
    # Labels are distinct here (unlike the real 0/1) so each review can be found after shuffling.
    data = npz_bytes(
        x_train=ragged([1, 5, 2], [3, 3], [7, 1, 1, 4]),
        y_train=np.array([10, 11, 12]),
        x_test=ragged([2], [6, 8]),
        y_test=np.array([20, 21]),
    )
    serve(file_server, monkeypatch, imdb, "imdb.npz", data)


def by_label(x: np.ndarray, y: np.ndarray) -> dict[int, list[int]]:
    return {int(label): review for review, label in zip(x, y)}


def test_imdb_defaults_shift_indices_and_mark_the_start(imdb_file, tmp_path):
    (x_train, y_train), (x_test, y_test) = imdb.load_data(cache_dir=tmp_path)
    assert x_train.dtype == object and y_train.dtype == np.int64
    # index_from=3 shifts every word; start_char=1 leads; the largest index (8 + 3 = 11) is
    # num_words itself when num_words is None, so it becomes oov_char=2, as in Keras.
    assert by_label(x_train, y_train) == {10: [1, 4, 8, 5], 11: [1, 6, 6], 12: [1, 10, 4, 4, 7]}
    assert by_label(x_test, y_test) == {20: [1, 5], 21: [1, 9, 2]}


def test_imdb_shuffles_with_the_seed(imdb_file, tmp_path):
    (_, y_a), _ = imdb.load_data(seed=1, cache_dir=tmp_path)
    (_, y_b), _ = imdb.load_data(seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(y_a, y_b)
    orders = {tuple(imdb.load_data(seed=seed, cache_dir=tmp_path)[0][1]) for seed in range(8)}
    assert len(orders) > 1


def test_imdb_num_words_skip_top_and_oov(imdb_file, tmp_path):
    (x_train, y_train), _ = imdb.load_data(num_words=7, skip_top=5, cache_dir=tmp_path)
    # Kept: 5 <= index < 7; everything else (start marker included) -> oov_char 2.
    assert by_label(x_train, y_train) == {10: [2, 2, 2, 5], 11: [2, 6, 6], 12: [2, 2, 2, 2, 2]}
    (x_train, y_train), _ = imdb.load_data(num_words=7, oov_char=None, cache_dir=tmp_path)
    assert by_label(x_train, y_train) == {10: [1, 4, 5], 11: [1, 6, 6], 12: [1, 4, 4]}


def test_imdb_without_start_char_or_offset(imdb_file, tmp_path):
    (x_train, y_train), _ = imdb.load_data(start_char=None, index_from=0, num_words=100, cache_dir=tmp_path)
    assert by_label(x_train, y_train) == {10: [1, 5, 2], 11: [3, 3], 12: [7, 1, 1, 4]}


def test_imdb_maxlen_drops_long_reviews(imdb_file, tmp_path):
    (x_train, y_train), (x_test, y_test) = imdb.load_data(maxlen=4, num_words=100, cache_dir=tmp_path)
    assert by_label(x_train, y_train) == {11: [1, 6, 6]}
    assert sorted(y_test.tolist()) == [20, 21]
    with pytest.raises(ValueError, match="No review is shorter than maxlen=2"):
        imdb.load_data(maxlen=2, cache_dir=tmp_path)


def test_imdb_word_index(file_server, tmp_path, monkeypatch):
    payload = json.dumps({"the": 1, "and": 2}).encode()
    file_server.files["imdb_word_index.json"] = payload
    monkeypatch.setattr(imdb, "ORIGIN_FOLDER", file_server.url(""))
    monkeypatch.setattr(imdb, "WORD_INDEX_HASH", hashlib.md5(payload).hexdigest())
    assert imdb.get_word_index(cache_dir=tmp_path) == {"the": 1, "and": 2}


def test_imdb_refuses_a_tampered_object_array(file_server, tmp_path, monkeypatch):
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    member.write(pickle.dumps(_Gadget()))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as npz:
        npz.writestr("x_train.npy", member.getvalue())
    serve(file_server, monkeypatch, imdb, "imdb.npz", archive.getvalue())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="refers to `os.makedirs`"):
        imdb.load_data(cache_dir=tmp_path)
    assert not (tmp_path / "SHOULD-NOT-EXIST").exists()
