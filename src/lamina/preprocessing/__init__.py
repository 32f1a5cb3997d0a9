"""`lamina.preprocessing`: Keras's `keras.preprocessing` (text, sequence and image modules)."""

from lamina.preprocessing import image, sequence, text
from lamina.utils.dataset_utils import image_dataset_from_directory, text_dataset_from_directory
from lamina.utils.timeseries_dataset_utils import timeseries_dataset_from_array

__all__ = ["image", "sequence", "text", "image_dataset_from_directory", "text_dataset_from_directory",
           "timeseries_dataset_from_array"]
