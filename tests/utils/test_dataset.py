"""`lamina.utils.Dataset`: each method against plain-Python list semantics of `tf.data`, and fit."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import lamina as keras
from lamina.utils import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, StringTensor


def values(dataset) -> list:
    return [element.tolist() for element in dataset]


def numbers(count: int = 10) -> Dataset:
    return Dataset.from_tensor_slices(np.arange(count))


# (pipeline, the same pipeline on a Python list, tf.data's cardinality)
PIPELINES = [
    ("take", lambda d: d.take(3), lambda xs: xs[:3], 3),
    ("take all", lambda d: d.take(-1), lambda xs: xs, 10),
    ("take more", lambda d: d.take(50), lambda xs: xs, 10),
    ("take 0", lambda d: d.take(0), lambda xs: [], 0),
    ("skip", lambda d: d.skip(7), lambda xs: xs[7:], 3),
    ("skip all", lambda d: d.skip(-1), lambda xs: [], 0),
    ("skip more", lambda d: d.skip(20), lambda xs: [], 0),
    ("batch", lambda d: d.batch(4), lambda xs: [xs[0:4], xs[4:8], xs[8:]], 3),
    ("batch drop", lambda d: d.batch(4, drop_remainder=True), lambda xs: [xs[0:4], xs[4:8]], 2),
    ("take on batched", lambda d: d.batch(3).take(2), lambda xs: [xs[0:3], xs[3:6]], 2),
    ("skip on batched", lambda d: d.batch(3).skip(3), lambda xs: [xs[9:]], 1),
    ("batch of batches", lambda d: d.batch(2).batch(2, drop_remainder=True),
     lambda xs: [[xs[0:2], xs[2:4]], [xs[4:6], xs[6:8]]], 2),
    ("unbatch", lambda d: d.batch(3).unbatch(), lambda xs: xs, UNKNOWN_CARDINALITY),
    ("unbatch rebatch", lambda d: d.batch(3).unbatch().batch(4), lambda xs: [xs[0:4], xs[4:8], xs[8:]],
     UNKNOWN_CARDINALITY),
    ("repeat", lambda d: d.take(3).repeat(2), lambda xs: xs[:3] * 2, 6),
    ("repeat then batch", lambda d: d.take(3).repeat(3).batch(4), lambda xs: [[0, 1, 2, 0], [1, 2, 0, 1], [2]], 3),
    ("filter", lambda d: d.filter(lambda x: x % 3 == 0), lambda xs: [x for x in xs if x % 3 == 0],
     UNKNOWN_CARDINALITY),
    ("map", lambda d: d.map(lambda x: x * x), lambda xs: [x * x for x in xs], 10),
    ("parallel map", lambda d: d.map(lambda x: x + 1, num_parallel_calls=AUTOTUNE),
     lambda xs: [x + 1 for x in xs], 10),
    ("cache prefetch", lambda d: d.cache().prefetch(AUTOTUNE), lambda xs: xs, 10),
    ("prefetch 1", lambda d: d.prefetch(1).batch(5), lambda xs: [xs[:5], xs[5:]], 2),
    ("concatenate", lambda d: d.take(2).concatenate(d.skip(8)), lambda xs: xs[:2] + xs[8:], 4),
    ("shuffle buffer 1", lambda d: d.shuffle(1), lambda xs: xs, 10),
]


@pytest.mark.parametrize("name, pipeline, reference, cardinality", PIPELINES, ids=[p[0] for p in PIPELINES])
def test_pipeline_matches_list_semantics(name, pipeline, reference, cardinality):
    dataset = pipeline(numbers())
    expected = reference(list(range(10)))
    assert values(dataset) == expected
    assert values(dataset) == expected  # a second pass runs the pipeline afresh
    assert int(dataset.cardinality()) == cardinality and dataset.cardinality().numpy() == cardinality
    if cardinality >= 0:
        assert len(dataset) == cardinality


def test_infinite_and_unknown_cardinality():
    forever = numbers(3).repeat()
    assert int(forever.cardinality()) == INFINITE_CARDINALITY
    assert values(forever.take(7)) == [0, 1, 2, 0, 1, 2, 0]
    assert int(forever.take(7).cardinality()) == 7
    with pytest.raises(TypeError, match="infinite"):
        len(forever)
    with pytest.raises(TypeError, match="unknown"):
        len(numbers().filter(lambda x: x > 2))
    assert int(numbers().filter(lambda x: x > 2).take(3).cardinality()) == UNKNOWN_CARDINALITY
    assert values(numbers(0).repeat()) == []  # an empty dataset repeated ends instead of hanging


def test_elements_structures_and_map_unpacking():
    images = np.random.default_rng(0).integers(0, 255, size=(5, 4, 4, 3)).astype(np.float32)
    labels = np.arange(5, dtype=np.int32)
    dataset = Dataset.from_tensor_slices((images, labels)).batch(2)
    batch_images, batch_labels = next(iter(dataset))
    assert isinstance(batch_images, torch.Tensor) and batch_images.dtype == torch.float32
    assert batch_labels.dtype == torch.int32
    # Keras tutorials' idiom: one image of a batch back to uint8 for plotting.
    np.testing.assert_array_equal(batch_images[1].numpy().astype("uint8"), images[1].astype("uint8"))
    scaled = dataset.map(lambda x, y: (x / 255.0, y))  # tuple elements are unpacked into arguments
    np.testing.assert_allclose(next(iter(scaled))[0].numpy(), images[:2] / 255.0, rtol=1e-6)
    as_list = dataset.map(lambda x, y: [x, y])  # a list result is read as a tuple
    assert isinstance(next(iter(as_list)), tuple)
    dicts = Dataset.from_tensor_slices({"a": np.arange(4), "b": np.arange(4) * 2}).batch(3)
    assert [(d["a"].tolist(), d["b"].tolist()) for d in dicts] == [([0, 1, 2], [0, 2, 4]), ([3], [6])]
    sums = dicts.unbatch().map(lambda d: {"s": d["a"] + d["b"]})  # a dict element is one argument
    assert [d["s"].item() for d in sums] == [0, 3, 6, 9]
    # A list is one tensor (rows of a matrix here), a tuple is the parts of each element.
    assert values(Dataset.from_tensor_slices([[1, 2], [3, 4], [5, 6]])) == [[1, 2], [3, 4], [5, 6]]
    pairs = list(Dataset.from_tensor_slices((images, labels)).batch(2).as_numpy_iterator())
    assert isinstance(pairs[0][0], np.ndarray) and np.array_equal(np.concatenate([p[1] for p in pairs]), labels)


def test_strings_are_string_tensors_with_numpy():
    texts = ["a cat", "the dog", "a bird", "the fish", "x"]
    dataset = Dataset.from_tensor_slices((np.array(texts), np.arange(5))).batch(2)
    text_batch, _ = next(iter(dataset))
    assert isinstance(text_batch, StringTensor) and text_batch.numpy().tolist() == texts[:2]
    assert type(text_batch.numpy()) is np.ndarray
    assert [t.numpy().tolist() for t, _ in dataset.unbatch().batch(5)] == [texts]
    only_text = dataset.map(lambda text, label: text)
    assert [t.tolist() for t in only_text] == [texts[:2], texts[2:4], texts[4:]]
    assert next(iter(Dataset.from_tensor_slices(np.array([b"\xc3\xa9t\xc3\xa9"])))).tolist() == "été"
    layer = keras.layers.StringLookup(vocabulary=["a", "the"])
    words = Dataset.from_tensor_slices(np.array(["a", "zzz", "the"])).batch(3).map(layer)
    assert next(iter(words)).tolist() == [1, 0, 2]


def test_shuffle_is_a_buffered_permutation_reshuffled_each_epoch():
    # tf.data's shuffle draws from a buffer of the next `buffer_size` elements, so the element
    # at output position k came from input position <= k + buffer_size - 1.
    for seed in range(20):
        order = values(numbers(30).shuffle(4, seed=seed))
        assert sorted(order) == list(range(30))
        assert all(x <= k + 3 for k, x in enumerate(order))
    full = numbers(30).shuffle(30, seed=1)
    epoch_0, epoch_1 = values(full), values(full)
    assert sorted(epoch_0) == list(range(30)) and epoch_0 != epoch_1
    assert values(numbers(30).shuffle(30, seed=1)) == epoch_0  # the seed fixes the sequence of orders
    fixed = numbers(30).shuffle(30, seed=1, reshuffle_each_iteration=False)
    assert values(fixed) == values(fixed)
    keras.utils.set_random_seed(5)
    unseeded = values(numbers(30).shuffle(30))
    keras.utils.set_random_seed(5)
    assert values(numbers(30).shuffle(30)) == unseeded
    # A full buffer gives every element every position: first positions over 400 draws.
    firsts = [values(numbers(4).shuffle(4, seed=s))[0] for s in range(400)]
    assert min(np.bincount(firsts, minlength=4)) > 60
    batched = values(numbers(12).batch(3).shuffle(4, seed=0))
    assert sorted(batched) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]  # whole batches move


def test_cache_replays_the_first_complete_pass():
    calls = []
    dataset = numbers(5).map(lambda x: (calls.append(1), x + torch.randint(0, 1000, ()))[1]).cache()
    assert values(dataset.take(2)) and len(calls) == 2  # a partial pass is not kept
    first = values(dataset)
    assert values(dataset) == first and values(dataset) == first
    assert len(calls) == 2 + 5


def test_prefetch_and_parallel_map_keep_order_propagate_errors_and_stop_their_threads():
    before = threading.active_count()
    seen_threads = set()

    def slow(x):
        seen_threads.add(threading.get_ident())
        time.sleep(0.01 * float(5 - x % 5))
        return x * 2

    dataset = numbers(20).map(slow, num_parallel_calls=4).prefetch(3)
    assert values(dataset) == [2 * x for x in range(20)]
    assert len(seen_threads) > 1
    assert values(dataset.take(2)) == [0, 2]  # stopping early shuts the threads down

    def broken(x):
        if x == 3:
            raise KeyError("bad element 3")
        return x

    for pipeline in (numbers().map(broken).prefetch(2), numbers().map(broken, num_parallel_calls=2)):
        with pytest.raises(KeyError, match="bad element 3"):
            values(pipeline)
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_map_runs_without_gradients():
    layer = keras.layers.Dense(2)
    out = next(iter(Dataset.from_tensor_slices(np.ones((3, 4), np.float32)).batch(3).map(layer)))
    assert not out.requires_grad and out.numpy().shape == (3, 2)


def test_fit_on_a_dataset_equals_fit_on_the_arrays():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], np.float32))[:, None]

    def trained(data, **kwargs):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.05), "mse")
        history = model.fit(data, epochs=3, verbose=0, **kwargs)
        return model.get_weights(), history.history["loss"]

    from_dataset = trained(Dataset.from_tensor_slices((x, y)).batch(8).prefetch(AUTOTUNE))
    from_arrays = trained(x, y=y, batch_size=8, shuffle=False)
    for got, expected in zip(from_dataset[0], from_arrays[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_dataset[1], from_arrays[1], rtol=1e-5)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    forever = Dataset.from_tensor_slices((x, y)).repeat().batch(8)
    assert len(model.fit(forever, epochs=2, steps_per_epoch=3, verbose=0).history["loss"]) == 2
    assert model.predict(Dataset.from_tensor_slices(x).batch(16), verbose=0).shape == (50, 1)
    loader = torch.utils.data.DataLoader(Dataset.from_tensor_slices((x, y)).batch(10), batch_size=None)
    assert [len(batch[0]) for batch in loader] == [10] * 5


@pytest.mark.parametrize("make, error, message", [
    (lambda: numbers().batch(0), ValueError, "batch_size=0"),
    (lambda: numbers().shuffle(0), ValueError, "buffer_size=0"),
    (lambda: numbers().take(1.5), TypeError, "count=1.5"),
    (lambda: numbers().map(abs, num_parallel_calls=0), ValueError, "num_parallel_calls=0"),
    (lambda: numbers()[0], TypeError, "not indexable"),
    (lambda: values(numbers(3).map(lambda n: torch.zeros(int(n) + 1)).batch(3)), ValueError,
     r"different shapes: \[\(1,\), \(2,\), \(3,\)\]"),
    (lambda: values(numbers().unbatch()), ValueError, "scalar component"),
    (lambda: Dataset.from_tensor_slices((np.zeros(3), np.zeros(4))), ValueError, r"first dimensions \[3, 4\]"),
    (lambda: values(numbers().map(lambda x: object())), TypeError, "Received a object"),
    (lambda: Dataset.from_tensor_slices(np.array([{}, {}])), TypeError, "ndarray of dtype object"),
])
def test_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_autotune_is_exported_like_tf_data():
    assert keras.utils.AUTOTUNE == -1
