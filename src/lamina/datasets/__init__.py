"""`lamina.datasets`: Keras-style `load_data()` for small benchmark data sets.

`digits` is bundled with scikit-learn (offline); the others download once into
`~/.lamina/datasets` (or `$LAMINA_DATA_DIR`) with checksum verification.
"""

from lamina.datasets import cifar10, cifar100, digits, fashion_mnist, imdb, mnist

__all__ = ["cifar10", "cifar100", "digits", "fashion_mnist", "imdb", "mnist"]
