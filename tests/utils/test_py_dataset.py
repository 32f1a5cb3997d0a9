"""`PyDataset` and `iterate_batches`: order, epoch hooks, bounded prefetch, workers, errors."""

from __future__ import annotations

import collections
import gc
import itertools
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
import torch

from lamina.utils import PyDataset, Sequence, iterate_batches


class Recording(PyDataset):
    """Batch i is `[i]`; loading sleeps `delays[i]`; records requests and epoch hooks."""

    def __init__(self, count=6, delays=None, fail_at=None, **kwargs):
        super().__init__(**kwargs)
        self.count = count
        self.delays = delays or {}
        self.fail_at = fail_at
        self.requested: list[int] = []
        self.events: list[str] = []
        self.lock = threading.Lock()

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        with self.lock:
            self.requested.append(index)
        time.sleep(self.delays.get(index, 0))
        if index == self.fail_at:
            raise RuntimeError(f"broken batch {index}")
        return np.array([index])

    def on_epoch_begin(self):
        self.events.append("begin")

    def on_epoch_end(self):
        self.events.append("end")


class Infinite(PyDataset):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return index


class ProcessSquares(PyDataset):
    """Module-level so spawned worker processes can unpickle it."""

    def __len__(self):
        return 5

    def __getitem__(self, index):
        return index * index, os.getpid()


class EpochScaled(PyDataset):
    """Its batches depend on state changed in on_epoch_end, which the workers must see."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale = 1

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return index * self.scale, os.getpid()

    def on_epoch_end(self):
        self.scale *= 10


@pytest.mark.parametrize("workers", [0, 1, 4])
def test_batches_come_in_index_order_whatever_order_workers_finish(workers):
    # Early batches are the slowest, so with several workers later ones finish first.
    dataset = Recording(count=6, delays={0: 0.05, 1: 0.03, 2: 0.01}, workers=workers)
    batches = [int(batch[0]) for batch in iterate_batches(dataset)]
    assert batches == [0, 1, 2, 3, 4, 5]
    assert dataset.events == ["begin", "end"]
    assert sorted(dataset.requested) == list(range(6))


def test_epoch_end_runs_after_the_last_batch_is_consumed():
    dataset = Recording(count=3, workers=2)
    iterator = iterate_batches(dataset)
    for _ in range(3):
        next(iterator)
        assert dataset.events == ["begin"]
    with pytest.raises(StopIteration):
        next(iterator)
    assert dataset.events == ["begin", "end"]


def test_stopping_early_ends_the_epoch_and_cancels_the_rest():
    dataset = Recording(count=50, delays={i: 0.01 for i in range(50)}, workers=2, max_queue_size=3)
    for index, _ in enumerate(iterate_batches(dataset)):
        if index == 4:
            break
    assert dataset.events == ["begin", "end"]
    assert len(dataset.requested) <= 5 + 3


def test_prefetch_is_bounded_by_max_queue_size():
    dataset = Recording(count=30, workers=4, max_queue_size=3)
    for consumed, _ in enumerate(iterate_batches(dataset), start=1):
        time.sleep(0.002)  # let the workers run ahead as far as they are allowed
        with dataset.lock:
            highest = max(dataset.requested)
        assert highest < consumed + 3


def test_loading_overlaps_training_when_loading_is_slower():
    # 8 batches of 40 ms each: one after the other that is 320 ms; 4 workers need about 80 ms.
    dataset = Recording(count=8, delays={i: 0.04 for i in range(8)}, workers=4, max_queue_size=8)
    start = time.perf_counter()
    list(iterate_batches(dataset))
    assert time.perf_counter() - start < 0.25


def test_an_error_in_getitem_propagates_and_the_epoch_does_not_end():
    dataset = Recording(count=5, fail_at=2, workers=2)
    with pytest.raises(RuntimeError, match="broken batch 2"):
        list(iterate_batches(dataset))
    assert dataset.events == ["begin"]


def test_shuffle_visits_every_batch_once_reproducibly():
    np.random.seed(0)
    first = [int(b[0]) for b in iterate_batches(Recording(count=20, workers=2), shuffle=True)]
    np.random.seed(0)
    second = [int(b[0]) for b in iterate_batches(Recording(count=20, workers=2), shuffle=True)]
    assert sorted(first) == list(range(20)) and first == second and first != list(range(20))


def test_infinite_datasets_stream_until_the_consumer_stops():
    assert list(itertools.islice(iterate_batches(Infinite(workers=2)), 7)) == list(range(7))
    with pytest.raises(ValueError, match="Cannot shuffle an infinite PyDataset"):
        next(iterate_batches(Infinite(), shuffle=True))


def test_worker_processes():
    dataset = ProcessSquares(workers=2, use_multiprocessing=True)
    results = list(iterate_batches(dataset))
    assert [value for value, _ in results] == [0, 1, 4, 9, 16]
    assert os.getpid() not in {pid for _, pid in results}


def test_worker_processes_outlive_the_epoch_and_see_on_epoch_end_changes():
    dataset = EpochScaled(workers=2, use_multiprocessing=True)
    first = list(iterate_batches(dataset))
    second = list(iterate_batches(dataset))
    assert [value for value, _ in first] == [0, 1, 2, 3]
    assert [value for value, _ in second] == [0, 10, 20, 30]
    first_pids, second_pids = {pid for _, pid in first}, {pid for _, pid in second}
    assert os.getpid() not in first_pids | second_pids
    assert len(first_pids | second_pids) <= 2  # the same two processes, not two new ones


def test_plain_objects_with_len_and_getitem_work():
    assert list(iterate_batches([10, 20, 30])) == [10, 20, 30]
    with pytest.raises(TypeError, match="expects a lamina.utils.PyDataset"):
        list(iterate_batches(42))


def test_iterating_a_pydataset_directly_stops_at_its_length():
    assert [int(b[0]) for b in Recording(count=3)] == [0, 1, 2]


def test_num_batches_defaults_to_len_and_explains_what_is_missing():
    assert Recording(count=4).num_batches == 4
    assert Infinite().num_batches is None

    class Empty(PyDataset):
        pass

    with pytest.raises(NotImplementedError, match="must implement `__len__`"):
        Empty().num_batches
    with pytest.raises(NotImplementedError, match=r"must implement `__getitem__\(self, index\)`"):
        Empty()[0]


def test_subclass_without_super_init_gets_keras_defaults():
    class Forgetful(PyDataset):
        def __init__(self):
            pass

    dataset = Forgetful()
    assert (dataset.workers, dataset.use_multiprocessing, dataset.max_queue_size) == (1, False, 10)


def test_sequence_is_the_keras_2_name():
    assert Sequence is PyDataset


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"workers": -1}, ValueError, "`workers` must be a non-negative integer .* Received: workers=-1"),
        ({"workers": 1.5}, ValueError, "Received: workers=1.5"),
        ({"max_queue_size": 0}, ValueError, "`max_queue_size` must be a positive integer. Received: max_queue_size=0"),
        ({"use_multiprocessing": "yes"}, TypeError, "`use_multiprocessing` must be True or False"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        PyDataset(**kwargs)


# Worker processes hand batches back through shared memory. These share one pool (spawning
# workers costs seconds): the dataset is re-pickled to the workers every epoch, so the settings
# changed between epochs below reach them.

Point = collections.namedtuple("Point", ["x", "y"])


def batch_of_every_kind(index, tensor=True):
    """Leaves of every kind a batch may hold, big (shared memory) and small (pickled)."""
    rng = np.random.default_rng(index)
    images = rng.random((32, 64, 64, 3), dtype=np.float32)  # 1.5 MiB
    record = np.dtype([("weight", "<f4"), ("label", "<i2"), ("tag", "S3")])
    records = np.zeros(65536, record)  # 576 KiB
    records["weight"], records["label"] = rng.random(65536), rng.integers(-99, 99, 65536)
    records["tag"] = b"ab"
    batch = {
        "images": images,
        "half": images.astype(np.float16),
        "mask": images > 0.5,
        "uint16": rng.integers(0, 65535, (600, 500), dtype=np.uint16),
        "big_endian": rng.random((300, 300)).astype(">f8"),
        "fortran": np.asfortranarray(rng.random((300, 250))),
        "strided": images[:, ::2, ::-1],
        "records": records,
        "nan": np.where(images > 0.9, np.nan, images),
        "labels": rng.integers(0, 10, 32),
        "scalar": np.float64(index),
        "zero_d": np.array(index, dtype=np.int8),
        "empty": np.zeros((0, 5), np.float32),
        "text": np.array(["a", "bc", str(index)]),
        "objects": np.array([{"id": index}, None, "x"], dtype=object),
        "masked": np.ma.masked_greater(images, 0.5),
        "tensor": torch.from_numpy(images[:2].copy()),
        "nested": [Point(images[:4], index), (None, "text", 3.5)],
    }
    if not tensor:  # torch's own reductions pass tensors, each holding a descriptor while alive
        del batch["tensor"]
    return batch


def assert_identical(received, expected, path="batch"):
    assert type(received) is type(expected), path
    if isinstance(expected, np.ndarray):
        assert (received.dtype, received.shape) == (expected.dtype, expected.shape), path
        if isinstance(expected, np.ma.MaskedArray):
            assert np.array_equal(received.mask, expected.mask), path
        equal_nan = expected.dtype.kind == "f"
        assert np.array_equal(received, expected, equal_nan=equal_nan), path
    elif isinstance(expected, torch.Tensor):
        assert received.dtype == expected.dtype and torch.equal(received, expected), path
    elif isinstance(expected, dict):
        assert list(received) == list(expected), path
        for key in expected:
            assert_identical(received[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(received) == len(expected), path
        for position, (left, right) in enumerate(zip(received, expected)):
            assert_identical(left, right, f"{path}[{position}]")
    else:
        assert received == expected, path


def memory_mapping(array):
    """The line of /proc/self/maps holding the array's first byte."""
    address = array.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(bound, 16) for bound in line.split()[0].split("-"))
            if start <= address < end:
                return line
    raise AssertionError(f"address {address:#x} is in no mapping")


class EveryKind(PyDataset):
    """Module-level so spawned workers can unpickle it; what it does is set between epochs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.count = 4
        self.delays = {}
        self.failure = None  # (index, how)
        self.record_folder = None
        self.tensor = True

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if self.record_folder is not None:
            open(os.path.join(self.record_folder, str(index)), "w").close()
        time.sleep(self.delays.get(index, 0))
        if self.failure is not None and self.failure[0] == index:
            fail(self.failure[1], index)
        return batch_of_every_kind(index, self.tensor), os.getpid()


class NeedsTwoArguments(Exception):
    def __init__(self, first, second):
        super().__init__(f"{first} and {second}")


def fail(how, index):
    if how == "value":
        raise ValueError(f"unreadable image in batch {index}")
    if how == "unpicklable":
        raise NeedsTwoArguments("left", "right")
    os._exit(3)  # a worker killed outright, as by the OS for memory


@pytest.fixture(scope="module")
def processes():
    dataset = EveryKind(workers=2, use_multiprocessing=True, max_queue_size=4)
    yield dataset
    del dataset
    gc.collect()


def configure(dataset, **settings):
    """Sets every setting, so that nothing carries over from a test that ran before."""
    for name, value in {"count": 4, "delays": {}, "failure": None, "record_folder": None,
                        **settings}.items():
        setattr(dataset, name, value)
    return dataset


def epoch(dataset, **settings):
    return list(iterate_batches(configure(dataset, **settings)))


def test_worker_processes_return_the_batches_of_the_calling_thread(processes):
    in_caller = EveryKind(workers=0)
    batches = epoch(processes)
    assert len(batches) == 4
    for index, (batch, pid) in enumerate(batches):
        assert pid != os.getpid()
        assert_identical(batch, in_caller[index][0])
        assert_identical(batch, batch_of_every_kind(index))


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads Linux's /proc")
def test_arrays_of_512_kib_or_more_come_back_in_shared_memory_and_stay_writable(processes):
    (batch, _), *_ = epoch(processes, count=1)
    shared = {}
    for name, leaf in batch.items():
        if type(leaf) is np.ndarray and leaf.nbytes and leaf.dtype != object:
            # A mapping's permissions end in "s" when it is shared and "p" when private.
            shared[name] = memory_mapping(leaf).split()[1].endswith("s")
            assert shared[name] == (leaf.nbytes >= 512 * 1024), (name, leaf.nbytes)
    assert sum(shared.values()) >= 8 and not shared["mask"]  # a 384 KiB array is pickled
    batch["images"][0, 0, 0] = 7.0
    assert batch["images"][0, 0, 0, 0] == 7.0


def test_worker_processes_keep_order_when_later_batches_finish_first(processes):
    batches = epoch(processes, count=5, delays={0: 0.3, 1: 0.15})
    for index, (batch, _) in enumerate(batches):
        assert batch["scalar"] == index


def test_worker_processes_load_at_most_max_queue_size_ahead(processes, tmp_path):
    requested = lambda: {int(name) for name in os.listdir(tmp_path)}  # noqa: E731
    configure(processes, count=16, record_folder=str(tmp_path))
    for consumed, _ in enumerate(iterate_batches(processes), start=1):
        time.sleep(0.05)  # time for the workers to run ahead as far as they are allowed
        assert max(requested()) < consumed + processes.max_queue_size
    assert requested() == set(range(16))


def test_an_epoch_stopped_early_leaves_nothing_behind_for_the_next(processes):
    configure(processes, count=12, delays={index: 0.02 for index in range(12)})
    for index, _ in enumerate(iterate_batches(processes)):
        if index == 2:
            break
    batches = epoch(processes, count=6)
    assert [batch["scalar"] for batch, _ in batches] == [0, 1, 2, 3, 4, 5]


def test_an_error_in_a_worker_is_raised_with_the_workers_traceback(processes):
    with pytest.raises(ValueError, match="unreadable image in batch 2") as raised:
        epoch(processes, failure=(2, "value"))
    remote = str(raised.value.__cause__)
    assert "in __getitem__" in remote and "fail(self.failure[1], index)" in remote
    # The pool survives a user error: the next epoch runs on the same processes.
    assert len({pid for _, pid in epoch(processes)}) <= 2


def test_an_exception_that_cannot_be_pickled_comes_back_as_a_runtime_error(processes):
    with pytest.raises(RuntimeError, match=r"__getitem__\(1\) raised .*NeedsTwoArguments: left and "
                       r"right \(re-raised as a RuntimeError because that exception cannot be "
                       r"pickled") as raised:
        epoch(processes, failure=(1, "unpicklable"))
    assert "NeedsTwoArguments" in str(raised.value.__cause__)
    assert [batch["scalar"] for batch, _ in epoch(processes)] == [0, 1, 2, 3]


def test_a_worker_that_dies_breaks_only_its_epoch(processes):
    before = {pid for _, pid in epoch(processes)}
    with pytest.raises(BrokenProcessPool):
        epoch(processes, failure=(0, "exit"))
    batches = epoch(processes)
    assert [batch["scalar"] for batch, _ in batches] == [0, 1, 2, 3]
    assert not before & {pid for _, pid in batches}  # a fresh pool


def shared_mappings():
    with open("/proc/self/maps") as maps:
        return sum("/dev/shm/" in line for line in maps)


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="reads Linux's /proc")
def test_worker_processes_shut_down_without_leaking_processes_memory_or_descriptors():
    mapped_before = shared_mappings()
    dataset = EveryKind(workers=2, use_multiprocessing=True)
    dataset.tensor = False
    kept = epoch(dataset)
    descriptors = open_descriptors()
    for index, _ in enumerate(iterate_batches(dataset)):  # an abandoned epoch too
        if index == 1:
            break
    # Batches kept by the caller hold no file descriptor (a DataLoader's tensors each hold one).
    # Counted after whole epochs: a batch being received holds one for a moment.
    kept += epoch(dataset) + epoch(dataset) + epoch(dataset)
    assert open_descriptors() <= descriptors
    folder = processes_folder(dataset)
    del dataset
    gc.collect()
    pids = {pid for _, pid in kept}
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} still exists"
    assert not os.path.exists(folder)
    # torch names a segment torch_<pid of its maker>_...; other programs share /dev/shm.
    left = [name for name in os.listdir("/dev/shm") for pid in pids if f"_{pid}_" in name]
    assert not left
    # Batches kept by the caller outlive the workers that made them.
    for position, (batch, _) in enumerate(kept):
        assert_identical(batch, batch_of_every_kind(position % 4, tensor=False))
    del kept, batch
    gc.collect()
    assert shared_mappings() <= mapped_before  # each segment unmapped with its last array


def processes_folder(dataset):
    from lamina.utils.py_dataset import _POOLS

    return _POOLS[id(dataset)].folder
