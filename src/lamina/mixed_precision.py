"""Keras's `mixed_precision` names: `set_global_policy('mixed_bfloat16')` and friends."""

from lamina.training.precision import DTypePolicy, global_policy, set_global_policy

Policy = DTypePolicy
dtype_policies = DTypePolicy

__all__ = ["DTypePolicy", "Policy", "global_policy", "set_global_policy"]
