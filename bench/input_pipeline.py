"""Do Lamina's input pipelines keep up with a tuned torch DataLoader on a JPEG folder? (issue #15)

A temporary folder of small JPEGs in class subfolders; every contender decodes each file with
PIL, resizes it, flips it at random and yields float32 batches of (images, labels):

- torch DataLoader (tuned): a map-style Dataset, `num_workers` worker processes,
  `persistent_workers`, `prefetch_factor=4`;
- Lamina PyDataset with `workers` threads (one batch per `__getitem__`);
- Lamina PyDataset with `workers` processes (`use_multiprocessing=True`);
- `lamina.utils.image_dataset_from_directory(...).map(flip, num_parallel_calls=AUTOTUNE)
  .prefetch(AUTOTUNE)`, as Keras documents it.

One epoch is one full pass; rounds are interleaved and the median epoch time of each is reported
as throughput relative to the DataLoader (target >= 0.9x).

Usage: python bench/input_pipeline.py [--images 400] [--rounds 5] [--workers 2]
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

SOURCE_SIZE, SIZE, BATCH, CLASSES = (96, 96), (64, 64), 32, 4


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


def load(path: str, flip: bool) -> np.ndarray:
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB").resize(SIZE[::-1], Image.BILINEAR),
                           dtype=np.float32)
    return array[:, ::-1] if flip else array


class TorchFiles(Dataset):
    def __init__(self, files: list[tuple[str, int]]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        path, label = self.files[index]
        return torch.from_numpy(load(path, bool(torch.rand(()) < 0.5)).copy()), label


class LaminaFiles(PyDataset):
    def __init__(self, files: list[tuple[str, int]], **kwargs):
        super().__init__(**kwargs)
        self.files = files
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return -(-len(self.files) // BATCH)

    def __getitem__(self, index: int):
        chunk = self.files[index * BATCH:(index + 1) * BATCH]
        flips = self.rng.random(len(chunk)) < 0.5
        images = np.stack([load(path, flip) for (path, _), flip in zip(chunk, flips)])
        return images, np.array([label for _, label in chunk], dtype=np.int64)


def random_flip(images: torch.Tensor, labels: torch.Tensor):
    flips = torch.rand(images.shape[0]) < 0.5
    return torch.where(flips[:, None, None, None], images.flip(2), images), labels


def epoch_time(batches) -> float:
    start = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from lamina.utils import iterate_batches

    with tempfile.TemporaryDirectory() as root:
        files = make_folder(root, args.images)
        loader = DataLoader(TorchFiles(files), batch_size=BATCH, shuffle=True,
                            num_workers=args.workers, persistent_workers=True, prefetch_factor=4)
        threads = LaminaFiles(files, workers=args.workers)
        processes = LaminaFiles(files, workers=args.workers, use_multiprocessing=True)
        folder = lamina.utils.image_dataset_from_directory(
            root, image_size=SIZE, batch_size=BATCH, verbose=False)
        folder = folder.map(random_flip, num_parallel_calls=-1).prefetch(-1)
        contenders = {
            f"torch DataLoader, {args.workers} workers": lambda: loader,
            f"PyDataset, {args.workers} threads": lambda: iterate_batches(threads),
            f"PyDataset, {args.workers} processes": lambda: iterate_batches(processes),
            "image_dataset_from_directory": lambda: folder,
        }
        for make in contenders.values():  # warm-up: worker start, page cache
            epoch_time(make())
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, make in contenders.items():
                times[name].append(epoch_time(make()))
    base = statistics.median(next(iter(times.values())))
    print(f"{args.images} JPEGs {SOURCE_SIZE} -> {SIZE}, batch {BATCH}, random flip; median "
          f"of {args.rounds} interleaved epochs; {os.cpu_count()} CPUs")
    for name, samples in times.items():
        median = statistics.median(samples)
        ratio = base / median
        print(f"  {name:<34} {args.images / median:8.0f} images/s   {ratio:5.2f}x throughput"
              f"{'' if name.startswith('torch') else '  (target >= 0.90x: ' + ('ok' if ratio >= 0.9 else 'MISSED') + ')'}")


if __name__ == "__main__":
    main()
