"""Hashing against outside oracles: SipHash-2-4's reference test vectors, FarmHash Fingerprint64
values of Google's C++ farmhash, and the bins Keras documents and asserts in its own tests
(Keras runs this layer only through TensorFlow, which is not installed here)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.layers.preprocessing.hashing import farmhash_fingerprint64, siphash24

# veorq/SipHash `vectors.h` (the paper's reference implementation): key 00..0f, message of
# length i = bytes 00..i-1.
SIPHASH24_VECTORS = [
    0x726FDB47DD0E0E31, 0x74F839C593DC67FD, 0x0D6C8009D9A94F5A, 0x85676696D7FB7E2D,
    0xCF2794E0277187B7, 0x18765564CD99A68D, 0xCBC9466E58FEE3CE, 0xAB0200F58B01D137,
    0x93F5F5799A932462, 0x9E0082DF0BA9E4B0, 0x7A5DBBC594DDB9F3, 0xF4B32F46226BADA7,
    0x751E8FBC860EE5FB, 0x14EA5627C0843D90, 0xF723CA908E7AF2EE, 0xA129CA6149BE45E5,
    0x3F2ACC7F57C29BDB, 0x699AE9F52CBE4794, 0x4BC1B3F0968DD39C, 0xBB6DC91DA77961BD,
    0xBED65CF21AA2EE98, 0xD0F2CBB02E3B67C7, 0x93536795E3A33E88, 0xA80C038CCD5CCEC8,
    0xB8AD50C6F649AF94, 0xBCE192DE8A85B8EA, 0x17D835B85BBB15F3, 0x2F2E6163076BCFAD,
    0xDE4DAAACA71DC9A5, 0xA6A2506687956571, 0xAD87A3535C49EF28, 0x32D892FAD841C342,
    0x7127512F72F27CCE, 0xA7F32346F95978E3, 0x12E0B01ABB051238, 0x15E034D40FA197AE,
    0x314DFFBE0815A3B4, 0x027990F029623981, 0xCADCD4E59EF40C4D, 0x9ABFD8766A33735C,
    0x0E3EA96B5304A7D0, 0xAD0C42D6FC585992, 0x187306C89BC215A9, 0xD4A60ABCF3792B95,
    0xF935451DE4F21DF2, 0xA9538F0419755787, 0xDB9ACDDFF56CA510, 0xD06C98CD5C0975EB,
    0xE612A3CB9ECBA951, 0xC766E62CFCADAF96, 0xEE64435A9752FE72, 0xA192D576B245165A,
    0x0A8787BF8ECB74B2, 0x81B3E73D20B49B6F, 0x7FA8220BA3B2ECEA, 0x245731C13CA42499,
    0xB78DBFAF3A8D83BD, 0xEA1AD565322A1A0B, 0x60E61C23A3795013, 0x6606D7E446282B93,
    0x6CA4ECB15C5F91E1, 0x9F626DA15C9625F3, 0xE51B38608EF25F57, 0x958A324CEB064572,
]


def test_siphash24_reference_vectors() -> None:
    key = (int.from_bytes(bytes(range(8)), "little"), int.from_bytes(bytes(range(8, 16)), "little"))
    assert [siphash24(key, bytes(range(n))) for n in range(64)] == SIPHASH24_VECTORS


# Fingerprint64 of bytes (7 i + 3) mod 256, i < length, by Google's C++ farmhash (through the
# pyfarmhash bindings): one or more lengths in each of farmhash's code paths (0-3, 4-7, 8-16,
# 17-32, 33-64, the 64-byte block loop).
FARMHASH_VECTORS = {
    0: 0x9AE16A3B2F90404F, 1: 0xBEC09CC447469D8B, 3: 0x40B4412E33EEFD64, 4: 0xF3C7EE05197A7B92,
    7: 0x4FEF0B39C12AA9A4, 8: 0x0C97ECBC1E9D2626, 16: 0x7EDA0ED8C837A168, 17: 0xC9518FE63EBF6127,
    32: 0xA53F806F23A314E8, 33: 0xC24F9D7CE864F0E9, 64: 0x0566266CB579ECA2,
    65: 0x77E0867714E6B0E4, 128: 0x666823960B3AC271, 200: 0x6D7105B27CBE2FD7,
}


@pytest.mark.parametrize("length", sorted(FARMHASH_VECTORS))
def test_farmhash_fingerprint64_matches_google_farmhash(length: int) -> None:
    data = bytes((i * 7 + 3) % 256 for i in range(length))
    assert farmhash_fingerprint64(data) == FARMHASH_VECTORS[length]


def test_farmhash_matches_the_c_library_on_random_bytes_when_installed() -> None:
    farmhash = pytest.importorskip("farmhash")
    generator = random.Random(0)
    for length in list(range(0, 140)) + [255, 256, 257, 1000]:
        data = bytes(generator.randrange(256) for _ in range(length))
        assert farmhash_fingerprint64(data) == farmhash.fingerprint64(data), length


# Keras's documented and tested bins (keras/src/layers/preprocessing/hashing.py docstring and
# hashing_test.py), computed there by TensorFlow's to_hash_bucket_fast / _strong.
WIRE = ["omar", "stringer", "marlo", "wire", "skywalker"]
KERAS_CASES = [
    ({"num_bins": 3}, [["A"], ["B"], ["C"], ["D"], ["E"]], [[1], [0], [1], [1], [2]]),
    ({"num_bins": 3, "mask_value": ""}, [["A"], ["B"], [""], ["C"], ["D"]],
     [[1], [1], [0], [2], [2]]),
    ({"num_bins": 3, "salt": [133, 137]}, [["A"], ["B"], ["C"], ["D"], ["E"]],
     [[1], [2], [1], [0], [2]]),
    ({"num_bins": 3, "salt": 133}, [["A"], ["B"], ["C"], ["D"], ["E"]],
     [[0], [0], [2], [1], [0]]),
    ({"num_bins": 1}, [["A"], ["B"], ["C"]], [[0], [0], [0]]),
    ({"num_bins": 2}, WIRE, [0, 0, 1, 0, 0]),
    ({"num_bins": 3, "mask_value": ""}, WIRE, [1, 1, 2, 1, 1]),
    ({"num_bins": 3, "mask_value": "omar"}, WIRE, [0, 1, 2, 1, 1]),
    ({"num_bins": 2, "salt": [133, 137]}, WIRE, [0, 1, 0, 1, 0]),
    ({"num_bins": 2, "salt": [211, 137]}, WIRE, [1, 0, 1, 0, 1]),
    ({"num_bins": 3}, [[0], [1], [2], [3], [4]], [[1], [0], [1], [0], [2]]),
    ({"num_bins": 3, "salt": [133, 137]}, [[0], [1], [2], [3], [4]], [[1], [1], [2], [0], [1]]),
    ({"num_bins": 2}, [[[1], [2]], [[2], [3]], [[3], [4]]], [[[1], [1]], [[1], [1]], [[1], [1]]]),
]


@pytest.mark.parametrize("kwargs, inputs, expected", KERAS_CASES)
def test_bins_equal_keras(kwargs: dict, inputs: list, expected: list) -> None:
    outputs = layers.Hashing(**kwargs)(inputs)
    assert outputs.dtype == torch.int64
    assert outputs.tolist() == expected


def test_input_forms_give_the_same_bins() -> None:
    layer = layers.Hashing(num_bins=2)
    expected = [0, 0, 1, 0, 0]
    assert layer(np.array(WIRE)).tolist() == expected
    assert layer(np.array(WIRE, dtype=object)).tolist() == expected
    assert layer([w.encode() for w in WIRE]).tolist() == expected
    assert layer(tuple(WIRE)).tolist() == expected
    numbers = layers.Hashing(num_bins=3)
    # Keras: integers hash their decimal text; floats are truncated to integers first.
    assert numbers(torch.tensor([0, 1, 2, 3, 4])).tolist() == [1, 0, 1, 0, 2]
    assert numbers(np.array([0.9, 1.5, 2.2, 3.0, 4.7])).tolist() == [1, 0, 1, 0, 2]
    assert numbers(["0", "1", "2", "3", "4"]).tolist() == [1, 0, 1, 0, 2]


def test_text_is_hashed_as_utf8() -> None:
    text = "héllo wörld"
    # Google's farmhash (pyfarmhash) of the UTF-8 bytes.
    assert farmhash_fingerprint64(text.encode("utf-8")) == 0x7CED6D0A96714893
    assert layers.Hashing(num_bins=1000)([text]).tolist() == [0x7CED6D0A96714893 % 1000]


def test_encoded_output_modes_equal_keras() -> None:
    # Keras's hashing_test: one_hot, multi_hot and count of the integers 0..4 in 3 bins.
    one_hot = layers.Hashing(num_bins=3, output_mode="one_hot")(np.array([[0], [1], [2], [3], [4]]))
    assert one_hot.dtype == torch.float32
    assert one_hot.tolist() == [[0, 1, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]
    multi = layers.Hashing(num_bins=3, output_mode="multi_hot")(np.array([[0, 1, 2, 3, 4]]))
    assert multi.tolist() == [[1.0, 1.0, 1.0]]
    count = layers.Hashing(num_bins=3, output_mode="count")
    assert count(np.array([0, 1, 2, 3, 4])).tolist() == [2.0, 2.0, 1.0]
    assert count(np.array([[0, 1, 2, 3, 4]])).tolist() == [[2.0, 2.0, 1.0]]
    assert count.compute_output_shape((None, 5)) == (None, 3)


def test_int32_output_dtype() -> None:
    outputs = layers.Hashing(num_bins=3, dtype="int32")(["A", "B"])
    assert outputs.dtype == torch.int32 and outputs.tolist() == [1, 0]


def test_functional_model_with_string_input_saves_and_loads(tmp_path) -> None:
    inputs = lamina.Input(shape=(), dtype="string")
    outputs = layers.Hashing(num_bins=3, salt=[133, 137])(inputs)
    model = lamina.Model(inputs, outputs)
    assert tuple(outputs.shape) == (None,)
    data = np.array(["A", "B", "C", "D", "E"])
    assert model(data).tolist() == [1, 2, 1, 0, 2]
    path = tmp_path / "hashing.keras"
    model.save(path)
    assert lamina.models.load_model(path)(data).tolist() == [1, 2, 1, 0, 2]


def test_config_round_trip() -> None:
    layer = layers.Hashing(num_bins=7, mask_value="", salt=5, output_mode="count", name="h")
    config = layer.get_config()
    assert config["salt"] == [5, 5] and config["mask_value"] == "" and config["num_bins"] == 7
    clone = layers.Hashing.from_config(config)
    assert clone.get_config() == config
    data = [["a", "", "b"], ["c", "c", "d"]]
    assert torch.equal(clone(data), layer(data))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_bins": None}, ValueError, "Received: num_bins=None"),
    ({"num_bins": 0}, ValueError, "cannot be `None` or non-positive"),
    ({"num_bins": True}, ValueError, "num_bins=True"),
    ({"num_bins": 2, "salt": "string"}, ValueError, "can only be a tuple of size 2"),
    ({"num_bins": 2, "salt": [1]}, ValueError, "Received: salt=[1]"),
    ({"num_bins": 2, "salt": [133, 137, 177]}, ValueError, "can only be a tuple of size 2"),
    ({"num_bins": 3, "output_mode": "tf_idf"}, ValueError, "output_mode='tf_idf'"),
    ({"num_bins": 3, "output_mode": "one_hot", "sparse": True}, ValueError, "`sparse=True`"),
    ({"num_bins": 3, "dtype": "float32"}, ValueError, "Received: dtype='float32'"),
])
def test_bad_arguments_are_refused(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        layers.Hashing(**kwargs)


def test_bad_inputs_are_refused() -> None:
    layer = layers.Hashing(num_bins=3, name="hasher")
    with pytest.raises(TypeError, match=r"'hasher'.*element 1.5 of type float"):
        layer(np.array(["a", 1.5], dtype=object))
    with pytest.raises(TypeError, match="dtype torch.bool"):
        layer(torch.tensor([True, False]))


def test_sequential_model_fits_on_text_through_hashing() -> None:
    words = np.array(["A", "B", "C", "D", "E"] * 4)
    targets = np.arange(20, dtype=np.float32) % 2
    model = lamina.Sequential([layers.Hashing(num_bins=3, output_mode="one_hot"),
                               layers.Dense(1, kernel_initializer="ones", use_bias=False)])
    model.compile(optimizer="sgd", loss="mse")
    assert len(model.fit(words, targets, epochs=1, verbose=0).history["loss"]) == 1
    # Keras's bins of A..E in 3 bins are [1, 0, 1, 1, 2]: one-hot rows pick out kernel entries.
    kernel = model.layers[1].get_weights()[0][:, 0]
    np.testing.assert_allclose(model.predict(words[:5], verbose=0)[:, 0],
                               kernel[[1, 0, 1, 1, 2]], rtol=1e-6)
