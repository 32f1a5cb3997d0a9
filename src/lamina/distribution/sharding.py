"""Each process's part of the data: a global batch of `batch_size` split over the processes.

Training keeps every process in step (DDP and FSDP reduce gradients at every backward): all see
the same number of batches, and each takes its slice of every global batch. The epoch's order
is drawn as one process would draw it (from torch's global RNG, so BackupAndRestore resumes it)
and rank 0's draw is broadcast, so the processes agree even when seeded differently.

Evaluation and prediction need no lock-step: each process takes a contiguous run of the
samples (of a stream: its slice of every batch), and the processes' results put together in
order are the whole result, with no sample twice.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from lamina import tree
from lamina.errors import DataError
from lamina.training import data_adapters
from lamina.training.data_adapters import ArrayAdapter, IterableAdapter


class StepShare:
    """This process's share of the running global batch (its samples / the batch's), read by
    the gradient reduction: with unequal slices (a last batch of 5 over 2 processes) a plain
    mean over processes would weigh samples unequally."""

    def __init__(self) -> None:
        self.fraction = 1.0


def split(total: int, parts: int, index: int) -> tuple[int, int]:
    """Rows [start, stop) of part `index` of `total` rows in `parts` near-equal contiguous parts."""
    return total * index // parts, total * (index + 1) // parts


def collective(operation, tensor: torch.Tensor) -> torch.Tensor:
    """`operation(tensor)` (a torch collective, in place) where the backend runs it (gloo on the
    CPU, NCCL on this process's GPU); the result on `tensor`'s device."""
    if dist.get_backend() == "nccl":
        where = torch.device("cuda", torch.cuda.current_device())
    else:
        where = torch.device("cpu")
    moved = tensor.to(where)
    operation(moved)
    return moved.to(tensor.device)


def broadcast(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's values of `tensor` on every process."""
    return collective(lambda t: dist.broadcast(t, 0), tensor)


def broadcast_all(tensors: list[torch.Tensor], chunk_bytes: int = 64 << 20) -> None:
    """Rank 0's values of every tensor of `tensors`, in place: tensors of one dtype and device
    go together, one broadcast per `chunk_bytes`, instead of one collective per tensor."""
    chunks: dict[tuple, list[list[torch.Tensor]]] = {}
    filled: dict[tuple, int] = {}  # bytes in each group's last chunk
    for tensor in tensors:
        key = (tensor.dtype, tensor.device)
        group = chunks.setdefault(key, [[]])
        if group[-1] and filled[key] >= chunk_bytes:
            group.append([])
            filled[key] = 0
        group[-1].append(tensor)
        filled[key] = filled.get(key, 0) + tensor.numel() * tensor.element_size()
    with torch.no_grad():
        for group in chunks.values():
            for chunk in group:
                flat = broadcast(torch.cat([t.detach().reshape(-1) for t in chunk]))
                for tensor, value in zip(chunk, flat.split([t.numel() for t in chunk])):
                    tensor.copy_(value.view(tensor.shape))


def differ(tensors: list[torch.Tensor]) -> bool:
    """Whether any process holds other values in `tensors` than the others (the same answer
    on every process): each tensor's sum and norm, compared in one all-reduce."""
    if not tensors:
        return False
    with torch.no_grad():
        fingerprint = torch.stack([value for t in tensors for value in (
            t.detach().sum(dtype=torch.float64),
            torch.linalg.vector_norm(t.detach(), dtype=torch.float64))])
    # The largest of each entry and the largest of its negation (minus the smallest) at once.
    ends = collective(lambda t: dist.all_reduce(t, op=dist.ReduceOp.MAX),
                      torch.cat([fingerprint, -fingerprint]))
    largest, smallest = ends[:len(fingerprint)], -ends[len(fingerprint):]
    return not torch.equal(largest, smallest)


def agreed_seed() -> int:
    """A seed drawn from torch's global RNG on rank 0 (so a seeded run repeats it), shared."""
    return int(broadcast(torch.randint(0, 2**62, (1,)))[0])


class ShardedArrays:
    """In-memory training data: this process's slice of each global batch."""

    resumable = True

    def __init__(self, adapter: ArrayAdapter, parts: int, index: int, share: StepShare,
                 start_epoch: Callable[[], None] = lambda: None):
        self.adapter, self.parts, self.index, self.share = adapter, parts, index, share
        self.start_epoch = start_epoch
        self.num_batches = adapter.num_batches
        self.num_samples = adapter.num_samples
        last = adapter.num_samples - (adapter.num_batches - 1) * adapter.batch_size
        if adapter.steps is None and 0 < last < parts:
            raise DataError(
                f"The last batch of each epoch holds {last} sample(s) ({adapter.num_samples} "
                f"samples in batches of {adapter.batch_size}), fewer than the {parts} processes "
                "that split it, so a process would have no data for that step. Choose a "
                f"batch_size that leaves 0 or at least {parts} samples for the last batch, or "
                "pass steps_per_epoch.")

    def generators(self) -> list[torch.Generator]:
        return []

    def batches(self, skip: int = 0) -> Iterator[tuple]:
        self.start_epoch()
        adapter = self.adapter
        indices = adapter.indices(skip)
        if indices and isinstance(indices[0], torch.Tensor):
            lengths = [len(i) for i in indices]
            indices = list(torch.split(broadcast(torch.cat(indices)), lengths))
        elif indices:
            starts = broadcast(torch.tensor([i.start for i in indices])).tolist()
            indices = [slice(s, s + adapter.batch_size) for s in starts]
        take = data_adapters._slicer(adapter.x, adapter.y, adapter.sample_weight)
        return self._slices(indices, take)

    def _slices(self, indices: list, take) -> Iterator[tuple]:
        n = self.adapter.num_samples
        for index in indices:
            if isinstance(index, slice):
                index = range(index.start, min(index.stop, n))
            size = len(index)
            start, stop = split(size, self.parts, self.index)
            local = index[start:stop]
            self.share.fraction = (stop - start) / size
            yield take(slice(local.start, local.stop) if isinstance(local, range) else local)


class ShardedBatches:
    """An iterable of global batches (a generator, PyDataset, IterableDataset): every process
    reads all of them and trains on its slice of each; the source must yield the same batches on
    every process (seed its randomness the same way)."""

    resumable = property(lambda self: self.adapter.resumable)

    def __init__(self, adapter: IterableAdapter, parts: int, index: int, share: StepShare,
                 start_epoch: Callable[[], None] = lambda: None):
        self.adapter, self.parts, self.index, self.share = adapter, parts, index, share
        self.start_epoch = start_epoch
        self.num_batches = adapter.num_batches

    def generators(self) -> list[torch.Generator]:
        return self.adapter.generators()

    def batches(self, skip: int = 0) -> Iterator[Any]:
        self.start_epoch()
        for batch in self.adapter.batches(skip):
            size = len(tree.flatten(batch)[0])
            start, stop = split(size, self.parts, self.index)
            if start == stop:
                raise DataError(
                    f"A batch of {size} sample(s) cannot be split over {self.parts} processes: "
                    "one would have no data for the step. Make every batch hold at least as "
                    "many samples as there are processes.")
            self.share.fraction = (stop - start) / size
            yield _map(lambda v: v[start:stop], batch)


class ShardedLoader:
    """A DataLoader (or map-style Dataset) rebuilt over a `DistributedSampler`: each process
    loads only its samples, `batch_size / processes` per step, in a new order each epoch."""

    resumable = True

    def __init__(self, adapter: IterableAdapter, parts: int, index: int, share: StepShare,
                 start_epoch: Callable[[], None] = lambda: None):
        loader: DataLoader = adapter.data
        if loader.batch_size is None or loader.batch_size % parts:
            raise ValueError(
                f"The DataLoader's batch_size ({loader.batch_size}) is the global batch and must "
                f"be divisible by the {parts} processes that split it. Received: "
                f"batch_size={loader.batch_size}. Use a multiple of {parts}.")
        self.sampler = DistributedSampler(loader.dataset, num_replicas=parts, rank=index,
                                          shuffle=isinstance(loader.sampler, RandomSampler))
        self.adapter = IterableAdapter(_rebuilt(loader, self.sampler, loader.batch_size // parts),
                                       adapter.device, adapter.steps)
        self.num_batches = self.adapter.num_batches
        self.share, self.start_epoch = share, start_epoch

    def generators(self) -> list[torch.Generator]:
        return []

    def batches(self, skip: int = 0) -> Iterator[Any]:
        self.start_epoch()
        # A new order each epoch, drawn from the global RNG as a single process would draw it.
        self.sampler.set_epoch(agreed_seed())
        self.share.fraction = 1 / self.sampler.num_replicas
        return self.adapter.batches(skip)


def _rebuilt(loader: DataLoader, sampler: Any, batch_size: int) -> DataLoader:
    return DataLoader(loader.dataset, batch_size=batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      persistent_workers=loader.persistent_workers if loader.num_workers else False)


def for_training(adapter: Any, parts: int, index: int, share: StepShare,
                 start_epoch: Callable[[], None] = lambda: None) -> Any:
    """This process's part of `fit`'s data; `start_epoch()` runs on every process as each
    epoch's batches begin, before the first step."""
    if isinstance(adapter, ArrayAdapter):
        return ShardedArrays(adapter, parts, index, share, start_epoch)
    if isinstance(adapter.data, DataLoader) and not _iterable_dataset(adapter.data):
        return ShardedLoader(adapter, parts, index, share, start_epoch)
    return ShardedBatches(adapter, parts, index, share, start_epoch)


class InferenceSlices:
    """A stream (a generator, PyDataset, IterableDataset) for evaluate or predict: every process
    reads each batch and keeps its slice, as training does. A process whose slice of a batch is
    empty skips it (inference has no per-step collective); `sizes` records every slice, so
    predict's parts can be put back in the stream's order. At the stream's end the processes
    check together that each had rows, so a process with none fails with the others instead of
    leaving them waiting in the reduction."""

    def __init__(self, adapter: IterableAdapter, parts: int, index: int):
        self.adapter, self.parts, self.index = adapter, parts, index
        self.num_batches = adapter.num_batches
        self.sizes: list[int] = []

    def batches(self, skip: int = 0) -> Iterator[Any]:
        self.sizes = []
        for batch in self.adapter.batches(skip):
            start, stop = split(len(tree.flatten(batch)[0]), self.parts, self.index)
            self.sizes.append(stop - start)
            if start < stop:
                yield _map(lambda v: v[start:stop], batch)
        fewest = collective(lambda t: dist.all_reduce(t, op=dist.ReduceOp.MIN),
                            torch.tensor([sum(self.sizes)]))
        if int(fewest[0]) == 0:
            raise DataError(
                f"The stream's batches (of {sorted(set(self.sizes))} rows on this process) are "
                f"split over {self.parts} processes, and some process received no rows at all. "
                f"Make some batch hold at least {self.parts} samples, or evaluate or predict in "
                "one process.")


def for_inference(adapter: Any, parts: int, index: int) -> Any:
    """This process's part of evaluation or prediction data: a contiguous run of in-memory
    samples or of a map-style DataLoader's, else its slice of every batch of the stream."""
    if isinstance(adapter, ArrayAdapter):
        total = adapter.num_samples
        if adapter.steps:
            total = min(total, adapter.steps * adapter.batch_size)
        start, stop = split(total, parts, index)
        _check_nonempty(total, parts)
        part = lambda v: v[start:stop]  # noqa: E731
        return ArrayAdapter(_map(part, adapter.x), _map(part, adapter.y),
                            _map(part, adapter.sample_weight),
                            max(1, math.ceil(adapter.batch_size / parts)), False, adapter.device)
    loader = adapter.data
    if isinstance(loader, DataLoader) and not _iterable_dataset(loader) and adapter.steps is None:
        total = len(loader.dataset)
        _check_nonempty(total, parts)
        start, stop = split(total, parts, index)
        size = max(1, math.ceil((loader.batch_size or 1) / parts))
        return IterableAdapter(_rebuilt(loader, range(start, stop), size), adapter.device)
    return InferenceSlices(adapter, parts, index)


def _map(function, structure: Any) -> Any:
    return tree.map_structure(function, structure, none_is_leaf=False)


def _check_nonempty(total: int, parts: int) -> None:
    if total < parts:
        raise DataError(
            f"The data holds {total} sample(s), fewer than the {parts} processes that share "
            "it. Evaluate or predict on at least one sample per process.")


def _iterable_dataset(loader: DataLoader) -> bool:
    from torch.utils.data import IterableDataset

    return isinstance(loader.dataset, IterableDataset)
