"""`Dataset.zip`, `padded_batch` and `from_generator` against plain-Python references of tf.data's
semantics (and the outputs tf.data's documentation prints for its own examples)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina as keras
from lamina.utils import INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, TensorSpec


def numbers(count: int) -> Dataset:
    return Dataset.from_tensor_slices(np.arange(count))


def to_lists(structure):
    if isinstance(structure, tuple):
        return tuple(to_lists(part) for part in structure)
    if isinstance(structure, dict):
        return {key: to_lists(value) for key, value in structure.items()}
    return structure.tolist()


def python_padded_batch(elements: list[list], size: int, fill, width=None) -> list[list[list]]:
    """tf.data's padded_batch of 1-D lists, in plain Python."""
    batches = []
    for start in range(0, len(elements), size):
        group = elements[start:start + size]
        longest = width if width is not None else max(len(e) for e in group)
        batches.append([e + [fill] * (longest - len(e)) for e in group])
    return batches


def ragged() -> tuple[Dataset, list[list[int]]]:
    rng = np.random.default_rng(0)
    rows = [rng.integers(1, 9, size=int(rng.integers(0, 6))).tolist() for _ in range(11)]
    dataset = Dataset.from_generator(lambda: iter(rows),
                                     output_signature=TensorSpec((None,), "int64"))
    return dataset, rows


# ------------------------------------------------------------------------------------------ zip

def test_zip_pairs_elements_and_stops_at_the_shortest() -> None:
    zipped = Dataset.zip(numbers(4), numbers(7).map(lambda x: x * 10))
    assert [to_lists(e) for e in zipped] == list(zip(range(4), range(0, 70, 10)))
    assert int(zipped.cardinality()) == 4
    nested = Dataset.zip((numbers(3), (numbers(5), numbers(9))))
    assert [to_lists(e) for e in nested] == [(i, (i, i)) for i in range(3)]


def test_zip_of_a_dict_gives_dict_elements_with_text() -> None:
    words = Dataset.from_tensor_slices(np.array(["a", "b", "c"]))
    zipped = Dataset.zip(datasets={"y": numbers(5), "x": words})
    elements = list(zipped)
    assert [list(e) for e in elements] == [["y", "x"]] * 3
    assert [(int(e["y"]), str(e["x"])) for e in elements] == [(0, "a"), (1, "b"), (2, "c")]
    assert len(zipped) == 3


@pytest.mark.parametrize("sizes, expected", [
    ((3, 5), 3),
    ((3, "forever"), 3),
    (("forever", "forever"), INFINITE_CARDINALITY),
    ((3, "filtered"), UNKNOWN_CARDINALITY),
])
def test_zip_cardinality_follows_tf_data(sizes, expected) -> None:
    def make(size):
        if size == "forever":
            return numbers(2).repeat()
        if size == "filtered":
            return numbers(10).filter(lambda x: x > 2)
        return numbers(size)

    zipped = Dataset.zip(tuple(make(size) for size in sizes))
    assert int(zipped.cardinality()) == expected
    if expected != INFINITE_CARDINALITY:
        assert len(list(zipped)) == 3


def test_zip_reruns_its_inputs_each_iteration() -> None:
    zipped = Dataset.zip(numbers(6).shuffle(6, seed=1), numbers(6))
    first, second = [[int(a) for a, _ in zipped] for _ in range(2)]
    assert sorted(first) == sorted(second) == list(range(6))
    assert first != second


@pytest.mark.parametrize("call, message", [
    (lambda: Dataset.zip([numbers(2), numbers(2)]), "use a tuple instead"),
    (lambda: Dataset.zip(numbers(2), np.arange(2)), "Received a ndarray"),
    (lambda: Dataset.zip(), "at least one dataset"),
    (lambda: Dataset.zip(numbers(2), datasets=(numbers(2),)), "not both"),
])
def test_zip_refuses_what_is_not_datasets(call, message) -> None:
    with pytest.raises(TypeError, match=message):
        call()


# -------------------------------------------------------------------------------- padded_batch

@pytest.mark.parametrize("size, kwargs, fill, width, drop", [
    (3, {}, 0, None, False),
    (4, {"padding_values": -7}, -7, None, False),
    (4, {"padded_shapes": (6,)}, 0, 6, False),
    (4, {"padded_shapes": [None], "drop_remainder": True}, 0, None, True),
    (2, {"padded_shapes": 5, "padding_values": np.int64(9)}, 9, 5, False),
])
def test_padded_batch_equals_python_padding(size, kwargs, fill, width, drop) -> None:
    dataset, rows = ragged()
    expected = python_padded_batch(rows, size, fill, width)
    if drop:
        expected = [batch for batch in expected if len(batch) == size]
    batches = list(dataset.padded_batch(size, **kwargs))
    assert [b.tolist() for b in batches] == expected
    assert all(b.dtype == torch.int64 for b in batches)


def test_padded_batch_tf_documentation_examples() -> None:
    # tf.data.Dataset.padded_batch's documented examples and the outputs it prints.
    counts = Dataset.from_generator(lambda: (np.full([x], x, dtype=np.int32) for x in range(1, 5)),
                                    output_signature=TensorSpec(shape=(None,), dtype="int32"))
    assert [b.tolist() for b in counts.padded_batch(2)] == [[[1, 0], [2, 2]],
                                                            [[3, 3, 3, 0], [4, 4, 4, 4]]]
    assert [b.tolist() for b in counts.padded_batch(2, padded_shapes=5, padding_values=-1)] == [
        [[1, -1, -1, -1, -1], [2, 2, -1, -1, -1]], [[3, 3, 3, -1, -1], [4, 4, 4, 4, -1]]]
    elements = [([1, 2, 3], [10]), ([4, 5], [11, 12])]
    pairs = Dataset.from_generator(lambda: iter(elements), ("int32", "int32"))
    batch = next(iter(pairs.padded_batch(2, padded_shapes=([4], [None]),
                                         padding_values=(-1, 100))))
    assert to_lists(batch) == ([[1, 2, 3, -1], [4, 5, -1, -1]], [[10, 100], [11, 12]])
    both = next(iter(Dataset.zip((counts, counts)).padded_batch(2, padding_values=-1)))
    assert to_lists(both) == ([[1, -1], [2, 2]], [[1, -1], [2, 2]])


def test_padded_batch_pads_every_axis_text_and_scalars() -> None:
    rng = np.random.default_rng(1)
    images = [rng.normal(size=(int(rng.integers(1, 4)), int(rng.integers(1, 4)))).astype(
        np.float32) for _ in range(3)]
    words = [["a"], ["b", "c", "d"], []]
    labels = [1, 2, 3]
    dataset = Dataset.from_generator(
        lambda: zip(images, words, labels),
        output_signature=(TensorSpec((None, None)), TensorSpec((None,), "string"),
                          TensorSpec((), "int64")))
    grid, text, label = next(iter(dataset.padded_batch(3)))
    height = max(i.shape[0] for i in images)
    width = max(i.shape[1] for i in images)
    expected = np.zeros((3, height, width), np.float32)
    for row, image in enumerate(images):
        expected[row, :image.shape[0], :image.shape[1]] = image
    np.testing.assert_array_equal(grid.numpy(), expected)
    assert text.numpy().tolist() == [["a", "", ""], ["b", "c", "d"], ["", "", ""]]
    assert label.tolist() == labels
    assert int(dataset.padded_batch(2).cardinality()) == UNKNOWN_CARDINALITY
    assert int(numbers(7).padded_batch(3).cardinality()) == 3
    assert int(numbers(7).padded_batch(3, drop_remainder=True).cardinality()) == 2


@pytest.mark.parametrize("kwargs, error, message", [
    ({"padded_shapes": 2}, ValueError, "smaller size than the input element"),
    ({"padded_shapes": (None, None)}, ValueError, "has rank 2, but the component has rank 1"),
    ({"padding_values": "x"}, TypeError, "cannot be padded with the string 'x'"),
    ({"padded_shapes": "long"}, ValueError, "must be a shape"),
])
def test_padded_batch_errors(kwargs, error, message) -> None:
    dataset, _ = ragged()
    with pytest.raises(error, match=message):
        list(dataset.padded_batch(4, **kwargs))


# ------------------------------------------------------------------------------ from_generator

def test_from_generator_calls_the_generator_afresh_with_args() -> None:
    calls = []

    def generate(stop, step):
        calls.append((stop, step))
        yield from ((i, [i, i * i]) for i in range(0, stop, step))

    dataset = Dataset.from_generator(
        generate, args=(7, 2),
        output_signature=(TensorSpec((), "int32"), TensorSpec((2,), "float32")))
    expected = [(i, [float(i), float(i * i)]) for i in range(0, 7, 2)]
    assert [to_lists(e) for e in dataset] == expected
    assert [to_lists(e) for e in dataset] == expected
    assert calls == [(7, 2), (7, 2)]
    first = next(iter(dataset))
    assert first[0].dtype == torch.int32 and first[1].dtype == torch.float32
    assert int(dataset.cardinality()) == UNKNOWN_CARDINALITY


def test_from_generator_dict_elements_and_text_feed_fit() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(12, 3)).astype(np.float32)
    targets = (features.sum(axis=1, keepdims=True) > 0).astype(np.float32)

    def generate():
        for x, y in zip(features, targets):
            yield {"x": x.tolist()}, y

    dataset = Dataset.from_generator(
        generate, output_signature=({"x": TensorSpec((3,))}, TensorSpec((1,))))
    inputs = keras.Input(shape=(3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    history = model.fit(dataset.batch(4), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    text = Dataset.from_generator(lambda: iter([b"ab", "cd"]),
                                  output_signature=TensorSpec((), "string"))
    assert [str(t) for t in text] == ["ab", "cd"]


def test_from_generator_output_types_and_shapes() -> None:
    dataset = Dataset.from_generator(lambda: iter([([1, 2], 3)]), output_types=("int64", "float64"),
                                     output_shapes=((2,), ()))
    element = next(iter(dataset))
    assert to_lists(element) == ([1, 2], 3.0)
    assert element[1].dtype == torch.float64
    with pytest.raises(ValueError, match=r"shape \(3,\) where an element of shape \(2,\)"):
        list(Dataset.from_generator(lambda: iter([([1, 2, 3], 3)]),
                                    output_types=("int64", "float64"), output_shapes=((2,), ())))


@pytest.mark.parametrize("elements, signature, error, message", [
    ([[1, 2, 3]], TensorSpec((2,), "int32"), ValueError,
     r"shape \(3,\) where an element of shape \(2,\)"),
    ([[1]], TensorSpec((2,), "int32"), ValueError, r"shape \(1,\) where an element of shape \(2,\)"),
    ([[1, 2]], TensorSpec((), "int32"), ValueError, r"shape \(2,\) where an element of shape \(\)"),
    ([(1, 2)], TensorSpec((), "int32"), TypeError, "did not match the expected structure"),
    ([1], (TensorSpec(()), TensorSpec(())), TypeError, "did not match the expected structure"),
    (["seven"], TensorSpec((), "int32"), TypeError, "expected type was int32"),
    ([7], TensorSpec((), "string"), TypeError, "expected type was string"),
])
def test_from_generator_refuses_elements_off_the_signature(elements, signature, error,
                                                           message) -> None:
    dataset = Dataset.from_generator(lambda: iter(elements), output_signature=signature)
    with pytest.raises(error, match=message):
        list(dataset)


@pytest.mark.parametrize("call, message", [
    (lambda: Dataset.from_generator(iter([1]), output_signature=TensorSpec(())),
     "Pass the generator function, not its result"),
    (lambda: Dataset.from_generator(lambda: iter([1])), "needs the elements' signature"),
    (lambda: Dataset.from_generator(lambda: iter([1]), output_types="int32",
                                    output_signature=TensorSpec(())), "not both"),
    (lambda: TensorSpec((2,), "complex_thing"), "Unknown dtype 'complex_thing'"),
    (lambda: Dataset.from_generator(lambda: iter([1]), output_signature="int32"),
     "structure of TensorSpec"),
])
def test_from_generator_argument_errors(call, message) -> None:
    with pytest.raises(TypeError, match=message):
        call()


def test_a_map_returning_a_zero_dimensional_array_keeps_its_shape() -> None:
    doubled = numbers(3).map(lambda x: np.asarray(x.numpy() * 2))
    assert [(tuple(e.shape), e.item()) for e in doubled] == [((), 0), ((), 2), ((), 4)]
