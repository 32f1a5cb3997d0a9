"""The iterators `ImageDataGenerator.flow*` return: `lamina.utils.PyDataset`s of augmented batches.

Randomness is drawn per batch from a generator seeded by (seed, epoch, batch index), so a batch
is the same whichever worker thread builds it and `set_random_seed` makes runs reproducible.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, Protocol, Sequence

import numpy as np

from lamina import config
from lamina.preprocessing.image.affine import _fresh_seed
from lamina.utils.dataset_utils import (
    check_directory,
    check_same_image_size,
    class_subdirectories,
    list_files,
)
from lamina.utils.image_utils import (
    check_color_mode,
    check_interpolation,
    check_size,
    img_to_array,
    load_img,
    save_img,
)
from lamina.utils.py_dataset import PyDataset


class Augmenter(Protocol):
    """What an iterator asks of its `ImageDataGenerator`; written here so that generator.py,
    which builds the iterators, is the only one of the two modules that imports the other."""

    validation_split: float

    def _random_transform(self, img_shape: Sequence[int], rng: np.random.Generator
                          ) -> dict[str, Any]: ...

    def apply_transform(self, x: np.ndarray, transform_parameters: dict[str, Any]
                        ) -> np.ndarray: ...

    def standardize(self, x: np.ndarray) -> np.ndarray: ...


class Iterator(PyDataset):
    """Base of the `flow*` iterators: `n` samples in batches, reshuffled every epoch.

    Indexing (`iterator[i]`) gives batch `i` of the current epoch; `next(iterator)` walks the
    batches endlessly, epoch after epoch, as Keras's iterators do.
    """

    white_list_formats = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int | None) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}.")
        self.n = n
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self._base_seed = _fresh_seed() if seed is None else seed
        self._index_array: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, idx: int) -> Any:
        if not 0 <= idx < len(self):
            raise IndexError(f"Asked for batch {idx}, but the iterator has {len(self)} batches.")
        return self._batch(self.epoch, idx)

    def _batch(self, epoch: int, idx: int) -> Any:
        index_array = self._epoch_index_array(epoch)[idx * self.batch_size : (idx + 1) * self.batch_size]
        rng = np.random.default_rng([self._base_seed, epoch, idx])
        return self._get_batches_of_transformed_samples(index_array, rng)

    def _epoch_index_array(self, epoch: int) -> np.ndarray:
        with self.lock:
            if self._index_array is None or self._index_array[0] != epoch:
                if self.shuffle:
                    order = np.random.default_rng([self._base_seed, epoch]).permutation(self.n)
                else:
                    order = np.arange(self.n)
                self._index_array = (epoch, order)
            return self._index_array[1]

    def on_epoch_end(self) -> None:
        self.epoch += 1

    # Worker processes (use_multiprocessing) receive a pickled copy; locks do not pickle.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()

    def reset(self) -> None:
        self.batch_index = 0

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        if self.n == 0:
            raise StopIteration
        with self.lock:
            epoch, idx = self.epoch, self.batch_index
            self.batch_index += 1
            self.total_batches_seen += 1
            wrapped = self.batch_index >= len(self)
            if wrapped:
                self.batch_index = 0
        if wrapped:
            self.on_epoch_end()
        return self._batch(epoch, idx)

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def _save_batch(self, batch_x: np.ndarray, index_array: np.ndarray, rng: np.random.Generator) -> None:
        for image, index in zip(batch_x, index_array):
            name = f"{self.save_prefix}_{index}_{rng.integers(10**7)}.{self.save_format}"
            save_img(os.path.join(self.save_to_dir, name), image, data_format=self.data_format, scale=True)


class NumpyArrayIterator(Iterator):
    """Batches of augmented images from an in-memory array `x` (with labels `y`).

    `x` is a rank-4 array or a list of equally shaped 3D images; a tuple `(images, extra)`
    also yields the `extra` array(s) (batched, not augmented) beside the images, as in Keras.
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        image_data_generator: Augmenter,
        batch_size: int = 32,
        shuffle: bool = False,
        sample_weight: Any = None,
        seed: int | None = None,
        data_format: str | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: str | None = None,
        ignore_class_split: bool = False,
        dtype: str | None = None,
    ) -> None:
        self.dtype = np.dtype(dtype or config.floatx()).name
        self.data_format = config.standardize_data_format(data_format)
        if isinstance(x, tuple):
            extras = x[1] if isinstance(x[1], list) else [x[1]]
            x_misc = [np.asarray(extra) for extra in extras]
            x = x[0]
        else:
            x_misc = []
        x = _stack_images(x)
        for extra in x_misc:
            if len(extra) != len(x):
                raise ValueError(
                    f"All arrays in `x` must have the same length; the images have {len(x)} and an "
                    f"extra array {len(extra)}."
                )
        if y is not None:
            y = np.asarray(y)
            if len(y) != len(x):
                raise ValueError(
                    f"`x` (images) and `y` (labels) must have the same length. Received "
                    f"x.shape={x.shape}, y.shape={y.shape}."
                )
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
            if len(sample_weight) != len(x):
                raise ValueError(
                    f"`x` and `sample_weight` must have the same length. Received x.shape={x.shape}, "
                    f"sample_weight.shape={sample_weight.shape}."
                )
        if subset is not None:
            split = _split_index(len(x), image_data_generator, subset)
            if y is not None and not ignore_class_split and not np.array_equal(
                np.unique(y[:split]), np.unique(y[split:])
            ):
                raise ValueError(
                    "The training and validation subsets hold different classes after the split "
                    "(the validation subset is the first validation_split of the data). If the "
                    "arrays are sorted by label, shuffle them first, or pass ignore_class_split=True."
                )
            part = slice(0, split) if subset == "validation" else slice(split, len(x))
            x, x_misc = x[part], [extra[part] for extra in x_misc]
            y = None if y is None else y[part]
            sample_weight = None if sample_weight is None else sample_weight[part]
        if x.ndim != 4:
            raise ValueError(
                f"`x` must be a batch of images of rank 4 (batch, height, width, channels for "
                f"channels_last). Received an array of shape {x.shape}; for grayscale images of "
                "shape (batch, height, width) add a channel axis: x[..., None]."
            )
        if len(x) == 0:
            raise ValueError("`x` holds no images (after the subset split); nothing to iterate.")
        self.x = np.asarray(x, dtype=self.dtype)
        self.x_misc = x_misc
        self.y = y
        self.sample_weight = sample_weight
        self.image_data_generator = image_data_generator
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        super().__init__(len(self.x), batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray, rng: np.random.Generator) -> Any:
        generator = self.image_data_generator
        batch_x = np.zeros((len(index_array),) + self.x.shape[1:], dtype=self.dtype)
        for i, j in enumerate(index_array):
            image = self.x[j].copy()
            image = generator.apply_transform(image, generator._random_transform(image.shape, rng))
            batch_x[i] = generator.standardize(image)
        if self.save_to_dir:
            self._save_batch(batch_x, index_array, rng)
        inputs = [batch_x] + [extra[index_array] for extra in self.x_misc] if self.x_misc else batch_x
        if self.y is None:
            return inputs
        if self.sample_weight is None:
            return inputs, self.y[index_array]
        return inputs, self.y[index_array], self.sample_weight[index_array]


def _stack_images(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, list) and x and all(hasattr(image, "shape") for image in x):
        shapes = [tuple(image.shape) for image in x]
        for position, shape in enumerate(shapes):
            if shape != shapes[0]:
                raise ValueError(
                    f"`x` holds images of different shapes: {shapes[0]} at position 0 and {shape} "
                    f"at position {position}. flow() batches images into one array, so they must "
                    "share a shape: resize them first (lamina.utils.load_img(path, target_size=...)) "
                    "or use flow_from_directory(target_size=...)."
                )
        return np.stack(x)
    return np.asarray(x)


def _split_index(count: int, generator: Augmenter, subset: str) -> int:
    if subset not in ("training", "validation"):
        raise ValueError(f"`subset` must be 'training' or 'validation'. Received: subset={subset!r}.")
    if not generator.validation_split:
        raise ValueError(
            f"subset={subset!r} needs a validation split: create the generator with "
            "ImageDataGenerator(validation_split=0.2, ...)."
        )
    return int(count * generator.validation_split)


class DirectoryIterator(Iterator):
    """Batches of augmented images read from `directory/<class>/<image>` files.

    Attributes after construction: `filenames` (relative to `directory`), `filepaths`,
    `classes` (int32 label per file), `class_indices` (name -> label), `num_classes`, `samples`.
    """

    allowed_class_modes = ("categorical", "binary", "sparse", "input", None)

    def __init__(
        self,
        directory: str | os.PathLike,
        image_data_generator: Augmenter | None,
        target_size: tuple[int, int] | None = (256, 256),
        color_mode: str = "rgb",
        classes: Sequence[str] | None = None,
        class_mode: str | None = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        data_format: str | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        follow_links: bool = False,
        subset: str | None = None,
        interpolation: str = "nearest",
        keep_aspect_ratio: bool = False,
        dtype: str | None = None,
    ) -> None:
        self.directory = check_directory(directory)
        channels = check_color_mode(color_mode)
        if class_mode not in self.allowed_class_modes:
            raise ValueError(
                f"Invalid class_mode {class_mode!r}; expected one of {self.allowed_class_modes}."
            )
        check_interpolation(interpolation)
        self.target_size = None if target_size is None else check_size(target_size, "target_size")
        self.color_mode = color_mode
        self.class_mode = class_mode
        self.data_format = config.standardize_data_format(data_format)
        self.dtype = np.dtype(dtype or config.floatx()).name
        self.image_data_generator = image_data_generator
        self.interpolation = interpolation
        self.keep_aspect_ratio = keep_aspect_ratio
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.subset = subset
        if subset is None:
            bounds = (0.0, 1.0)
        else:
            if image_data_generator is None:
                raise ValueError("`subset` needs an ImageDataGenerator with a validation_split.")
            split = image_data_generator.validation_split
            _split_index(1, image_data_generator, subset)
            bounds = (0.0, split) if subset == "validation" else (split, 1.0)

        class_names = class_subdirectories(self.directory, classes)
        self.class_indices = {name: index for index, name in enumerate(class_names)}
        self.num_classes = len(class_names)
        if class_mode == "binary" and self.num_classes != 2:
            raise ValueError(
                f"class_mode='binary' needs exactly 2 classes; found {self.num_classes}: "
                f"{class_names}. Use class_mode='categorical' or 'sparse'."
            )
        formats = tuple("." + extension for extension in self.white_list_formats)
        self.filenames: list[str] = []
        labels: list[int] = []
        total_found = 0
        for name in class_names:
            class_directory = os.path.join(self.directory, name)
            files = list_files(class_directory, formats, follow_links)
            total_found += len(files)
            # Each class is split separately so both subsets keep every class.
            start, stop = int(bounds[0] * len(files)), int(bounds[1] * len(files))
            for path in files[start:stop]:
                self.filenames.append(os.path.join(name, os.path.relpath(path, class_directory)))
                labels.append(self.class_indices[name])
        if total_found == 0:
            raise ValueError(
                f"No images found in the class subdirectories of {self.directory!r} "
                f"({', '.join(class_names)}). Allowed formats: {', '.join(self.white_list_formats)}."
            )
        if not self.filenames:
            raise ValueError(
                f"The {subset} subset of {self.directory!r} is empty ({total_found} images, "
                f"validation_split={image_data_generator.validation_split}). Add images or change "
                "validation_split."
            )
        self.classes = np.asarray(labels, dtype=np.int32)
        self.samples = len(self.filenames)
        self.filepaths = [os.path.join(self.directory, name) for name in self.filenames]
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        if self.target_size is None:
            check_same_image_size(self.filepaths, "target_size")
        size = self.target_size or _image_size(self.filepaths[0])
        self.image_shape = size + (channels,) if self.data_format == "channels_last" else (channels,) + size
        super().__init__(self.samples, batch_size, shuffle, seed)

    @property
    def labels(self) -> np.ndarray:
        return self.classes

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray, rng: np.random.Generator) -> Any:
        batch_x = np.zeros((len(index_array),) + self.image_shape, dtype=self.dtype)
        generator = self.image_data_generator
        for i, j in enumerate(index_array):
            image = load_img(
                self.filepaths[j], color_mode=self.color_mode, target_size=self.target_size,
                interpolation=self.interpolation, keep_aspect_ratio=self.keep_aspect_ratio,
            )
            x = img_to_array(image, data_format=self.data_format, dtype=self.dtype)
            image.close()
            if generator is not None:
                x = generator.apply_transform(x, generator._random_transform(x.shape, rng))
                x = generator.standardize(x)
            batch_x[i] = x
        if self.save_to_dir:
            self._save_batch(batch_x, index_array, rng)
        if self.class_mode is None:
            return batch_x
        if self.class_mode == "input":
            return batch_x, batch_x.copy()
        if self.class_mode in ("binary", "sparse"):
            return batch_x, self.classes[index_array].astype(self.dtype)
        return batch_x, np.eye(self.num_classes, dtype=self.dtype)[self.classes[index_array]]


def _image_size(path: str) -> tuple[int, int]:
    with load_img(path) as image:
        return (image.height, image.width)
