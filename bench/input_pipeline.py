"""Do Lamina's input pipelines keep up with a tuned torch DataLoader on a JPEG folder? (issue #15)

A temporary folder of small JPEGs in class subfolders; every contender decodes each file with
PIL, resizes it, flips it at random and yields float32 batches of (images, labels):

- torch DataLoader (tuned): a map-style Dataset, `num_workers` worker processes,
  `persistent_workers`, `prefetch_factor=4`;
- Lamina PyDataset with `workers` threads (one batch per `__getitem__`);
- Lamina PyDataset with `workers` processes (`use_multiprocessing=True`): images come back in
  shared memory;
- the same with the images pickled back through the workers' pipe, as all arrays were before
  #15 (an ndarray subclass keeps its own pickling);
- `lamina.utils.image_dataset_from_directory(...).map(flip, num_parallel_calls=AUTOTUNE)
  .prefetch(AUTOTUNE)`, as Keras documents it.

One epoch is one full pass; rounds are interleaved and the median epoch time of each is reported
as throughput relative to the DataLoader (target >= 0.9x).

Usage: python bench/input_pipeline.py [--images 400] [--rounds 5] [--workers 2] [--size 64]
       python bench/input_pipeline.py --transport [--size 64] (no decoding: what moving batches
       back from the worker processes costs, shared memory against pickling)
(a larger --size makes batches bigger for the same decoding work, so moving them back from
the workers weighs more)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import lamina
from lamina.utils import PyDataset

SOURCE_SIZE, BATCH, CLASSES = (96, 96), 32, 4


def make_folder(root: str, images: int) -> list[tuple[str, int]]:
    rng = np.random.default_rng(0)
    files = []
    for index in range(images):
        label = index % CLASSES
        folder = os.path.join(root, f"class_{label}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{index:05d}.jpg")
        pixels = rng.integers(0, 256, (*SOURCE_SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
        files.append((path, label))
    return sorted(files)


def load(path: str, flip: bool, size: tuple[int, int]) -> np.ndarray:
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB").resize(size[::-1], Image.BILINEAR),
                           dtype=np.float32)
    return array[:, ::-1] if flip else array


class TorchFiles(Dataset):
    def __init__(self, files: list[tuple[str, int]], size: tuple[int, int]):
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        path, label = self.files[index]
        return torch.from_numpy(load(path, bool(torch.rand(()) < 0.5), self.size).copy()), label


class LaminaFiles(PyDataset):
    def __init__(self, files: list[tuple[str, int]], size: tuple[int, int], **kwargs):
        super().__init__(**kwargs)
        self.files, self.size = files, size
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return -(-len(self.files) // BATCH)

    def __getitem__(self, index: int):
        chunk = self.files[index * BATCH:(index + 1) * BATCH]
        flips = self.rng.random(len(chunk)) < 0.5
        images = np.stack([load(path, flip, self.size) for (path, _), flip in zip(chunk, flips)])
        return images, np.array([label for _, label in chunk], dtype=np.int64)


class PickledArray(np.ndarray):
    pass


class LaminaFilesPickled(LaminaFiles):
    def __getitem__(self, index: int):
        images, labels = super().__getitem__(index)
        return images.view(PickledArray), labels


def random_flip(images: torch.Tensor, labels: torch.Tensor):
    flips = torch.rand(images.shape[0]) < 0.5
    return torch.where(flips[:, None, None, None], images.flip(2), images), labels


def tree_cpu_seconds() -> float:
    """CPU time (user + system) of this process and all its descendants still running (Linux).

    On a loaded machine wall-clock throughput swings by +-50% between rounds; the CPU an epoch
    costs all processes together barely moves and is what limits throughput once every core is
    busy."""
    parents, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            ticks[int(entry)] = int(fields[11]) + int(fields[12])
    family, grown = {os.getpid()}, True
    while grown:  # to a fixed point: worker processes are grandchildren (via the forkserver)
        before = len(family)
        family |= {pid for pid, parent in parents.items() if parent in family}
        grown = len(family) > before
    return sum(ticks[pid] for pid in family if pid in ticks) / os.sysconf("SC_CLK_TCK")


def epoch_time(batches) -> tuple[float, float]:
    """Wall-clock and whole-process-tree CPU seconds of one pass."""
    start, cpu_start = time.perf_counter(), tree_cpu_seconds()
    for _ in batches:
        pass
    return time.perf_counter() - start, tree_cpu_seconds() - cpu_start


class Payload(PyDataset):
    """The same decoded batch every time, so that moving it back from the workers is the work."""

    def __init__(self, size: tuple[int, int], pickled: bool, **kwargs):
        super().__init__(**kwargs)
        self.size, self.pickled, self.images = size, pickled, None

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int):
        if self.images is None:  # made in each worker, once an epoch
            self.images = np.random.default_rng(0).random((BATCH, *self.size, 3), np.float32)
        images = self.images.view(PickledArray) if self.pickled else self.images
        return images, np.arange(BATCH)


def transport(args: argparse.Namespace, size: tuple[int, int]) -> None:
    """Milliseconds per batch that moving batches back costs, shared memory against pickling."""
    from lamina.utils import iterate_batches

    contenders = {
        "shared memory": Payload(size, False, workers=args.workers, use_multiprocessing=True),
        "pickled (before #15)": Payload(size, True, workers=args.workers,
                                        use_multiprocessing=True),
    }
    costs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in contenders}
    for round_ in range(args.rounds + 1):  # round 0 is the warm-up
        for name, dataset in contenders.items():
            wall, parent, every = time.perf_counter(), time.process_time(), tree_cpu_seconds()
            for images, _ in iterate_batches(dataset):
                float(images.sum())  # the consumer reads every byte, as training does
            wall, parent = time.perf_counter() - wall, time.process_time() - parent
            workers = tree_cpu_seconds() - every - parent
            if round_:
                costs[name].append(tuple(1e3 * value / len(dataset)
                                         for value in (wall, parent, workers)))
    megabytes = BATCH * size[0] * size[1] * 3 * 4 / 2**20
    print(f"Moving {megabytes:.1f} MiB batches back from {args.workers} workers; ms per batch, "
          f"median [range] of {args.rounds} interleaved epochs; {os.cpu_count()} CPUs")
    for name, samples in costs.items():
        columns = []
        for label, values in zip(("wall", "parent CPU", "workers CPU"), zip(*samples)):
            columns.append(f"{label} {statistics.median(values):5.2f} "
                           f"[{min(values):.2f}-{max(values):.2f}]")
        print(f"  {name:<22} " + "   ".join(columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="height and width of the images")
    parser.add_argument("--transport", action="store_true",
                        help="measure only moving batches back from worker processes")
    args = parser.parse_args()
    size = (args.size, args.size)
    torch.set_num_threads(1)
    if args.transport:
        transport(args, size)
        return
    from lamina.utils import iterate_batches

    with tempfile.TemporaryDirectory() as root:
        files = make_folder(root, args.images)
        loader = DataLoader(TorchFiles(files, size), batch_size=BATCH, shuffle=True,
                            num_workers=args.workers, persistent_workers=True, prefetch_factor=4)
        threads = LaminaFiles(files, size, workers=args.workers)
        processes = LaminaFiles(files, size, workers=args.workers, use_multiprocessing=True)
        pickled = LaminaFilesPickled(files, size, workers=args.workers, use_multiprocessing=True)
        folder = lamina.utils.image_dataset_from_directory(
            root, image_size=size, batch_size=BATCH, verbose=False)
        folder = folder.map(random_flip, num_parallel_calls=-1).prefetch(-1)
        contenders = {
            f"torch DataLoader, {args.workers} workers": lambda: loader,
            f"PyDataset, {args.workers} threads": lambda: iterate_batches(threads),
            f"PyDataset, {args.workers} processes": lambda: iterate_batches(processes),
            "  same, images pickled (before #15)": lambda: iterate_batches(pickled),
            "image_dataset_from_directory": lambda: folder,
        }
        for make in contenders.values():  # warm-up: worker start, page cache
            epoch_time(make())
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, make in contenders.items():
                times[name].append(epoch_time(make()))
    baseline = next(iter(times.values()))
    print(f"{args.images} JPEGs {SOURCE_SIZE} -> {size}, batch {BATCH}, random flip; "
          f"{args.rounds} interleaved epochs; {os.cpu_count()} CPUs. Throughput relative to the "
          "DataLoader: median [range] of the per-round ratios, from wall-clock time and from the "
          "CPU time of all processes")
    for name, samples in times.items():
        # Each round's ratio is against the DataLoader's epoch of the same round, so load that
        # drifts between rounds cancels out.
        wall = [base[0] / sample[0] for base, sample in zip(baseline, samples)]
        cpu = [base[1] / sample[1] for base, sample in zip(baseline, samples)]
        ratio = statistics.median(wall)
        verdict = "" if name.startswith(("torch", " ")) else \
            f"  (target >= 0.90x: {'ok' if ratio >= 0.9 else 'MISSED'})"
        rate = args.images / statistics.median(sample[0] for sample in samples)
        print(f"  {name:<37} {rate:6.0f} images/s  wall {ratio:5.2f}x "
              f"[{min(wall):.2f}-{max(wall):.2f}]  CPU {statistics.median(cpu):5.2f}x "
              f"[{min(cpu):.2f}-{max(cpu):.2f}]{verdict}")

if __name__ == "__main__":
    main()
