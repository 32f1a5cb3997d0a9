"""Keras 3's `keras.ops` on torch: NumPy-style, neural-network, linear-algebra, math, image and
core ops. Each takes tensors, NumPy arrays, Python scalars or lists, and works on the symbolic
inputs of a functional model, where it records one node saved by its name (docs/ops.md)."""

from lamina.ops import core, image, linalg, math, nn, numpy
from lamina.ops.core import *  # noqa: F401,F403
from lamina.ops.linalg import *  # noqa: F401,F403
from lamina.ops.math import *  # noqa: F401,F403
from lamina.ops.nn import *  # noqa: F401,F403
from lamina.ops.numpy import *  # noqa: F401,F403

__all__ = sorted({*core.__all__, *linalg.__all__, *math.__all__, *nn.__all__, *numpy.__all__}
                 ) + ["core", "image", "linalg", "math", "nn", "numpy"]
