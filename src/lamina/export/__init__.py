"""Exporting a model for serving and interchange: ONNX (torch.onnx), a torch.export program
(`.pt2`), and weights as safetensors or torch state-dict files.

`export_model` is what `Model.export(filepath, format=...)` calls; `save_safetensors` and
`load_weights_file` are what `save_weights` / `load_weights` call for `.safetensors`, `.pt`,
`.pth` and `.bin` files.
"""

from __future__ import annotations

import os
from typing import Any

from lamina.export.onnx import export_onnx
from lamina.export.safetensors import (
    WEIGHT_SUFFIXES,
    load_weights_file,
    map_keys,
    save_safetensors,
)
from lamina.export.signature import example_inputs
from lamina.export.torch_export import export_torch

FORMATS = {"onnx": ".onnx", "torch": ".pt2"}


def export_model(model: Any, filepath: str | os.PathLike, format: str | None = None,
                 verbose: bool = True, input_signature: Any = None, **kwargs: Any) -> Any:
    """Write `model` in `format` ("onnx" or "torch"); None picks it from the file's suffix.

    Returns torch's own result (the `torch.export.ExportedProgram` for "torch", the
    `torch.onnx.ONNXProgram` for "onnx").
    """
    path = os.fspath(filepath)
    if format is None:
        format = next((name for name, suffix in FORMATS.items() if path.endswith(suffix)), None)
        if format is None:
            raise ValueError(
                "Cannot tell the export format from the file name. Name the file `.onnx` or "
                f"`.pt2`, or pass format='onnx' or format='torch'. Received: filepath={path!r}."
            )
    if format == "onnx":
        return export_onnx(model, path, input_signature=input_signature, verbose=verbose, **kwargs)
    if format == "torch":
        return export_torch(model, path, input_signature=input_signature, verbose=verbose,
                            **kwargs)
    hint = (" Lamina runs on torch, with no TensorFlow: export to 'onnx' (served by onnxruntime, "
            "TensorRT, OpenVINO, ...) or 'torch' (torch.export) instead."
            if format in ("tf_saved_model", "litert", "openvino") else "")
    raise ValueError(
        f"Unknown export format {format!r}. Valid formats are: 'onnx', 'torch'.{hint}"
    )


__all__ = [
    "FORMATS",
    "WEIGHT_SUFFIXES",
    "example_inputs",
    "export_model",
    "export_onnx",
    "export_torch",
    "load_weights_file",
    "map_keys",
    "save_safetensors",
]
