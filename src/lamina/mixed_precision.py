"""Keras's `mixed_precision` names: `set_global_policy('mixed_bfloat16')` and friends, and
`layer_compute_dtypes(model)`: which layers run in bf16 and which fall back to float32.

As in Keras, a layer takes the global policy when it is created (or its own `dtype=`, which
may name a policy) and keeps it: `set_global_policy` changes the layers created after the call,
not those that exist. A model trains under autocast when its layers have a mixed policy (or when
`compile(mixed_precision=...)` says so). This module is a leaf (torch and config only) so that
`Layer` can read the policy at construction.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina import config

# Policy name -> the autocast dtype it runs under (None: no autocast). Lamina's "float16" and
# "bfloat16" global policies autocast too, with float32 variables.
_POLICIES = {
    "float32": None,
    "mixed_float16": torch.float16,
    "mixed_bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
_GLOBAL_POLICY = "float32"


class DTypePolicy:
    """A named precision policy: what a layer computes in and what its variables are stored in.

    `mixed_bfloat16` / `mixed_float16`: compute in the low dtype under autocast, variables
    float32. A plain dtype name (a layer's `dtype="float64"`): both in that dtype.
    """

    def __init__(self, name: str):
        if name not in _POLICIES and name not in config._DTYPES:
            raise ValueError(
                f"Unknown dtype policy {name!r}. Valid policies are: {', '.join(_POLICIES)} "
                f"(or a dtype name: {', '.join(config._DTYPES)})."
            )
        self.name = name

    @property
    def compute_dtype(self) -> str:
        dtype = _POLICIES.get(self.name)
        return self.name if dtype is None else config.dtype_name(dtype)

    @property
    def variable_dtype(self) -> str:
        return "float32" if _POLICIES.get(self.name) is not None else self.name

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self.name}">'

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


def set_global_policy(policy: str | DTypePolicy) -> None:
    """Set the policy of the layers created after this call (Keras's semantics): models built
    from them train under its autocast. Layers that already exist keep theirs."""
    global _GLOBAL_POLICY
    name = policy.name if isinstance(policy, DTypePolicy) else policy
    if not isinstance(name, str) or name not in _POLICIES:
        raise ValueError(
            f"Unknown dtype policy {name!r}. Valid policies are: {', '.join(_POLICIES)}. "
            "Pass one of these names or a DTypePolicy."
        )
    _GLOBAL_POLICY = name


def global_policy() -> DTypePolicy:
    return DTypePolicy(_GLOBAL_POLICY)


def autocast_dtype(policy_name: str | None) -> torch.dtype | None:
    """The autocast dtype of a policy name (None for non-mixed policies and for None)."""
    return _POLICIES.get(policy_name) if policy_name is not None else None


def layer_policy(dtype: Any) -> tuple[str | None, Any]:
    """What a layer created now with `dtype=` takes: (its autocast policy name, or None when
    it computes in its variables' dtype; the `dtype` its variables are created in, None
    meaning floatx)."""
    if isinstance(dtype, DTypePolicy):
        dtype = dtype.name
    if dtype is None:
        return (_GLOBAL_POLICY if _POLICIES[_GLOBAL_POLICY] is not None else None), None
    if isinstance(dtype, str) and dtype.startswith("mixed_"):
        DTypePolicy(dtype)
        return dtype, "float32"
    return None, dtype


def layer_compute_dtypes(model: torch.nn.Module) -> dict[str, str]:
    """`{layer name: dtype}` for each layer with weights: the dtype its matmuls and
    convolutions run in under the model's compiled precision (or its layers' policies)."""
    from lamina.training.precision import layer_compute_dtypes as report

    return report(model)


Policy = DTypePolicy
dtype_policies = DTypePolicy

__all__ = ["DTypePolicy", "Policy", "global_policy", "layer_compute_dtypes", "set_global_policy"]
