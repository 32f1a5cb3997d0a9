"""Turn whatever `fit`/`evaluate`/`predict` receive into batches on the model's device.

In-memory data (numpy arrays, tensors, lists/dicts of them) is moved to the device once and
batched by slicing (a view) or by indexing with a shuffled permutation: no DataLoader, no copy
per sample, no host sync. Everything else that yields batches (a torch
`DataLoader`, a map-style `Dataset`, a `PyDataset`, a generator) is iterated as it is, each batch
moved to the device.
"""

from __future__ import annotations

import math
import types
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from lamina import config, tree
from lamina._strings import StringTensor, as_strings, is_string_array
from lamina.errors import DataError
from lamina.layers.preprocessing.hashing import Hashing
from lamina.layers.preprocessing.lookup import StringLookup
from lamina.layers.preprocessing.text_vectorization import TextVectorization
from lamina.training.validation import check_array_dtype
from lamina.utils.py_dataset import PyDataset, iterate_batches

Tensor = torch.Tensor


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """`(x,)`, `(x, y)` or `(x, y, sample_weight)` -> the three parts (missing ones None)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(
        "Data is expected to be `(x,)`, `(x, y)` or `(x, y, sample_weight)`. "
        f"Received a tuple of length {len(data)}."
    )


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> tuple:
    if y is None:
        return (x,)
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


# In data a None is an absent part (no y, no sample_weight), never a value: it is skipped.
def map_structure(fn: Callable[[Any], Any], structure: Any) -> Any:
    """`fn` applied to every array of `structure`; `None`s stay `None`."""
    if isinstance(structure, Tensor):
        return fn(structure)  # the usual single-input batch: no walk (~5 us a call)
    return tree.map_structure(fn, structure, none_is_leaf=False)


def flatten(structure: Any) -> list:
    """The arrays of `structure` (dicts in sorted-key order), without its `None`s."""
    return [value for value in tree.flatten(structure) if value is not None]


def to_tensor(value: Any, device: torch.device | None = None, non_blocking: bool = False,
              what: str = "inputs", strings: bool = False) -> Tensor | StringTensor:
    """An array-like as a tensor: floats in floatx (Keras casts float64 inputs), ints kept.
    With `strings`, text becomes a StringTensor on the host (string layers look it up there)."""
    if isinstance(value, Tensor):
        tensor = value
        if tensor.dtype == torch.float64 and config.floatx() != "float64":
            tensor = tensor.to(config.torch_dtype(None))
    else:
        try:
            array = np.asarray(value)
        except ValueError as error:  # ragged nested lists
            raise DataError(
                f"`{what}` must be a rectangular numeric array; numpy could not make one "
                f"({error}). Pad sequences with lamina.preprocessing.sequence.pad_sequences."
            ) from error
        if strings and is_string_array(array):
            return as_strings(array)
        check_array_dtype(array, what)
        if array.dtype.kind == "u" and array.dtype != np.uint8:
            array = array.astype(np.int64)
        if not array.flags.writeable:
            array = _writable_view(array)
        # from_numpy, then a cast only when needed: as_tensor(array, dtype) cost a tenth of
        # predict at batch 1.
        try:
            tensor = torch.from_numpy(array)
        except ValueError:  # a reversed view (x[::-1]) or big-endian data: torch takes a copy
            tensor = torch.from_numpy(
                np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")))
        if tensor.is_floating_point():
            dtype = config.torch_dtype(None)
            if tensor.dtype != dtype:
                tensor = tensor.to(dtype)
    if device is not None and tensor.device != device:
        tensor = tensor.to(device, non_blocking=non_blocking)
    return tensor


def _writable_view(array: np.ndarray) -> np.ndarray:
    """The same memory as `array`, flagged writable.

    torch has no read-only tensors: from_numpy warns on a read-only array (a memmap opened with
    mode 'r', a `setflags(write=False)` array), which fails suites that treat warnings as errors.
    Copying would double the memory of a large memmap; nothing in fit, evaluate or predict writes
    to its inputs, so the tensor shares the memory, as from_numpy would after its warning."""
    interface = dict(array.__array_interface__)
    interface["data"] = (interface["data"][0], False)  # (address, read-only)
    # The namespace becomes the view's base and keeps `array` (and its mapping) alive.
    return np.asarray(types.SimpleNamespace(__array_interface__=interface, base=array))


def batch_to_device(batch: Any, device: torch.device, strings: bool = False) -> Any:
    non_blocking = device.type == "cuda"
    return map_structure(lambda v: to_tensor(v, device, non_blocking, strings=strings), batch)


def takes_strings(model: Any) -> bool:
    """Whether a model reads text: a `dtype="string"` Input, or a StringLookup,
    TextVectorization or Hashing layer inside (Sequential and subclassed models)."""
    inputs = getattr(model, "_flat_inputs", None) or []
    return any(getattr(t, "dtype", None) == "string" for t in inputs) or any(
        isinstance(m, (StringLookup, TextVectorization, Hashing)) for m in model.modules())


def may_hold_text(x: Any) -> bool:
    """Whether `x` can hold text, so that asking the model whether it reads text
    (`takes_strings`, a walk over its modules) is worth it: a numeric array or tensor cannot."""
    if isinstance(x, Tensor):
        return False
    return not (isinstance(x, np.ndarray) and x.dtype.kind in "biufc")


def _tensors(structure: Any, device: torch.device, what: str, strings: bool = False) -> Any:
    # One array, the common case, skips the structure walk (a third of predict's cost at batch 1).
    if structure is None:
        return None
    if isinstance(structure, (Tensor, np.ndarray)):
        return to_tensor(structure, device, what=what, strings=strings)
    return map_structure(lambda v: to_tensor(v, device, what=what, strings=strings), structure)


def _numeric_array(value: Any) -> bool:
    return isinstance(value, Tensor) or (isinstance(value, np.ndarray)
                                         and value.dtype.kind in "biuf")


def single_batch(x: Any, device: torch.device, batch_size: int | None = None) -> Any:
    """`x` as one batch on `device` when it is in-memory numeric data (an array, or a list or
    dict of them) of at most `batch_size` samples (any number when None): a serving loop's
    `predict(sample)` then skips the adapter, the slicing and the concatenation. None for
    anything else (text, Python lists, an empty or a scalar array, more samples), which the
    general path batches or refuses with its usual errors."""
    if isinstance(x, (Tensor, np.ndarray)):
        if not _numeric_array(x) or not x.ndim or not 0 < len(x) <= (batch_size or len(x)):
            return None
        return to_tensor(x, device, what="x")
    if not isinstance(x, (list, tuple, dict)) or not x:
        return None
    leaves = tree.flatten(x)
    if not all(_numeric_array(v) and v.ndim for v in leaves):
        return None
    tensors = _tensors(x, device, "x")
    count = _num_samples(tensors, "x")
    return tensors if 0 < count <= (batch_size or count) else None


def _num_samples(structure: Any, what: str) -> int:
    if isinstance(structure, Tensor) and structure.ndim:
        return len(structure)
    if any(v.ndim == 0 for v in flatten(structure)):
        raise DataError(
            f"{what} holds a scalar where an array with one row per sample is expected (a list "
            "is read as several inputs, one array each). Pass a numpy array, e.g. "
            "np.asarray(data, dtype='float32'); pad ragged sequences with "
            "lamina.preprocessing.sequence.pad_sequences."
        )
    lengths = {len(v) for v in flatten(structure)}
    if len(lengths) > 1:
        raise DataError(
            f"All arrays in {what} must have the same number of samples. Received lengths "
            f"{sorted(lengths)}."
        )
    return lengths.pop() if lengths else 0


class ArrayAdapter:
    """Batches in-memory data held on the device."""

    def __init__(self, x: Any, y: Any, sample_weight: Any, batch_size: int, shuffle: Any,
                 device: torch.device, steps: int | None = None, strings: bool = False):
        self.x = _tensors(x, device, "x", strings)
        self.y = _tensors(y, device, "y")
        self.sample_weight = _tensors(sample_weight, device, "sample_weight")
        self.num_samples = _num_samples(self.x, "x")
        if self.y is not None:
            y_samples = _num_samples(self.y, "y")
            if y_samples != self.num_samples:
                raise DataError(
                    f"x and y must have the same number of samples. Received: x has "
                    f"{self.num_samples} samples, y has {y_samples}."
                )
        if self.sample_weight is not None:
            weights = _num_samples(self.sample_weight, "sample_weight")
            if weights != self.num_samples:
                raise DataError(
                    "sample_weight must have one weight per sample of x. Received "
                    f"{weights} weights for {self.num_samples} samples."
                )
        if self.num_samples == 0:
            raise DataError("The data is empty: x has 0 samples. Pass at least one sample.")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.device = device
        self.steps = steps
        self.num_batches = math.ceil(self.num_samples / batch_size)
        if steps is not None:
            self.num_batches = min(self.num_batches, steps) if steps > 0 else self.num_batches

    # Where an interrupted epoch left off can be found again: the order comes from the RNG.
    resumable = True

    def generators(self) -> list[torch.Generator]:
        """The generators the epoch's order is drawn from besides torch's global one."""
        return []

    def batches(self, skip: int = 0) -> Iterator[tuple]:
        """The epoch's batches from batch `skip` on.

        The shuffle order is drawn when this is called, not at the first batch, so a resumed
        run that restores the RNG state of the epoch's start draws the same order here and
        then continues at batch `skip` (see BackupAndRestore).
        """
        return map(_slicer(self.x, self.y, self.sample_weight), self.indices(skip))

    def indices(self, skip: int = 0) -> list:
        """The rows of each of the epoch's batches from batch `skip` on (a slice, or a tensor of
        shuffled indices), drawn as `batches` draws them; distributed training shards them."""
        n, size = self.num_samples, self.batch_size
        if self.shuffle and self.shuffle != "batch":
            order = torch.randperm(n, device=self.device)
            return [order[step * size:(step + 1) * size] for step in range(skip, self.num_batches)]
        starts = list(range(0, n, size))
        if self.shuffle == "batch":
            starts = [starts[i] for i in torch.randperm(len(starts)).tolist()]
        return [slice(start, start + size) for start in starts[skip:self.num_batches]]


def _slicer(x: Any, y: Any, sample_weight: Any):
    # The common case (one x, one y) gets a closure with no structure walking.
    if isinstance(x, Tensor) and (y is None or isinstance(y, Tensor)) and sample_weight is None:
        if y is None:
            return lambda index: (x[index],)
        return lambda index: (x[index], y[index])

    def take(index: Any) -> tuple:
        pick = lambda v: v[_host_index(index)] if isinstance(v, StringTensor) else v[index]  # noqa: E731
        return pack_x_y_sample_weight(map_structure(pick, x), map_structure(pick, y),
                                      map_structure(pick, sample_weight))

    return take


def _host_index(index: Any) -> Any:
    return index.cpu().numpy() if isinstance(index, Tensor) else index


class IterableAdapter:
    """Batches from an iterable of `(x, y[, sample_weight])` (DataLoader, PyDataset, generator)."""

    def __init__(self, data: Iterable, device: torch.device, steps: int | None = None,
                 strings: bool = False):
        self.data = data
        self.strings = strings
        self.device = device
        self.steps = steps
        # A generator can be iterated only once; a PyDataset (even one that is also an iterator,
        # as Keras's image iterators are) is indexed afresh every epoch.
        self._one_shot = not _is_py_dataset(data) and iter(data) is data
        self._iterator: Iterator | None = None
        try:
            self.num_batches = steps if steps is not None else len(data)  # type: ignore[arg-type]
        except TypeError:
            self.num_batches = None

    def _source(self) -> Iterator:
        if isinstance(self.data, PyDataset):
            return iterate_batches(self.data)
        if self._one_shot:
            return self.data
        return iter(self.data)

    @property
    def resumable(self) -> bool:
        """Whether batch k of an epoch can be found again: a generator's position cannot."""
        return not self._one_shot

    def generators(self) -> list[torch.Generator]:
        """A DataLoader's own generators (its sampler's shuffle draws from them)."""
        found = []
        for owner in (self.data, getattr(self.data, "sampler", None),
                      getattr(getattr(self.data, "batch_sampler", None), "sampler", None)):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
                found.append(generator)
        return found

    def batches(self, skip: int = 0) -> Iterator[Any]:
        """The epoch's batches from batch `skip` on. A re-iterable source is advanced past the
        first `skip` batches here (read, not moved to the device), so every random draw of the
        data pipeline happens as in an uninterrupted epoch; a generator cannot go back, so it
        continues from where it is."""
        iterator = self._source() if not self._one_shot or self._iterator is None else self._iterator
        if self._one_shot:
            self._iterator = iterator
        elif skip:
            iterator = iter(iterator)
            for _ in range(skip):
                if next(iterator, _END) is _END:
                    break
        return self._batches(iterator, skip)

    def _batches(self, iterator: Iterator, produced: int) -> Iterator[Any]:
        resumed = produced
        if self.steps is not None and produced >= self.steps:
            return
        for batch in iterator:
            yield batch_to_device(_as_tuple(batch), self.device, self.strings)
            produced += 1
            if self.steps is not None and produced >= self.steps:
                return
        if produced == resumed == 0:
            raise DataError(
                "The data produced no batches. An exhausted generator needs steps_per_epoch (and a "
                "generator that loops), or pass a fresh iterable each call."
            )


_END = object()


def _as_tuple(batch: Any) -> Any:
    if isinstance(batch, list) and len(batch) in (2, 3):
        return tuple(batch)
    if isinstance(batch, dict) and "x" in batch:
        return pack_x_y_sample_weight(batch["x"], batch.get("y"), batch.get("sample_weight"))
    return batch if isinstance(batch, tuple) else (batch,)


def is_array_like(value: Any) -> bool:
    if isinstance(value, (np.ndarray, Tensor)):
        return True
    if isinstance(value, (list, tuple)):
        return bool(value) and all(is_array_like(v) or isinstance(v, (int, float, list))
                                   for v in value) and not isinstance(value[0], tuple)
    if isinstance(value, dict):
        return all(is_array_like(v) for v in value.values())
    return False


def make_adapter(x: Any, y: Any = None, sample_weight: Any = None, batch_size: int | None = None,
                 shuffle: Any = False, device: torch.device | None = None, steps: int | None = None,
                 for_what: str = "fit", strings: bool = False):
    """The adapter for one call's data, with Keras's rules on which arguments go together.
    `strings`: the model reads text (see `takes_strings`), so text in x is kept as text."""
    device = device or torch.device("cpu")
    if strings and isinstance(x, list) and x and all(isinstance(v, str) for v in x):
        x = as_strings(x)  # one text input, not a list of one-string inputs
    if x is None:
        raise ValueError(f"`{for_what}` needs data: x is None.")
    if isinstance(x, Dataset) and not isinstance(x, IterableDataset) and not hasattr(x, "__next__") \
            and not _is_py_dataset(x):
        if y is not None:
            raise ValueError("When x is a torch Dataset, y must be None (the Dataset yields both).")
        x = DataLoader(x, batch_size=batch_size or 32, shuffle=bool(shuffle))
        return IterableAdapter(x, device, steps, strings)
    if isinstance(x, (DataLoader, IterableDataset)) or _is_py_dataset(x) or _is_iterator(x):
        if y is not None:
            raise ValueError(
                f"`y` must be None when x is a {type(x).__name__}: it yields (x, y) batches itself."
            )
        if batch_size is not None and not isinstance(x, DataLoader) and _is_py_dataset(x):
            raise ValueError("Do not pass batch_size with a PyDataset: it makes its own batches.")
        return IterableAdapter(x, device, steps, strings)
    return ArrayAdapter(x, y, sample_weight, batch_size or 32, shuffle, device, steps, strings)


def _is_py_dataset(x: Any) -> bool:
    return isinstance(x, PyDataset)


def _is_iterator(x: Any) -> bool:
    return hasattr(x, "__next__") and hasattr(x, "__iter__")


def split_validation(x: Any, y: Any, sample_weight: Any, validation_split: float):
    """Keras's validation_split: the last fraction of the samples, taken before shuffling."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError(
            f"`validation_split` must be in (0, 1). Received: validation_split={validation_split}."
        )
    if not is_array_like(x):
        raise ValueError(
            "validation_split is only supported for in-memory arrays or tensors. For a "
            f"{type(x).__name__}, pass validation_data instead."
        )
    n = _num_samples(x, "x")
    split_at = int(n * (1.0 - validation_split))
    if split_at == 0 or split_at == n:
        raise DataError(
            f"validation_split={validation_split} of {n} samples leaves "
            f"{split_at} for training and {n - split_at} for validation; both need at least one. "
            "Use more data or a different split."
        )
    head = lambda v: v[:split_at]  # noqa: E731
    tail = lambda v: v[split_at:]  # noqa: E731
    train = (map_structure(head, x), map_structure(head, y), map_structure(head, sample_weight))
    validation = (map_structure(tail, x), map_structure(tail, y), map_structure(tail, sample_weight))
    return train, validation
