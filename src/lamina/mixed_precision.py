"""Keras's `mixed_precision` names: `set_global_policy('mixed_bfloat16')` and friends, and
`layer_compute_dtypes(model)`: which layers run in bf16 and which fall back to float32."""

from __future__ import annotations

from lamina.training.precision import (
    DTypePolicy,
    global_policy,
    layer_compute_dtypes,
    set_global_policy,
)

Policy = DTypePolicy
dtype_policies = DTypePolicy

__all__ = ["DTypePolicy", "Policy", "global_policy", "layer_compute_dtypes", "set_global_policy"]
