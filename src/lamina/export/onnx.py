"""A model as ONNX through torch's exporter (`torch.onnx.export(..., dynamo=True)`), which
traces with `torch.export` and translates the aten graph with onnxscript. The batch dimension
stays dynamic; check the file with onnxruntime against `model.predict`."""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import torch

from lamina.export.signature import (
    InferenceWrapper,
    example_inputs,
    quiet_torch_deprecations,
)


def export_onnx(model: Any, filepath: str | os.PathLike, input_signature: Any = None,
                verbose: bool = True, opset_version: int | None = None,
                output_names: list[str] | None = None) -> Any:
    """Write `model` (in inference mode) as an ONNX file; returns torch's `ONNXProgram`.

    Args:
        input_signature: see `lamina.export.signature`; None uses the model's input shapes.
        verbose: print torch's export steps.
        opset_version: the ONNX opset; None lets torch choose (its newest tested opset).
        output_names: names of the graph outputs (default `output_0`, ...).
    """
    try:
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it
    except ImportError:
        raise ImportError(
            "Exporting to ONNX needs the `onnx` and `onnxscript` packages: "
            "pip install 'lamina[export]' (or pip install onnx onnxscript onnxruntime)."
        ) from None
    args, dynamic_shapes, names = example_inputs(model, input_signature)
    was_training = model.training
    wrapper = InferenceWrapper(model).eval()
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    try:
        with quiet, quiet_torch_deprecations():
            # One self-contained file: weights inline, not in a side file (models < 2 GB).
            program = torch.onnx.export(
                wrapper, args, os.fspath(filepath), dynamo=True,
                dynamic_shapes=dynamic_shapes,
                input_names=names, output_names=output_names, opset_version=opset_version,
                verbose=verbose, external_data=False,
            )
    finally:
        model.train(was_training)
    return program
