"""`lamina.preprocessing`: Keras's `keras.preprocessing` (text, sequence and image modules)."""

from lamina.preprocessing import image, sequence, text
from lamina.utils.dataset_utils import image_dataset_from_directory, text_dataset_from_directory

__all__ = ["image", "sequence", "text", "image_dataset_from_directory", "text_dataset_from_directory"]
