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
        # ascontiguousarray turns a 0-d array into shape (1,); keep the element's shape.
        return torch.from_numpy(np.ascontiguousarray(value).reshape(value.shape))
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

    @classmethod
    def from_generator(cls, generator: Callable[..., Iterable[Any]], output_types: Any = None,
                       output_shapes: Any = None, args: tuple | None = None,
                       output_signature: Any = None, name: str | None = None) -> Dataset:
        """The elements `generator(*args)` yields, called afresh for each iteration.

        `output_signature` is a (nested) structure of `TensorSpec` (or anything with `.shape`
        and `.dtype`, such as `tf.TensorSpec`); each yielded element must match its structure
        and shapes (None: any size) and is converted to its dtypes. The older
        `output_types`/`output_shapes` pair is read the same way.
        """
        if not callable(generator):
            raise TypeError(
                f"`generator` must be a Python callable that returns an iterator. Received: "
                f"{type(generator).__name__}. Pass the generator function, not its result "
                "(from_generator(gen), not from_generator(gen()))."
            )
        signature = _signature(output_types, output_shapes, output_signature)
        call_args = tuple(args) if args is not None else ()

        def iterate() -> Iterator[Any]:
            iterator = iter(generator(*call_args))
            try:
                for element in iterator:
                    yield _conform(element, signature)
            finally:
                _close(iterator)

        return cls(iterate, UNKNOWN_CARDINALITY)

    @staticmethod
    def zip(*args: Any, datasets: Any = None, name: str | None = None) -> Dataset:
        """Elements of several datasets side by side: `Dataset.zip(a, b)` or
        `Dataset.zip((a, b))` gives `(a_i, b_i)`, `Dataset.zip({"x": a, "y": b})` a dict; it
        ends with the shortest dataset."""
        if args and datasets is not None:
            raise TypeError("Pass the datasets to Dataset.zip() either positionally or as "
                            "`datasets=`, not both.")
        if datasets is None:
            if not args:
                raise TypeError("Dataset.zip() needs at least one dataset.")
            datasets = args[0] if len(args) == 1 else tuple(args)
        leaves = _dataset_leaves(datasets)

        def iterate() -> Iterator[Any]:
            iterators = [iter(dataset) for dataset in leaves]
            try:
                while True:
                    elements = []
                    for iterator in iterators:
                        try:
                            elements.append(next(iterator))
                        except StopIteration:
                            return
                    yield tree.pack_sequence_as(datasets, elements)
            finally:
                for iterator in iterators:
                    _close(iterator)

        sizes = [dataset._cardinality for dataset in leaves]
        finite = [size for size in sizes if size >= 0]
        size = UNKNOWN_CARDINALITY if UNKNOWN_CARDINALITY in sizes else \
            min(finite) if finite else INFINITE_CARDINALITY
        return Dataset(iterate, size)

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

    def padded_batch(self, batch_size: int, padded_shapes: Any = None,
                     padding_values: Any = None, drop_remainder: bool = False,
                     name: str | None = None) -> Dataset:
        """As `batch`, padding each component to a common shape first.

        `padded_shapes` gives each component's shape (a structure like the elements'; an int
        means a 1-D shape); its None (or -1) sizes, and every size when it is not given, become
        the largest in the batch. `padding_values` (one scalar for all components, or one per
        component) defaults to 0 for numbers and "" for text; it is cast to the component's dtype.
        """
        size = _positive(batch_size, "batch_size")
        source = self._make_iterator

        def pad_batch(pending: list[Any]) -> Any:
            first = pending[0]
            shapes = _per_component(first, padded_shapes, "padded_shapes", _is_shape_spec)
            fills = _per_component(first, padding_values, "padding_values", _is_scalar_spec)
            columns = zip(*(tree.flatten(element) for element in pending))
            batched = [_pad_and_stack(column, shape, fill)
                       for column, shape, fill in zip(columns, shapes, fills)]
            return tree.pack_sequence_as(first, batched)

        def iterate() -> Iterator[Any]:
            pending: list[Any] = []
            for element in source():
                pending.append(element)
                if len(pending) == size:
                    yield pad_batch(pending)
                    pending = []
            if pending and not drop_remainder:
                yield pad_batch(pending)

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


class TensorSpec:
    """The shape and dtype of one component of a generator's elements (`tf.TensorSpec`).

    Args:
        shape: a tuple of sizes, None for a size that varies; `None` for any rank.
        dtype: "float32", "int64", "bool", "string", ... (a torch or NumPy dtype also works).
    """

    def __init__(self, shape: Any, dtype: Any = "float32", name: str | None = None) -> None:
        self.shape = _shape_of_spec(shape, "shape")
        self.dtype = _dtype_name(dtype)
        self.name = name

    def __repr__(self) -> str:
        return f"TensorSpec(shape={self.shape}, dtype={self.dtype!r}, name={self.name!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TensorSpec) and (self.shape, self.dtype) == \
            (other.shape, other.dtype)

    __hash__ = None  # type: ignore[assignment]


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    name = getattr(dtype, "name", None)  # tf.DType and NumPy dtypes
    if isinstance(dtype, type) and issubclass(dtype, (np.generic, str, bytes, bool, int, float)):
        name = {str: "string", bytes: "string"}.get(dtype) or np.dtype(dtype).name
    name = dtype if isinstance(dtype, str) else name
    if name in ("str", "object", "unicode"):
        name = "string"
    if name == "string":
        return name
    try:
        np.dtype(name)
        getattr(torch, name)
    except (TypeError, AttributeError):
        raise TypeError(
            f"Unknown dtype {dtype!r}. Use a name such as 'float32', 'int64', 'bool' or "
            "'string', or a torch or NumPy dtype."
        ) from None
    return name


def _shape_of_spec(shape: Any, name: str) -> tuple | None:
    """A spec's shape as a tuple of ints and None (None: unknown rank)."""
    if shape is None:
        return None
    if hasattr(shape, "as_list"):  # tf.TensorShape
        shape = shape.as_list() if getattr(shape, "rank", 0) is not None else None
        if shape is None:
            return None
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, torch.Tensor):
        shape = shape.tolist()
    if not isinstance(shape, (tuple, list, torch.Size)) or not all(
            d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                          and d >= -1) for d in shape):
        raise ValueError(
            f"`{name}` must be a shape: a tuple of sizes, None (or -1) for a size that varies. "
            f"Received: {shape!r}."
        )
    return tuple(None if d is None or d == -1 else int(d) for d in shape)


def _is_shape_spec(value: Any) -> bool:
    return value is None or hasattr(value, "as_list") or isinstance(
        value, (int, np.integer, list, torch.Size, torch.Tensor)) or (
        isinstance(value, tuple) and all(d is None or isinstance(d, (int, np.integer))
                                         for d in value))


def _is_scalar_spec(value: Any) -> bool:
    return not isinstance(value, (tuple, list, dict))


def _per_component(element: Any, spec: Any, name: str, is_leaf_spec: Callable) -> list:
    """One entry of `spec` per component of `element` (in `tree.flatten` order): `spec`
    follows the element's structure, or one leaf spec serves every component."""
    if not isinstance(element, (tuple, dict)):
        if not is_leaf_spec(spec) and isinstance(spec, (tuple, list, dict)):
            raise ValueError(
                f"`{name}` {spec!r} has several entries, but the elements have one component.")
        return [spec]
    if is_leaf_spec(spec) and (spec is None or name == "padding_values"):
        return [spec] * len(tree.flatten(element))
    if isinstance(element, dict):
        if not isinstance(spec, dict) or set(spec) != set(element):
            raise ValueError(
                f"`{name}` must have the element's keys {sorted(element)}. Received: {spec!r}.")
        return [entry for key in sorted(element)
                for entry in _per_component(element[key], spec[key], name, is_leaf_spec)]
    if not isinstance(spec, (tuple, list)) or len(spec) != len(element):
        raise ValueError(
            f"`{name}` must have one entry per component of the elements ({len(element)}), "
            f"as a tuple. Received: {spec!r}."
        )
    return [entry for part, sub in zip(element, spec)
            for entry in _per_component(part, sub, name, is_leaf_spec)]


def _pad_and_stack(leaves: list[Any], padded_shape: Any, fill: Any) -> Any:
    ranks = {leaf.ndim for leaf in leaves}
    if len(ranks) > 1:
        raise ValueError(
            f"padded_batch needs components of one rank; received ranks {sorted(ranks)}.")
    rank = ranks.pop()
    target = [max(leaf.shape[axis] for leaf in leaves) for axis in range(rank)]
    if padded_shape is not None:
        wanted = _shape_of_spec(padded_shape, "padded_shapes")
        if len(wanted) != rank:
            raise ValueError(
                f"`padded_shapes` {wanted} has rank {len(wanted)}, but the component has rank "
                f"{rank} (shape {tuple(leaves[0].shape)}). Give one size per axis."
            )
        for axis, size in enumerate(wanted):
            if size is not None:
                if target[axis] > size:
                    raise ValueError(
                        f"Attempted to pad to a smaller size than the input element: axis {axis} "
                        f"has size {target[axis]}, more than padded_shapes' {size}. Raise the "
                        "padded size, or use None to pad to the longest in each batch."
                    )
                target[axis] = size
    if isinstance(leaves[0], StringTensor):
        fill = "" if fill is None else fill
        if not isinstance(fill, str):
            raise TypeError(f"A text component is padded with a string. Received: {fill!r}.")
        out = np.full([len(leaves)] + target, fill, dtype=object)
        for row, leaf in enumerate(leaves):
            out[(row,) + tuple(slice(0, d) for d in leaf.shape)] = leaf.view(np.ndarray)
        return out.view(StringTensor)
    if isinstance(fill, torch.Tensor):
        fill = fill.item()
    if isinstance(fill, (str, bytes)):
        raise TypeError(
            f"A numeric component ({leaves[0].dtype}) cannot be padded with the string {fill!r}.")
    out = torch.full([len(leaves)] + target, 0 if fill is None else fill,
                     dtype=leaves[0].dtype)
    for row, leaf in enumerate(leaves):
        out[(row,) + tuple(slice(0, d) for d in leaf.shape)] = leaf
    return out


def _dataset_leaves(structure: Any) -> list[Dataset]:
    if isinstance(structure, list):
        raise TypeError(
            "The argument to `Dataset.zip()` must be a (nested) structure of Dataset objects; "
            "a Python list is not supported (as in tf.data): use a tuple instead."
        )
    if isinstance(structure, Dataset):
        return [structure]
    if isinstance(structure, tuple):
        return [leaf for part in structure for leaf in _dataset_leaves(part)]
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in _dataset_leaves(structure[key])]
    raise TypeError(
        "The argument to `Dataset.zip()` must be a (nested) structure of Dataset objects. "
        f"Received a {type(structure).__name__}: {structure!r:.80}."
    )


def _signature(output_types: Any, output_shapes: Any, output_signature: Any) -> Any:
    if output_signature is not None:
        if output_types is not None or output_shapes is not None:
            raise TypeError("Pass either `output_signature` or `output_types` (with "
                            "`output_shapes`), not both.")
        return _specs(output_signature)
    if output_types is None:
        raise TypeError(
            "Dataset.from_generator() needs the elements' signature: pass "
            "output_signature=TensorSpec(shape, dtype) (a tuple or dict of them for tuple or "
            "dict elements)."
        )
    types = _specs(output_types, leaf=lambda dtype: TensorSpec(None, dtype))
    if output_shapes is None:
        return types
    flat_types = _flat_specs(types)
    flat_shapes = _per_component(_skeleton(types), output_shapes, "output_shapes",
                                 _is_shape_spec)
    return _rebuild(types, [TensorSpec(shape, spec.dtype)
                            for spec, shape in zip(flat_types, flat_shapes)])


def _specs(structure: Any, leaf: Callable | None = None) -> Any:
    """A signature as tuples, dicts and TensorSpecs (a list is read as a tuple)."""
    if isinstance(structure, (tuple, list)):
        return tuple(_specs(part, leaf) for part in structure)
    if isinstance(structure, dict):
        return {key: _specs(value, leaf) for key, value in structure.items()}
    if leaf is not None:
        return leaf(structure)
    if isinstance(structure, TensorSpec):
        return structure
    if hasattr(structure, "shape") and hasattr(structure, "dtype"):
        return TensorSpec(structure.shape, structure.dtype)
    raise TypeError(
        "`output_signature` must be a (nested) structure of TensorSpec. Received a "
        f"{type(structure).__name__}: {structure!r:.80}."
    )


def _skeleton(signature: Any) -> Any:
    """The signature with each spec replaced by a placeholder leaf (for _per_component)."""
    if isinstance(signature, tuple):
        return tuple(_skeleton(part) for part in signature)
    if isinstance(signature, dict):
        return {key: _skeleton(value) for key, value in signature.items()}
    return 0


def _flat_specs(signature: Any) -> list[TensorSpec]:
    if isinstance(signature, tuple):
        return [spec for part in signature for spec in _flat_specs(part)]
    if isinstance(signature, dict):
        return [spec for key in sorted(signature) for spec in _flat_specs(signature[key])]
    return [signature]


def _rebuild(signature: Any, flat: list) -> Any:
    values = iter(flat)

    def build(node: Any) -> Any:
        if isinstance(node, tuple):
            return tuple(build(part) for part in node)
        if isinstance(node, dict):
            built = {key: build(node[key]) for key in sorted(node)}
            return {key: built[key] for key in node}
        return next(values)

    return build(signature)


def _conform(element: Any, signature: Any) -> Any:
    """A yielded element converted to its signature, or an error naming the mismatch."""
    if isinstance(signature, tuple):
        if isinstance(element, list):
            element = tuple(element)  # tf.data accepts a list where a tuple is expected
        if not isinstance(element, tuple) or len(element) != len(signature):
            raise _structure_error(element, signature)
        return tuple(_conform(part, spec) for part, spec in zip(element, signature))
    if isinstance(signature, dict):
        if not isinstance(element, dict) or set(element) != set(signature):
            raise _structure_error(element, signature)
        return {key: _conform(element[key], signature[key]) for key in signature}
    if isinstance(element, (tuple, dict)):
        raise _structure_error(element, signature)
    if isinstance(element, torch.Tensor):
        element = element.detach().cpu().numpy()
    try:
        if signature.dtype == "string":
            value = np.asarray(element)
            if value.size == 0:
                converted = np.empty(value.shape, dtype=object).view(StringTensor)
            elif is_string_array(value):
                converted = as_strings(value)
            else:
                raise TypeError("not text")
        else:
            converted = torch.from_numpy(np.array(element, dtype=np.dtype(signature.dtype)))
    except (TypeError, ValueError):
        raise TypeError(
            "`generator` yielded an element that could not be converted to the expected type. "
            f"The expected type was {signature.dtype}, but the yielded element was "
            f"{element!r:.80}."
        ) from None
    expected = signature.shape
    shape = tuple(converted.shape)
    if expected is not None and (len(shape) != len(expected) or any(
            want is not None and want != got for want, got in zip(expected, shape))):
        raise ValueError(
            f"`generator` yielded an element of shape {shape} where an element of shape "
            f"{expected} was expected (None: any size)."
        )
    return converted


def _structure_error(element: Any, signature: Any) -> TypeError:
    return TypeError(
        "`generator` yielded an element that did not match the expected structure. The "
        f"expected structure was {signature!r:.200}, but the yielded element was "
        f"{element!r:.80}."
    )


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
