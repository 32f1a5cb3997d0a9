"""`lamina.utils`: data pipelines, image files, label encoding and downloads (Keras's `keras.utils`)."""

from lamina.config import set_random_seed
from lamina.datasets._download import get_file
from lamina.preprocessing.sequence import pad_sequences
from lamina.utils.dataset_utils import (
    image_dataset_from_directory,
    split_dataset,
    text_dataset_from_directory,
)
from lamina.utils.image_utils import array_to_img, img_to_array, load_img, save_img
from lamina.utils.numerical import normalize, to_categorical
from lamina.utils.py_dataset import PyDataset, Sequence, iterate_batches

__all__ = [
    "PyDataset",
    "Sequence",
    "array_to_img",
    "get_file",
    "image_dataset_from_directory",
    "img_to_array",
    "iterate_batches",
    "load_img",
    "normalize",
    "pad_sequences",
    "save_img",
    "set_random_seed",
    "split_dataset",
    "text_dataset_from_directory",
    "to_categorical",
]
