"""`Dataset`: the chainable input pipeline Keras code writes with `tf.data`, on torch.

`image_dataset_from_directory`, `text_dataset_from_directory` and
`timeseries_dataset_from_array` return one; `Dataset.from_tensor_slices` makes one from arrays.
It is a `torch.utils.data.IterableDataset`: each `iter()` (each epoch of `fit`) runs the whole
pipeline afresh, so shuffles reshuffle and random maps draw again, as `tf.data` does. Elements
are torch tensors; text is a `StringTensor` (a NumPy array of `str` with `.numpy()`), since
torch has no string dtype.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from lamina import tree
from lamina._strings import StringTensor, as_strings, is_string_array

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


def _as_leaf(value: Any) -> Any:
    """One component of an element as the pipeline holds it: a tensor or a StringTensor."""
    if value is None or isinstance(value, (torch.Tensor, StringTensor)):
        return value
    if isinstance(value, (str, bytes)) or is_string_array(value):
        return as_strings(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return torch.as_tensor(np.asarray(value))
    if isinstance(value, (bool, int, float)):
        return torch.as_tensor(value)
    kind = f" of dtype {value.dtype}" if isinstance(value, np.ndarray) else ""
    raise TypeError(
        "Dataset elements must be tensors, NumPy arrays of numbers or text, numbers or strings "
        f"(nested in tuples or dicts). Received a {type(value).__name__}{kind}: {value!r:.80}."
    )


def _as_element(value: Any) -> Any:
    if isinstance(value, list):
        # tf.data reads a list a map function returns as a tuple of components.
        value = tuple(value)
    return tree.map_structure(_as_leaf, value)


def _call(fn: Callable, element: Any) -> Any:
    # Keras pipelines never differentiate through the data; without no_grad a map that calls a
    # layer with weights would hand out tensors that refuse `.numpy()`.
    with torch.no_grad():
        return fn(*element) if isinstance(element, tuple) else fn(element)


def _stack(leaves: list[Any]) -> Any:
    first = leaves[0]
    shapes = {tuple(leaf.shape) for leaf in leaves}
    if len(shapes) > 1:
        raise ValueError(
            f"Cannot batch elements of different shapes: {sorted(shapes)}. Make them one shape "
            "first (e.g. map a Resizing layer, or pad sequences with pad_sequences), or use "
            "batch_size=1."
        )
    if isinstance(first, StringTensor):
        return np.stack([leaf.view(np.ndarray) for leaf in leaves]).view(StringTensor)
    return torch.stack(leaves)


def _unstack(element: Any) -> Iterator[Any]:
    leaves = tree.flatten(element)
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves if leaf is not None}
    if None in sizes:
        raise ValueError("Cannot unbatch an element with a scalar component: each component "
                         "needs a batch axis to split.")
    if len(sizes) > 1:
        raise ValueError(
            f"Cannot unbatch: the components of an element have different batch sizes {sorted(sizes)}."
        )
    for index in range(sizes.pop() if sizes else 0):
        yield tree.map_structure(lambda leaf: None if leaf is None else leaf[index, ...], element)


def _to_numpy(element: Any) -> Any:
    def convert(leaf: Any) -> Any:
        if isinstance(leaf, torch.Tensor):
            return leaf.detach().cpu().numpy()
        if isinstance(leaf, StringTensor):
            return leaf.numpy()
        return leaf

    return tree.map_structure(convert, element)


def _count(value: Any, name: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}.")
    return int(value)


def _positive(value: Any, name: str) -> int:
    count = _count(value, name)
    if count < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}.")
    return count


def _parallelism(value: Any) -> int:
    if value is None:
        return 1
    if _count(value, "num_parallel_calls") == AUTOTUNE:
        return max(1, os.cpu_count() or 1)
    return _positive(value, "num_parallel_calls")


class Dataset(IterableDataset):
    """A re-iterable pipeline of elements with `tf.data.Dataset`'s methods and semantics.

    Build one with `Dataset.from_tensor_slices` or a `*_dataset_from_*` utility; each method
    returns a new `Dataset` and leaves this one unchanged. Pass it to `fit`, `evaluate` and
    `predict` as it is (one pass per epoch), or to a `torch.utils.data.DataLoader` with
    `batch_size=None`.

    >>> ds = Dataset.from_tensor_slices(np.arange(10)).filter(lambda x: x % 2 == 0).batch(2)
    >>> [b.tolist() for b in ds]
    [[0, 2], [4, 6], [8]]
    """

    def __init__(self, make_iterator: Callable[[], Iterator[Any]], cardinality: int,
                 *, class_names: list[str] | None = None,
                 file_paths: list[str] | None = None) -> None:
        self._make_iterator = make_iterator
        self._cardinality = int(cardinality)
        if class_names is not None:
            self.class_names = class_names
        if file_paths is not None:
            self.file_paths = file_paths

    def _derive(self, make_iterator: Callable[[], Iterator[Any]], cardinality: int) -> Dataset:
        # Keras's utilities set class_names/file_paths on the dataset they return; carrying them
        # through the methods also keeps them on `ds.map(...).prefetch(...)`.
        return Dataset(make_iterator, cardinality, class_names=getattr(self, "class_names", None),
                       file_paths=getattr(self, "file_paths", None))

    # ----------------------------------------------------------------- sources

    @classmethod
    def from_tensor_slices(cls, tensors: Any) -> Dataset:
        """One element per row of `tensors` (an array, or a tuple/dict of arrays of one length)."""
        if isinstance(tensors, list):
            tensors = np.asarray(tensors)  # tf.data reads a list as one tensor, a tuple as parts
        structure = tree.map_structure(_as_leaf, tensors)
        lengths = {len(leaf) if leaf.ndim else None for leaf in tree.flatten(structure)}
        if None in lengths or len(lengths) != 1:
            raise ValueError(
                "`from_tensor_slices` needs arrays with one shared first dimension (the samples). "
                f"Received first dimensions {sorted(lengths, key=str)} (None is a scalar)."
            )
        count = lengths.pop()
        return cls(lambda: _unstack(structure), count)

    # ----------------------------------------------------------------- iteration

    def __iter__(self) -> Iterator[Any]:
        return self._make_iterator()

    def __getitem__(self, index: Any) -> Any:
        raise TypeError(
            "A Dataset is not indexable (as a tf.data.Dataset is not): iterate it, or take "
            f"element {index!r} with `next(iter(ds.skip({index!r})))` or `ds.skip(n).take(1)`."
        )

    def __len__(self) -> int:
        if self._cardinality == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite (it repeats); it has no len().")
        if self._cardinality == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown (after filter or unbatch); "
                            "iterate it to count, or pass steps_per_epoch to fit.")
        return self._cardinality

    def __repr__(self) -> str:
        size = {INFINITE_CARDINALITY: "infinite", UNKNOWN_CARDINALITY: "unknown"}.get(
            self._cardinality, self._cardinality)
        return f"<Dataset cardinality={size}>"

    def cardinality(self) -> torch.Tensor:
        """The number of elements as a 0-d int64 tensor, or `INFINITE_CARDINALITY` (-1) /
        `UNKNOWN_CARDINALITY` (-2); `int(ds.cardinality())` and `.numpy()` both work."""
        return torch.tensor(self._cardinality, dtype=torch.int64)

    def as_numpy_iterator(self) -> Iterator[Any]:
        """The elements with tensors as NumPy arrays (text as object arrays of `str`)."""
        return (_to_numpy(element) for element in self)

    # ----------------------------------------------------------------- transformations

    def map(self, map_func: Callable, num_parallel_calls: int | None = None,
            deterministic: bool | None = None, name: str | None = None) -> Dataset:
        """`map_func(*element)` for tuple elements, else `map_func(element)`, on each element.

        With `num_parallel_calls` (or `AUTOTUNE`, one per CPU) the calls run on that many
        threads, results kept in order; torch releases the GIL in its kernels, so layers and
        ops mapped over batches overlap with the training step.
        """
        workers = _parallelism(num_parallel_calls)
        source = self._make_iterator

        def iterate() -> Iterator[Any]:
            if workers == 1:
                for element in source():
                    yield _as_element(_call(map_func, element))
            else:
                yield from _parallel_map(map_func, source(), workers)

        return self._derive(iterate, self._cardinality)

    def filter(self, predicate: Callable, name: str | None = None) -> Dataset:
        """The elements for which `predicate(*element)` is true."""
        source = self._make_iterator

        def iterate() -> Iterator[Any]:
            for element in source():
                keep = _call(predicate, element)
                if isinstance(keep, torch.Tensor):
                    if keep.numel() != 1:
                        raise ValueError(
                            "A filter predicate must return one boolean per element. Received a "
                            f"tensor of shape {tuple(keep.shape)}."
                        )
                    keep = keep.item()
                if keep:
                    yield element

        return self._derive(iterate, UNKNOWN_CARDINALITY)

    def batch(self, batch_size: int, drop_remainder: bool = False,
              num_parallel_calls: int | None = None, deterministic: bool | None = None,
              name: str | None = None) -> Dataset:
        """Consecutive elements stacked along a new first axis; the last batch is smaller
        unless `drop_remainder`. On a batched dataset this batches the batches."""
        size = _positive(batch_size, "batch_size")
        source = self._make_iterator

        def iterate() -> Iterator[Any]:
            pending: list[Any] = []
            for element in source():
                pending.append(element)
                if len(pending) == size:
                    yield tree.map_structure(lambda *leaves: _stack(list(leaves)), *pending)
                    pending = []
            if pending and not drop_remainder:
                yield tree.map_structure(lambda *leaves: _stack(list(leaves)), *pending)

        count = self._cardinality
        if count >= 0:
            count = count // size if drop_remainder else -(-count // size)
        return self._derive(iterate, count)

    def unbatch(self, name: str | None = None) -> Dataset:
        """Each batch split back into its elements (along the first axis)."""
        source = self._make_iterator

        def iterate() -> Iterator[Any]:
            for element in source():
                yield from _unstack(element)

        count = INFINITE_CARDINALITY if self._cardinality == INFINITE_CARDINALITY \
            else UNKNOWN_CARDINALITY
        return self._derive(iterate, count)

    def take(self, count: int, name: str | None = None) -> Dataset:
        """The first `count` elements (all of them for -1 or more than there are)."""
        count = _count(count, "count")
        source = self._make_iterator

        def iterate() -> Iterator[Any]:
            if count == 0:
                return
            iterator = source()
            try:
                for index, element in enumerate(iterator):
                    yield element
                    if index + 1 == count:
                        return
            finally:
                _close(iterator)

        size = self._cardinality
        if count >= 0:
            size = count if size == INFINITE_CARDINALITY else \
                UNKNOWN_CARDINALITY if size == UNKNOWN_CARDINALITY else min(size, count)
        return self._derive(iterate, size)

    def skip(self, count: int, name: str | None = None) -> Dataset:
        """All but the first `count` elements (none for -1)."""
        count = _count(count, "count")
        source = self._make_iterator

        def iterate() -> Iterator[Any]:
            if count < 0:
                return
            for index, element in enumerate(source()):
                if index >= count:
                    yield element

        size = self._cardinality
        if count < 0:
            size = 0
        elif size >= 0:
            size = max(size - count, 0)
        return self._derive(iterate, size)

    def repeat(self, count: int | None = None, name: str | None = None) -> Dataset:
        """The elements `count` times over (forever for None or -1), each pass run afresh."""
        count = _count(count, "count", allow_none=True)
        forever = count is None or count < 0
        source = self._make_iterator

        def iterate() -> Iterator[Any]:
            passes = 0
            while forever or passes < count:
                produced = False
                for element in source():
                    produced = True
                    yield element
                passes += 1
                if not produced:
                    return  # repeating an empty dataset forever would hang

        size = self._cardinality
        if forever:
            size = 0 if size == 0 else INFINITE_CARDINALITY if size != UNKNOWN_CARDINALITY else size
        elif size >= 0:
            size *= count
        return self._derive(iterate, size)

    def shuffle(self, buffer_size: int, seed: int | None = None,
                reshuffle_each_iteration: bool = True, name: str | None = None) -> Dataset:
        """Elements drawn at random from a buffer of the next `buffer_size`, as `tf.data` does:
        a buffer at least the dataset's size gives a uniform shuffle. A new order every
        iteration (epoch) unless `reshuffle_each_iteration=False`; `seed` makes the sequence of
        orders reproducible (else it is drawn from NumPy's global generator, which
        `set_random_seed` seeds). On a batched dataset it shuffles whole batches."""
        size = _positive(buffer_size, "buffer_size")
        source = self._make_iterator
        state = {"iteration": 0, "base": seed}
        lock = threading.Lock()

        def iterate() -> Iterator[Any]:
            with lock:
                if state["base"] is None or (seed is None and reshuffle_each_iteration):
                    state["base"] = int(np.random.randint(2**31 - 1))
                rng = np.random.default_rng([state["base"], state["iteration"]])
                if reshuffle_each_iteration:
                    state["iteration"] += 1
            buffer: list[Any] = []
            for element in source():
                if len(buffer) < size:
                    buffer.append(element)
                    continue
                index = int(rng.integers(size))
                yield buffer[index]
                buffer[index] = element
            while buffer:
                index = int(rng.integers(len(buffer)))
                buffer[index], buffer[-1] = buffer[-1], buffer[index]
                yield buffer.pop()

        return self._derive(iterate, self._cardinality)

    def cache(self, filename: str = "", name: str | None = None) -> Dataset:
        """Keep the elements of the first complete pass in memory and replay them afterwards
        (a pass stopped early, e.g. by `take`, is not kept). Random maps before the cache are
        therefore drawn once. `filename` is accepted for Keras code but the cache stays in
        memory."""
        if filename:
            warnings.warn(
                f"Dataset.cache(filename={filename!r}) keeps the cache in memory; no file is "
                "written.", stacklevel=2)
        source = self._make_iterator
        stored: list[list[Any]] = []

        def iterate() -> Iterator[Any]:
            if stored:
                yield from stored[0]
                return
            filling = []
            for element in source():
                filling.append(element)
                yield element
            if not stored:
                stored.append(filling)

        return self._derive(iterate, self._cardinality)

    def prefetch(self, buffer_size: int, name: str | None = None) -> Dataset:
        """Produce up to `buffer_size` elements ahead on a background thread (`AUTOTUNE`: 2),
        so loading and mapping overlap with the consumer."""
        size = 2 if _count(buffer_size, "buffer_size") == AUTOTUNE else \
            _positive(buffer_size, "buffer_size")
        source = self._make_iterator
        return self._derive(lambda: _prefetch(source, size), self._cardinality)

    def concatenate(self, dataset: Dataset, name: str | None = None) -> Dataset:
        """This dataset's elements followed by `dataset`'s."""
        source = self._make_iterator

        def iterate() -> Iterator[Any]:
            yield from source()
            yield from dataset

        sizes = (self._cardinality, dataset._cardinality)
        size = INFINITE_CARDINALITY if INFINITE_CARDINALITY in sizes else \
            UNKNOWN_CARDINALITY if UNKNOWN_CARDINALITY in sizes else sum(sizes)
        return self._derive(iterate, size)

    def apply(self, transformation_func: Callable[[Dataset], Dataset]) -> Dataset:
        return transformation_func(self)


def _close(iterator: Iterable) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _parallel_map(fn: Callable, source: Iterator[Any], workers: int) -> Iterator[Any]:
    def work(element: Any) -> Any:
        return _as_element(_call(fn, element))

    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lamina-map")
    pending: collections.deque[Future] = collections.deque()
    try:
        for element in source:
            pending.append(executor.submit(work, element))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        _close(source)


_DONE = object()


def _prefetch(source: Callable[[], Iterator[Any]], size: int) -> Iterator[Any]:
    buffer: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = None
        try:
            iterator = source()
            for element in iterator:
                if not put((element, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # handed to the consumer, raised there
            put((_DONE, error))
        finally:
            if iterator is not None:
                _close(iterator)

    thread = threading.Thread(target=produce, name="lamina-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            element, error = buffer.get()
            if element is _DONE:
                if error is not None:
                    raise error
                return
            yield element
    finally:
        stop.set()
        thread.join()
