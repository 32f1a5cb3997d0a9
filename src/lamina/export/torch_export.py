"""A model as a `torch.export` program (`.pt2`): the graph of aten ops with the weights,
runnable without Lamina (`torch.export.load(path).module()(x)`) and the input of AOTInductor
and ExecuTorch."""

from __future__ import annotations

import os
from typing import Any

import torch

from lamina.export.signature import (
    InferenceWrapper,
    example_inputs,
    quiet_torch_deprecations,
)


def traced_program(model: Any, input_signature: Any = None, strict: bool = False
                   ) -> tuple[torch.export.ExportedProgram, tuple[Any, ...]]:
    """`(program, example args)`: `model` in inference mode traced by `torch.export`, with
    the batch (and every None dimension of the signature) left dynamic."""
    args, dynamic_shapes, _ = example_inputs(model, input_signature)
    was_training = model.training
    wrapper = InferenceWrapper(model).eval()
    try:
        with quiet_torch_deprecations():
            program = torch.export.export(
                wrapper, args, dynamic_shapes=dynamic_shapes, strict=strict
            )
    finally:
        model.train(was_training)
    return program, args


def export_torch(model: Any, filepath: str | os.PathLike, input_signature: Any = None,
                 verbose: bool = True, strict: bool = False) -> torch.export.ExportedProgram:
    """Save `model` as a `.pt2` torch.export archive (inference mode, dynamic batch)."""
    program, _ = traced_program(model, input_signature, strict=strict)
    with quiet_torch_deprecations():
        torch.export.save(program, os.fspath(filepath))
    if verbose:
        print(f"Saved a torch.export program of {getattr(model, 'name', 'the model')!r} to "
              f"{os.fspath(filepath)!r}; load it with torch.export.load(path).module().")
    return program
