"""What several checks share: the gradient profile over depth and remedy wording."""

from __future__ import annotations

import numpy as np

from lamina.diagnostics.doctor import Run, layer_range


def depth_profile(run: Run) -> tuple[list[int], np.ndarray, np.ndarray] | None:
    """(kernel unit indices in forward order, their median gradient RMS over the finite
    samples, and the per-sample log10 ratio output-side / input-side)."""
    kernels = run.kernel_units()
    if len(kernels) < 3 or not len(run.grad_rms):
        return None
    grads = run.grad_rms[:, kernels]
    rows = np.isfinite(grads).all(axis=1) & (grads[:, -1] > 0) & (grads[:, 0] >= 0)
    if not rows.any():
        return None
    median = np.median(grads[rows], axis=0)
    with np.errstate(divide="ignore"):
        ratios = np.full(len(grads), np.nan)
        ratios[rows] = np.log10(grads[rows, -1] / np.maximum(grads[rows, 0], 1e-45))
    return kernels, median, ratios


def hidden_names(run: Run, activations: tuple[str, ...]) -> list[str]:
    """Hidden layers (all weighted layers but the output one) using one of `activations`,
    for lamina layers by their `activation` and for torch modules by the watched taps."""
    kernels = run.kernel_units()[:-1]
    names = [run.units[i]["name"] for i in kernels
             if run.units[i].get("activation") in activations]
    names += [t["name"] for t in run.model.get("taps", [])
              if t["kind"] in activations and t.get("hidden") and t["name"] not in names]
    return names


def initializer_remedy(run: Run, names: list[str], wanted: str) -> str | None:
    """'use kernel_initializer=...' naming the layers whose initializer is another one."""
    by_name = {u["name"]: u for u in run.units}
    other = [n for n in names if by_name.get(n, {}).get("initializer") not in (None, wanted)]
    if not other:
        return None
    current = sorted({by_name[n]["initializer"] for n in other})
    return (f"use kernel_initializer='{wanted}' in {layer_range(other)} (now "
            f"{', '.join(current)})")


def loss_key(run: Run) -> str:
    """The compiled loss as a snake_case name: 'binary_crossentropy', 'mean_squared_error'."""
    import re

    name = run.loss_name
    aliases = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
                "KLDivergence": "kl_divergence", "kld": "kl_divergence"}
    name = aliases.get(name, name)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


CLASSIFICATION_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy",
                         "binary_crossentropy", "binary_focal_crossentropy",
                         "categorical_focal_crossentropy", "sparse_categorical_focal_crossentropy",
                         "hinge", "squared_hinge", "categorical_hinge")


def class_shares(run: Run) -> np.ndarray | None:
    """The sampled label distribution over the classes, for a classification loss."""
    labels = run.labels
    if labels is None or loss_key(run) not in CLASSIFICATION_LOSSES:
        return None
    histogram = np.asarray(labels["histogram"], float)
    width = run.output_width or len(histogram)
    if loss_key(run).startswith(("binary", "hinge", "squared_hinge")) and width == 1:
        histogram = histogram[:2]
    else:
        histogram = histogram[:max(width, 2)]
    total = histogram.sum()
    return histogram / total if total > 0 else None
