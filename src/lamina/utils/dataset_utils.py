"""Datasets from folders of files (`image_dataset_from_directory`, `text_dataset_from_directory`)
and `split_dataset`. The folder utilities return a `lamina.utils.Dataset` (the `tf.data`
methods, torch tensors) read by a `PyDataset` that loads files on a background thread."""

from __future__ import annotations

import functools
import math
import os
import threading
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from lamina import config
from lamina.utils import image_utils
from lamina.utils.dataset import Dataset, _as_element, _close
from lamina.utils.py_dataset import PyDataset, iterate_batches

IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
TEXT_FORMATS = (".txt",)
# Keras's names (from tf.image.resize) mapped to the closest Pillow filter.
_RESIZE_METHODS = {
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "lanczos3": Image.Resampling.LANCZOS,
    "lanczos5": Image.Resampling.LANCZOS,
}
_LABEL_MODES = ("int", "categorical", "binary", None)


def list_files(directory: str, formats: tuple[str, ...], follow_links: bool = False) -> list[str]:
    """Paths of the files under `directory` (recursively) whose extension is in `formats`, sorted."""
    found = []
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links), key=lambda entry: entry[0]):
        found.extend(os.path.join(root, name) for name in sorted(files) if name.lower().endswith(formats))
    return found


def check_directory(directory: Any) -> str:
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise FileNotFoundError(f"Directory {directory!r} does not exist.")
    if not os.path.isdir(directory):
        raise NotADirectoryError(f"{directory!r} is a file; pass the folder that holds the data.")
    return directory


def class_subdirectories(directory: str, class_names: Sequence[str] | None) -> list[str]:
    """The class folders of `directory`: `class_names` (checked to exist) or all, sorted."""
    subdirectories = sorted(
        name for name in os.listdir(directory) if os.path.isdir(os.path.join(directory, name))
    )
    if class_names:
        missing = [name for name in class_names if name not in subdirectories]
        if missing:
            raise ValueError(
                f"`class_names` {list(class_names)} do not all name subdirectories of {directory!r}: "
                f"missing {missing}. The subdirectories are {subdirectories}."
            )
        return list(class_names)
    if not subdirectories:
        raise ValueError(
            f"Directory {directory!r} has no subdirectories. Class labels are inferred from "
            "one subdirectory per class (e.g. data/cats/1.png, data/dogs/2.png); pass "
            "labels=None for unlabeled files."
        )
    return subdirectories


def index_directory(
    directory: str,
    labels: str | Sequence[int] | None,
    formats: tuple[str, ...],
    class_names: Sequence[str] | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    follow_links: bool = False,
    verbose: bool = True,
) -> tuple[list[str], np.ndarray | None, list[str] | None]:
    """All matching files of `directory` with their integer labels and the class names.

    With `labels='inferred'` each subdirectory is a class (in `class_names` order, else sorted);
    otherwise every matching file under `directory` is taken in sorted order and `labels` is
    None or one integer per file. `shuffle` permutes files and labels together with `seed`.
    """
    directory = check_directory(directory)
    if _is_inferred(labels):
        class_names = class_subdirectories(directory, class_names)
        file_paths: list[str] = []
        label_list: list[int] = []
        for index, name in enumerate(class_names):
            files = list_files(os.path.join(directory, name), formats, follow_links)
            file_paths.extend(files)
            label_list.extend([index] * len(files))
        label_array: np.ndarray | None = np.asarray(label_list, dtype=np.int32)
    else:
        class_names = None
        file_paths = list_files(directory, formats, follow_links)
        label_array = None
        if labels is not None:
            label_array = np.asarray(labels)
            if label_array.ndim != 1 or label_array.dtype.kind not in "iu":
                raise ValueError(
                    "`labels` must be 'inferred', None, or a list of integer labels (one per file "
                    f"in sorted path order). Received an array of shape {label_array.shape} "
                    f"and dtype {label_array.dtype}."
                )
            if len(label_array) != len(file_paths):
                raise ValueError(
                    f"`labels` has {len(label_array)} entries but {len(file_paths)} matching files "
                    f"were found in {directory!r}. Pass one label per file, in sorted path order."
                )
            label_array = label_array.astype(np.int32)
    if not file_paths:
        raise ValueError(
            f"No files found in directory {directory!r}. Allowed formats: {', '.join(formats)}."
        )
    if verbose:
        if class_names is None:
            print(f"Found {len(file_paths)} files.")
        else:
            print(f"Found {len(file_paths)} files belonging to {len(class_names)} classes.")
    if shuffle:
        order = np.random.RandomState(seed).permutation(len(file_paths))
        file_paths = [file_paths[i] for i in order]
        if label_array is not None:
            label_array = label_array[order]
    return file_paths, label_array, class_names


def check_validation_split(validation_split: Any, subset: Any, shuffle: bool, seed: Any) -> None:
    if validation_split is not None and not (
        isinstance(validation_split, (int, float)) and 0 < validation_split < 1
    ):
        raise ValueError(
            "`validation_split` must be a float strictly between 0 and 1. "
            f"Received: validation_split={validation_split!r}."
        )
    if bool(validation_split) != bool(subset):
        raise ValueError(
            "`subset` and `validation_split` go together: pass both (e.g. validation_split=0.2, "
            f"subset='training') or neither. Received: validation_split={validation_split!r}, "
            f"subset={subset!r}."
        )
    if subset not in ("training", "validation", "both", None):
        raise ValueError(
            "`subset` must be 'training', 'validation' or 'both'. "
            f"Received: subset={subset!r}."
        )
    if validation_split and shuffle and seed is None:
        raise ValueError(
            "With `validation_split` and shuffle=True, pass a `seed` so the training and "
            "validation subsets are drawn from the same shuffle and do not overlap."
        )


def training_or_validation_split(
    samples: list[Any], labels: np.ndarray | None, validation_split: float | None, subset: str | None, verbose: bool = True
) -> tuple[list[Any], np.ndarray | None]:
    """The training (first) or validation (last `int(validation_split * n)`) part of the samples."""
    if not validation_split:
        return samples, labels
    cut = len(samples) - int(validation_split * len(samples))
    if subset == "training":
        part = slice(0, cut)
    else:
        part = slice(cut, len(samples))
    if verbose:
        print(f"Using {part.stop - part.start} files for {subset}.")
    return samples[part], None if labels is None else labels[part]


class _FileDataset(PyDataset):
    """Batches of (loaded files, encoded labels) in an order reshuffled every epoch (pass)."""

    def __init__(
        self,
        file_paths: list[str],
        labels: np.ndarray | None,
        load: Callable[[str], Any],
        stack: Callable[[list[Any]], Any],
        label_mode: str | None,
        num_classes: int,
        batch_size: int | None,
        shuffle: bool,
        seed: int,
        class_names: list[str] | None,
    ) -> None:
        # Batches load on one thread per CPU: PIL decodes and resizes with the GIL released,
        # and a single loading thread left a 2-core machine at 0.88x a DataLoader with two
        # worker processes (bench/input_pipeline.py).
        super().__init__(workers=max(1, os.cpu_count() or 1))
        self.file_paths = file_paths
        self.class_names = class_names
        self._labels = labels
        self._load = load
        self._stack = stack
        self._label_mode = label_mode
        self._num_classes = num_classes
        self._batch_size = batch_size
        self._shuffle = shuffle
        self._seed = seed
        self._epoch = 0
        self._order: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        if self._batch_size is None:
            return len(self.file_paths)
        return math.ceil(len(self.file_paths) / self._batch_size)

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} is out of range for a dataset of {len(self)} batches.")
        order = self._epoch_order()
        if self._batch_size is None:
            picked = order[index : index + 1]
        else:
            picked = order[index * self._batch_size : (index + 1) * self._batch_size]
        inputs = self._stack([self._load(self.file_paths[i]) for i in picked])
        if self._batch_size is None:
            inputs = inputs[0]
        if self._labels is None or self._label_mode is None:
            return inputs
        labels = self._encode(self._labels[picked])
        return inputs, labels[0] if self._batch_size is None else labels

    def on_epoch_end(self) -> None:
        self._epoch += 1

    def _epoch_order(self) -> np.ndarray:
        with self._lock:
            if self._order is None or self._order[0] != self._epoch:
                count = len(self.file_paths)
                if self._shuffle and self._epoch > 0:
                    # Epoch 0 keeps the seeded order index_directory drew (Keras's file order).
                    order = np.random.default_rng([self._seed, self._epoch]).permutation(count)
                else:
                    order = np.arange(count)
                self._order = (self._epoch, order)
            return self._order[1]

    def _encode(self, labels: np.ndarray) -> np.ndarray:
        if self._label_mode == "int":
            return labels.astype(np.int32)
        if self._label_mode == "binary":
            return labels.astype(np.float32)[:, np.newaxis]
        return np.eye(self._num_classes, dtype=np.float32)[labels]


def _is_inferred(labels: Any) -> bool:
    # `labels == "inferred"` would compare element-wise when labels is an array.
    return isinstance(labels, str) and labels == "inferred"


def _check_label_mode(label_mode: Any, labels: Any, class_names: Any) -> None:
    if not _is_inferred(labels) and labels is not None and not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError(
            "`labels` must be 'inferred', None, or a list of integer labels (one per file in "
            f"sorted path order). Received: labels={labels!r}."
        )
    if class_names and not _is_inferred(labels):
        raise ValueError(
            "`class_names` only applies with labels='inferred' (class names are the "
            f"subdirectory names). Received: labels={labels!r}, class_names={class_names!r}."
        )
    if label_mode not in _LABEL_MODES:
        raise ValueError(
            "`label_mode` must be 'int', 'categorical', 'binary' or None. "
            f"Received: label_mode={label_mode!r}."
        )


def _check_batch_size(batch_size: Any) -> None:
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
    ):
        raise ValueError(
            f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}."
        )


def _num_classes(labels: np.ndarray | None, class_names: list[str] | None, label_mode: str | None) -> int:
    if labels is None or label_mode is None:
        return 0
    num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
    if labels.size and labels.min() < 0:
        raise ValueError(f"`labels` must be non-negative integers. Received a label {int(labels.min())}.")
    if label_mode == "binary" and (num_classes > 2 or (class_names is not None and num_classes != 2)):
        raise ValueError(
            "label_mode='binary' needs exactly 2 classes. Received "
            f"{class_names if class_names is not None else num_classes}; use label_mode='int' or "
            "'categorical' for more."
        )
    return num_classes


def _make_datasets(
    file_paths: list[str],
    labels: np.ndarray | None,
    class_names: list[str] | None,
    directory: str,
    formats: tuple[str, ...],
    validation_split: float | None,
    subset: str | None,
    verbose: bool,
    **dataset_kwargs: Any,
) -> Dataset | list[Dataset]:
    subsets = ["training", "validation"] if subset == "both" else [subset]
    datasets = []
    for part in subsets:
        part_paths, part_labels = training_or_validation_split(
            file_paths, labels, validation_split, part, verbose
        )
        if not part_paths:
            raise ValueError(
                f"No files left for the {part} subset of {directory!r} "
                f"({len(file_paths)} files, validation_split={validation_split}). Add files or "
                f"change validation_split. Allowed formats: {', '.join(formats)}."
            )
        kwargs = dict(dataset_kwargs)
        if subset == "both" and part == "validation":
            kwargs["shuffle"] = False
        datasets.append(_as_dataset(_FileDataset(part_paths, part_labels, class_names=class_names, **kwargs)))
    return datasets if subset == "both" else datasets[0]


def _as_dataset(files: _FileDataset) -> Dataset:
    def iterate() -> Any:
        # One pass of the loader per iteration; closing it ends its epoch (the next reshuffles).
        batches = iterate_batches(files)
        try:
            for batch in batches:
                yield _as_element(batch)
        finally:
            _close(batches)

    return Dataset(iterate, len(files), class_names=files.class_names, file_paths=files.file_paths)


def image_dataset_from_directory(
    directory: str | os.PathLike,
    labels: str | Sequence[int] | None = "inferred",
    label_mode: str | None = "int",
    class_names: Sequence[str] | None = None,
    color_mode: str = "rgb",
    batch_size: int | None = 32,
    image_size: int | tuple[int, int] | None = (256, 256),
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    data_format: str | None = None,
    verbose: bool = True,
) -> Dataset | list[Dataset]:
    """A `Dataset` of `(images, labels)` batches from a folder with one subfolder per class.

    Images are float32 tensors in [0, 255], shaped `(batch, height, width, channels)`
    (channels_last); labels are int32 `(batch,)` for 'int', float32 one-hot `(batch, num_classes)` for
    'categorical', float32 `(batch, 1)` for 'binary'; with `labels=None` or `label_mode=None`
    batches are images only. The result has `class_names` and `file_paths` attributes;
    `subset='both'` returns `[training, validation]`. Formats: .bmp .gif .jpeg .jpg .png.

    Args:
        image_size: `(height, width)` to resize to; None keeps the files' size, which must then
            be the same for all.
        interpolation: 'bilinear', 'nearest', 'bicubic', 'area', 'lanczos3' or 'lanczos5'
            (Pillow's filters, so values differ slightly from TensorFlow's resize).
        crop_to_aspect_ratio / pad_to_aspect_ratio: resize without distortion by cropping the
            centre, or by padding with zeros, to the target aspect ratio.
        Other arguments as in `keras.utils.image_dataset_from_directory`.
    """
    _check_label_mode(label_mode, labels, class_names)
    num_channels = image_utils.check_color_mode(color_mode)
    _check_batch_size(batch_size)
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if image_size is not None:
        image_size = image_utils.check_size(image_size, "image_size")
    resample = image_utils.check_interpolation(interpolation, _RESIZE_METHODS)
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Pass only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio`.")
    data_format = config.standardize_data_format(data_format)
    check_validation_split(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = int(np.random.randint(1_000_000))

    file_paths, label_array, class_names = index_directory(
        directory,
        labels,
        IMAGE_FORMATS,
        class_names=class_names,
        shuffle=shuffle,
        seed=seed,
        follow_links=follow_links,
        verbose=verbose,
    )
    if image_size is None:
        check_same_image_size(sorted(file_paths), "image_size")
    mode = "pad" if pad_to_aspect_ratio else "crop" if crop_to_aspect_ratio else None

    load = functools.partial(
        _load_image,
        color_mode=color_mode,
        num_channels=num_channels,
        image_size=image_size,
        resample=resample,
        aspect_mode=mode,
        data_format=data_format,
    )
    return _make_datasets(
        file_paths,
        label_array,
        class_names,
        os.fspath(directory),
        IMAGE_FORMATS,
        validation_split,
        subset,
        verbose,
        load=load,
        stack=np.stack,
        label_mode=label_mode if labels is not None else None,
        num_classes=_num_classes(label_array, class_names, label_mode),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
    )


def check_same_image_size(file_paths: list[str], argument: str) -> None:
    """Raise if the images (read from their headers only) do not all have one size."""
    first_size = None
    for path in file_paths:
        with Image.open(path) as image:
            size = image.size
        if first_size is None:
            first_size, first_path = size, path
        elif size != first_size:
            raise ValueError(
                f"Images have different sizes and no `{argument}` was given: {first_path!r} is "
                f"{first_size[1]}x{first_size[0]} (height x width) but {path!r} is "
                f"{size[1]}x{size[0]}. Pass {argument}=(height, width) to resize them all."
            )


def _load_image(
    path: str,
    color_mode: str,
    num_channels: int,
    image_size: tuple[int, int] | None,
    resample: Any,
    aspect_mode: str | None,
    data_format: str,
) -> np.ndarray:
    image = image_utils.load_img(path, color_mode=color_mode)
    if image_size is not None:
        height, width = image_size
        if aspect_mode == "crop":
            box = image_utils.center_crop_box(image.size, image_size)
            image = image.resize((width, height), resample, box=box)
        elif aspect_mode == "pad":
            image = _resize_and_pad(image, image_size, resample)
        elif image.size != (width, height):
            image = image.resize((width, height), resample)
    array = image_utils.img_to_array(image, data_format="channels_last", dtype=np.float32)
    if array.shape[-1] != num_channels:
        # 16/32-bit grayscale files load as one channel whatever the mode; nothing else differs.
        array = np.repeat(array, num_channels, axis=-1)
    return array.transpose(2, 0, 1) if data_format == "channels_first" else array


def _resize_and_pad(image: Image.Image, image_size: tuple[int, int], resample: Any) -> Image.Image:
    height, width = image_size
    scale = min(width / image.width, height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new(image.mode, (width, height))
    canvas.paste(image.resize(inner, resample), ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return canvas


def text_dataset_from_directory(
    directory: str | os.PathLike,
    labels: str | Sequence[int] | None = "inferred",
    label_mode: str | None = "int",
    class_names: Sequence[str] | None = None,
    batch_size: int | None = 32,
    max_length: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    follow_links: bool = False,
    verbose: bool = True,
) -> Dataset | list[Dataset]:
    """A `Dataset` of `(texts, labels)` batches from .txt files, one subfolder per class.

    Texts come as a `StringTensor` (a NumPy object array of `str`, UTF-8 decoded), truncated to `max_length`
    characters when given; labels as in `image_dataset_from_directory`.
    """
    _check_label_mode(label_mode, labels, class_names)
    _check_batch_size(batch_size)
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"`max_length` must be a positive integer or None. Received: max_length={max_length!r}.")
    check_validation_split(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = int(np.random.randint(1_000_000))
    file_paths, label_array, class_names = index_directory(
        directory,
        labels,
        TEXT_FORMATS,
        class_names=class_names,
        shuffle=shuffle,
        seed=seed,
        follow_links=follow_links,
        verbose=verbose,
    )

    return _make_datasets(
        file_paths,
        label_array,
        class_names,
        os.fspath(directory),
        TEXT_FORMATS,
        validation_split,
        subset,
        verbose,
        load=functools.partial(_read_text, max_length=max_length),
        stack=_stack_texts,
        label_mode=label_mode if labels is not None else None,
        num_classes=_num_classes(label_array, class_names, label_mode),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
    )


def _read_text(path: str, max_length: int | None) -> str:
    with open(path, encoding="utf-8") as file:
        text = file.read()
    return text if max_length is None else text[:max_length]


def _stack_texts(texts: list[str]) -> np.ndarray:
    batch = np.empty(len(texts), dtype=object)
    batch[:] = texts
    return batch


def split_dataset(
    dataset: Any,
    left_size: int | float | None = None,
    right_size: int | float | None = None,
    shuffle: bool = False,
    seed: int | None = None,
) -> tuple[Any, Any]:
    """Split an array, tensor, or tuple/list/dict of them (split together) into two parts.

    Sizes are sample counts (int) or fractions (float in (0, 1)); a missing size is the rest.
    The left part takes the first samples, the right part the last (after a seeded shuffle when
    `shuffle`). Each part has the input's structure.

    >>> left, right = split_dataset(np.arange(10), left_size=0.8)
    >>> left.shape, right.shape
    ((8,), (2,))
    """
    arrays, rebuild = _flatten_dataset(dataset)
    total = len(arrays[0])
    left_count, right_count = _split_sizes(left_size, right_size, total)
    order = np.random.RandomState(seed).permutation(total) if shuffle else np.arange(total)
    left_indices = order[:left_count]
    right_indices = order[total - right_count :]
    return (
        rebuild([_take(array, left_indices) for array in arrays]),
        rebuild([_take(array, right_indices) for array in arrays]),
    )


def _flatten_dataset(dataset: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    if isinstance(dataset, dict):
        keys = list(dataset)
        arrays = [dataset[key] for key in keys]
        rebuild: Callable[[list[Any]], Any] = lambda parts: dict(zip(keys, parts))
    elif isinstance(dataset, (tuple, list)):
        arrays = list(dataset)
        kind = type(dataset)
        rebuild = lambda parts: kind(parts)
    else:
        arrays = [dataset]
        rebuild = lambda parts: parts[0]
    if not arrays:
        raise ValueError("`dataset` is empty; pass an array or a tuple/list/dict of arrays.")
    arrays = [array if isinstance(array, torch.Tensor) else np.asarray(array) for array in arrays]
    if any(array.ndim == 0 for array in arrays):
        raise ValueError(
            "Each part of `dataset` must be an array of samples, but got a scalar. Pass a list "
            "of samples as one array: split_dataset(np.asarray(samples), ...)."
        )
    lengths = {len(array) for array in arrays}
    if len(lengths) != 1:
        raise ValueError(
            f"The arrays of `dataset` must have the same length (samples). Received lengths {sorted(lengths)}."
        )
    return arrays, rebuild


def _take(array: Any, indices: np.ndarray) -> Any:
    if isinstance(array, torch.Tensor):
        return array[torch.as_tensor(indices, device=array.device)]
    return array[indices]


def _split_sizes(left_size: Any, right_size: Any, total: int) -> tuple[int, int]:
    if left_size is None and right_size is None:
        raise ValueError(
            "Pass at least one of `left_size` and `right_size` (a count or a fraction)."
        )
    counts = []
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if size is None:
            counts.append(None)
        elif isinstance(size, float):
            if not 0 < size < 1:
                raise ValueError(f"A float `{name}` must lie in (0, 1). Received: {name}={size}.")
            counts.append(round(size * total))
        elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            if not 0 < size < total:
                raise ValueError(
                    f"An integer `{name}` must lie in [1, {total - 1}] for a dataset of {total} "
                    f"samples. Received: {name}={size}."
                )
            counts.append(int(size))
        else:
            raise TypeError(f"`{name}` must be an int, a float or None. Received: {name}={size!r}.")
    left, right = counts
    left = total - right if left is None else left
    right = total - left if right is None else right
    if left + right > total:
        raise ValueError(
            f"`left_size` + `right_size` = {left + right} samples exceeds the dataset's {total}."
        )
    if left == 0 or right == 0:
        raise ValueError(
            f"With {total} samples, left_size={left_size} and right_size={right_size} leave one "
            "side empty. Adjust the sizes."
        )
    return left, right
