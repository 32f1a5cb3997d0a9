"""`PyDataset` and `iterate_batches`: order, epoch hooks, bounded prefetch, workers, errors."""

from __future__ import annotations

import itertools
import os
import threading
import time

import numpy as np
import pytest

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
