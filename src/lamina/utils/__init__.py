"""`lamina.utils`: data pipelines, image files, label encoding and downloads (Keras's `keras.utils`)."""

from lamina.config import set_random_seed
from lamina.datasets._download import get_file
from lamina.preprocessing.sequence import pad_sequences
from lamina.utils.dataset import (
    AUTOTUNE,
    INFINITE_CARDINALITY,
    UNKNOWN_CARDINALITY,
    Dataset,
    StringTensor,
    TensorSpec,
)
from lamina.utils.dataset_utils import (
    image_dataset_from_directory,
    split_dataset,
    text_dataset_from_directory,
)
from lamina.utils.image_utils import array_to_img, img_to_array, load_img, save_img
from lamina.utils.model_visualization import model_to_dot, plot_model
from lamina.utils.numerical import normalize, to_categorical
from lamina.utils.progbar import Progbar
from lamina.utils.py_dataset import PyDataset, Sequence, iterate_batches
from lamina.utils.timeseries_dataset_utils import timeseries_dataset_from_array

__all__ = [
    "AUTOTUNE",
    "Dataset",
    "INFINITE_CARDINALITY",
    "UNKNOWN_CARDINALITY",
    "Progbar",
    "PyDataset",
    "Sequence",
    "StringTensor",
    "TensorSpec",
    "array_to_img",
    "get_file",
    "image_dataset_from_directory",
    "img_to_array",
    "iterate_batches",
    "load_img",
    "model_to_dot",
    "normalize",
    "pad_sequences",
    "plot_model",
    "save_img",
    "set_random_seed",
    "split_dataset",
    "text_dataset_from_directory",
    "timeseries_dataset_from_array",
    "to_categorical",
]
