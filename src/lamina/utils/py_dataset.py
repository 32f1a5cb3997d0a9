"""`PyDataset` (Keras 3's batch-indexed dataset) and the prefetching iterator `fit` reads it with."""

from __future__ import annotations

import collections
import ctypes
import functools
import itertools
import mmap
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.reduction
import os
import pickle
import shutil
import tempfile
import weakref
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator

import numpy as np
import torch

from lamina import tree


class PyDataset:
    """Base class for a dataset that returns whole batches by index, as `keras.utils.PyDataset`.

    Subclasses implement `__getitem__(index)` (one complete batch, e.g. `(x, y)`) and
    `__len__()` (the number of batches), or the `num_batches` property returning `None` for an
    infinite dataset. `on_epoch_begin()` / `on_epoch_end()` run around every epoch (reshuffle
    there).

    Args:
        workers: threads (or processes) that load batches ahead of the training step. 0 loads
            each batch in the consumer's thread when it is asked for.
        use_multiprocessing: load in worker processes instead of threads, for Python-heavy
            `__getitem__`. The dataset is pickled to each process once per epoch, so it must be
            picklable and its class importable (defined at module level). NumPy arrays of
            512 KiB or more come back in shared memory, as a DataLoader's tensors do.
        max_queue_size: the most batches loaded ahead (in flight or waiting) at any time.

    >>> class Squares(PyDataset):
    ...     def __len__(self):
    ...         return 3
    ...     def __getitem__(self, index):
    ...         return np.array([index**2])
    >>> [int(batch[0]) for batch in iterate_batches(Squares(workers=2))]
    [0, 1, 4]
    """

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> None:
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    # Properties rather than plain attributes so that a subclass that forgot
    # `super().__init__()` still gets Keras's defaults, and so every assignment is validated.
    @property
    def workers(self) -> int:
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(
                "`workers` must be a non-negative integer (0 loads batches in the calling "
                f"thread). Received: workers={value!r}."
            )
        self._workers = int(value)

    @property
    def use_multiprocessing(self) -> bool:
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(
                f"`use_multiprocessing` must be True or False. Received: use_multiprocessing={value!r}."
            )
        self._use_multiprocessing = bool(value)

    @property
    def max_queue_size(self) -> int:
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                f"`max_queue_size` must be a positive integer. Received: max_queue_size={value!r}."
            )
        self._max_queue_size = int(value)

    def __getitem__(self, index: int) -> Any:
        """The batch at position `index`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `__getitem__(self, index)` returning one batch."
        )

    @property
    def num_batches(self) -> int | None:
        """Number of batches, or None for an infinite dataset; `len(self)` by default."""
        if hasattr(self, "__len__"):
            return len(self)  # type: ignore[arg-type]
        raise NotImplementedError(
            f"{type(self).__name__} must implement `__len__` (the number of batches) or the "
            "`num_batches` property (None for an infinite dataset)."
        )

    def on_epoch_begin(self) -> None:
        """Called at the start of every epoch."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch."""

    def __iter__(self) -> Iterator[Any]:
        # Without this, Python's legacy sequence protocol would call __getitem__ past the end
        # until an IndexError that most user datasets never raise.
        num_batches = self.num_batches
        indices = itertools.count() if num_batches is None else range(num_batches)
        for index in indices:
            yield self[index]


Sequence = PyDataset  # the Keras 2 name, kept for legacy code


# In a worker process: the file the dataset of the current epoch was read from, and the dataset.
_PROCESS_DATASET: tuple[str, Any] = ("", None)


def _get_in_worker_process(path: str, index: int) -> Any:
    global _PROCESS_DATASET
    if _PROCESS_DATASET[0] != path:
        with open(path, "rb") as file:
            _PROCESS_DATASET = (path, pickle.load(file))
    try:
        batch = _PROCESS_DATASET[1][index]
    except Exception as error:
        # An exception whose `__init__` takes other arguments than its `args` cannot be
        # unpickled, and failing in the parent would break the whole pool instead of raising
        # the user's error; the traceback sent back still shows where it was raised.
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:
            raise RuntimeError(
                f"PyDataset.__getitem__({index}) raised {type(error).__module__}."
                f"{type(error).__qualname__}: {error} (re-raised as a RuntimeError because that "
                "exception cannot be pickled back from the worker process)."
            ) from error
        raise
    return tree.map_structure(_to_shared_memory, batch)


# Smaller arrays are pickled with the rest of the batch: a fresh segment's page faults and the
# socket round trip that fetches its descriptor cost more CPU than pickling below ~512 KiB
# (measured, worker and parent together: 64 KiB 1.3 vs 0.7 ms, 512 KiB 2.1 vs 2.4 ms,
# 1 MiB 3.4 vs 5.4 ms).
_SHARED_MEMORY_MIN_BYTES = 1 << 19


class _SharedArray:
    """A NumPy array on its way to the parent process in a shared-memory segment.

    The worker copies the array once into a fresh segment (unlinked at once, so nothing is left
    in /dev/shm whatever happens); pickling passes the segment's file descriptor as a
    DataLoader's workers do, and the parent maps the segment as its array instead of copying
    the bytes through a pipe several times."""

    __slots__ = ("storage", "dtype", "shape")

    def __init__(self, storage: torch.UntypedStorage, dtype: np.dtype,
                 shape: tuple[int, ...]) -> None:
        self.storage, self.dtype, self.shape = storage, dtype, shape

    def __reduce__(self) -> tuple:
        descriptor, size = self.storage._share_fd_cpu_()
        return _map_shared_array, (multiprocessing.reduction.DupFd(descriptor), size,
                                   self.dtype, self.shape)


def _to_shared_memory(leaf: Any) -> Any:
    # Subclasses (masked arrays, memmaps) and object arrays keep their own pickling; Windows
    # cannot pass descriptors this way.
    if type(leaf) is not np.ndarray or leaf.dtype.hasobject or os.name != "posix" \
            or leaf.nbytes < _SHARED_MEMORY_MIN_BYTES:
        return leaf
    try:
        storage = torch.UntypedStorage._new_using_fd_cpu(leaf.nbytes)
    except RuntimeError:  # /dev/shm full (torch reserves the pages up front): pickle instead
        return leaf
    segment = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
    np.copyto(segment.view(leaf.dtype).reshape(leaf.shape), leaf)
    return _SharedArray(storage, leaf.dtype, leaf.shape)


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


def _map_shared_array(descriptor: Any, size: int, dtype: np.dtype,
                      shape: tuple[int, ...]) -> np.ndarray:
    """In the parent: the worker's segment mapped as an array, unmapped when the last view of
    it is collected.

    mmap is called directly because a torch storage or Python's `mmap` would keep a file
    descriptor open for as long as the array lives: a caller keeping a few thousand batches
    would run out of descriptors ("Too many open files")."""
    libc = _libc()
    fd = descriptor.detach()
    try:
        address = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    finally:
        os.close(fd)
    if address is None or address == ctypes.c_void_p(-1).value:
        error = ctypes.get_errno()
        raise OSError(error, f"Could not map a {size}-byte batch array sent by a PyDataset "
                             f"worker process: {os.strerror(error)}.")
    buffer = (ctypes.c_char * size).from_address(address)
    # Not at exit: an array still referenced then would point at unmapped memory while the
    # interpreter tears down; the kernel unmaps everything when the process ends anyway.
    weakref.finalize(buffer, libc.munmap, address, size).atexit = False
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _worker_context() -> multiprocessing.context.BaseContext:
    """forkserver where the platform has it, else spawn; never plain fork, since forking a
    process that already runs torch's or our own threads can deadlock the child.

    A spawned worker imports torch and Lamina afresh (seconds under load); forkserver's server
    imports them once, with this module preloaded, and forks each worker from it in
    milliseconds, so every new dataset's pool (validation data, a second model) starts fast."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The preload list is process-wide: add to it rather than replace what others asked for.
    preload = list(getattr(multiprocessing.forkserver._forkserver, "_preload_modules",
                           ["__main__"]))
    if __name__ not in preload:
        context.set_forkserver_preload([*preload, __name__])
    return context


def _start_worker_process() -> None:
    # One intra-op thread per worker, as a DataLoader's workers have: torch's default (one per
    # core) in each of N workers runs N x cores threads for augmentations on tensors, which
    # spin against each other and against the training step. A __getitem__ that wants more can
    # call torch.set_num_threads itself.
    torch.set_num_threads(1)


class _ProcessPool:
    """Worker processes kept for the life of one dataset. Starting a worker imports torch: a
    pool made per epoch ran at 0.03x a DataLoader with persistent workers on a JPEG folder
    (bench/input_pipeline.py). Each epoch the dataset is pickled once to a file that every
    worker reads once, so changes made in `on_epoch_end` reach the workers."""

    def __init__(self, workers: int) -> None:
        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=_worker_context(),
                                            initializer=_start_worker_process)
        self.workers = workers
        self.folder = tempfile.mkdtemp(prefix="lamina-pydataset-")
        self.epochs = 0

    def epoch_file(self, dataset: Any) -> str:
        self.epochs += 1
        path = os.path.join(self.folder, f"epoch-{self.epochs}.pkl")
        with open(path, "wb") as file:
            pickle.dump(dataset, file, protocol=pickle.HIGHEST_PROTOCOL)
        stale = os.path.join(self.folder, f"epoch-{self.epochs - 1}.pkl")
        if os.path.exists(stale):
            os.remove(stale)
        return path

    @staticmethod
    def close(executor: ProcessPoolExecutor, folder: str) -> None:
        executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(folder, ignore_errors=True)


# Live pools by id of their dataset; an entry leaves (and its processes end) when the dataset is
# collected or at exit.
_POOLS: dict[int, _ProcessPool] = {}


def _process_pool(dataset: Any, workers: int) -> tuple[_ProcessPool, bool]:
    """The dataset's pool and whether it outlives this epoch (False: the dataset cannot be
    weakly referenced, so nothing would tell when to end the processes)."""
    pool = _POOLS.get(id(dataset))
    if pool is not None and pool.workers == workers:
        return pool, True
    if pool is not None:
        _drop_pool(id(dataset))
    pool = _ProcessPool(workers)
    try:
        weakref.finalize(dataset, _drop_pool, id(dataset))
    except TypeError:
        return pool, False
    _POOLS[id(dataset)] = pool
    return pool, True


def _drop_pool(key: int) -> None:
    pool = _POOLS.pop(key, None)
    if pool is not None:
        _ProcessPool.close(pool.executor, pool.folder)


def iterate_batches(py_dataset: Any, *, shuffle: bool = False) -> Iterator[Any]:
    """One epoch of a `PyDataset`'s batches, loaded ahead by its `workers`.

    Batches come in index order (or a random order when `shuffle`, drawn from NumPy's global
    generator so `set_random_seed` makes it reproducible) whatever order the workers finish in.
    Up to `max_queue_size` batches are loaded ahead, so a training step only waits when loading
    is slower than training on every worker at once. `on_epoch_begin()` runs first and
    `on_epoch_end()` runs when the epoch ends, also when the consumer stops early (e.g. after
    `steps_per_epoch` batches); an exception raised in `__getitem__` propagates unchanged
    (from a worker process with the worker's traceback as its `__cause__`).

    Args:
        py_dataset: a `PyDataset` (or any object with `__getitem__` and `__len__`).
        shuffle: visit the batches of a finite dataset in a random order.
    """
    if not hasattr(py_dataset, "__getitem__"):
        raise TypeError(
            "`iterate_batches` expects a lamina.utils.PyDataset (an object with `__getitem__` "
            f"returning batches). Received: {type(py_dataset).__name__}."
        )
    num_batches = _num_batches(py_dataset)
    if num_batches is None:
        if shuffle:
            raise ValueError(
                "Cannot shuffle an infinite PyDataset (num_batches is None). Pass shuffle=False, "
                "or shuffle inside its __getitem__."
            )
        indices: Iterator[int] = itertools.count()
    elif shuffle:
        indices = iter(np.random.permutation(num_batches).tolist())
    else:
        indices = iter(range(num_batches))

    workers = getattr(py_dataset, "workers", 1)
    use_multiprocessing = getattr(py_dataset, "use_multiprocessing", False)
    max_queue_size = getattr(py_dataset, "max_queue_size", 10)

    _call_hook(py_dataset, "on_epoch_begin")
    if workers == 0:
        yield from _iterate_in_caller(py_dataset, indices)
        return

    if use_multiprocessing:
        pool, persistent = _process_pool(py_dataset, workers)
        executor: Executor = pool.executor
        fetch = functools.partial(_get_in_worker_process, pool.epoch_file(py_dataset))
    else:
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lamina-data")
        fetch, persistent = py_dataset.__getitem__, False
    pending: collections.deque[Future] = collections.deque(
        executor.submit(fetch, index) for index in itertools.islice(indices, max_queue_size)
    )
    epoch_ended = False
    try:
        while pending:
            batch = pending.popleft().result()
            # Queue the next batch before handing this one over, so loading overlaps the step.
            for index in itertools.islice(indices, 1):
                pending.append(executor.submit(fetch, index))
            yield batch
        epoch_ended = True
    except GeneratorExit:
        epoch_ended = True
        raise
    except BrokenProcessPool:
        # A worker died (killed for memory, crashed in native code): the next epoch starts a
        # fresh pool instead of failing at once on this one.
        _drop_pool(id(py_dataset))
        raise
    finally:
        for future in pending:
            future.cancel()
        # A persistent pool's batches already running finish in the background, unread (as
        # when a DataLoader iterator with persistent workers is dropped).
        if not persistent:
            executor.shutdown(wait=True, cancel_futures=True)
        if epoch_ended:
            _call_hook(py_dataset, "on_epoch_end")


def _iterate_in_caller(py_dataset: Any, indices: Iterator[int]) -> Iterator[Any]:
    epoch_ended = False
    try:
        for index in indices:
            yield py_dataset[index]
        epoch_ended = True
    except GeneratorExit:
        epoch_ended = True
        raise
    finally:
        if epoch_ended:
            _call_hook(py_dataset, "on_epoch_end")


def _num_batches(py_dataset: Any) -> int | None:
    if isinstance(py_dataset, PyDataset):
        return py_dataset.num_batches
    if hasattr(py_dataset, "num_batches"):
        return py_dataset.num_batches
    return len(py_dataset)


def _call_hook(py_dataset: Any, name: str) -> None:
    hook = getattr(py_dataset, name, None)
    if hook is not None:
        hook()
