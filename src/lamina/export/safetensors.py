"""Weights as safetensors, and torch checkpoints (`.safetensors`, `.pt`, `.pth`, `.bin`) into
Lamina models.

`save_safetensors` writes the model's torch `state_dict` (its parameter and buffer names, torch
layouts), so the file loads in plain torch with `safetensors.torch.load_file` and
`module.load_state_dict`. `load_weights_file` reads such a file, or a torch checkpoint saved with
`torch.save(state_dict)`, with no code execution: safetensors files hold a JSON header and raw
bytes, and `.pt`/`.pth`/`.bin` files are read by `torch.load(weights_only=True)`, whose unpickler
only rebuilds tensors and containers (anything else is refused, never run).

Loading is all or nothing, as for `.weights.h5`: every tensor is read and checked (names,
shapes, dtype kinds, finite values) before the model changes; on any error the model is left
as it was and a `FileFormatError` says what was wrong. Checkpoints in another model's naming
are mapped: keys of a torchvision-style model (`layer1.0.conv1.weight`, also the zoo's ResNets)
go through `lamina.applications.load_torch_state_dict`, and `key_map="huggingface-resnet"`
first renames transformers' `ResNetForImageClassification` keys to torchvision's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from lamina.errors import FileFormatError, UnsafeLoadError
from lamina.saving.file_format import atomic_write, check_overwrite

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
# Prefixes that wrappers add to every key: DataParallel/DDP's `module.`, torch.compile's
# `_orig_mod.`.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# A checkpoint dict that nests its weights under one of these keys (Lightning, common training
# scripts) is unwrapped.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")

# transformers' ResNetForImageClassification (microsoft/resnet-*) -> torchvision's names.
_HUGGINGFACE_RESNET = (
    (r"^resnet\.embedder\.embedder\.convolution\.", "conv1."),
    (r"^resnet\.embedder\.embedder\.normalization\.", "bn1."),
    (r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.",
     lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0."),
    (r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.",
     lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.1."),
    (r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.convolution\.",
     lambda m: f"layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}."),
    (r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.normalization\.",
     lambda m: f"layer{int(m[1]) + 1}.{m[2]}.bn{int(m[3]) + 1}."),
    (r"^classifier\.1\.", "fc."),
)
KEY_MAPS: dict[str, tuple[tuple[str, Any], ...]] = {"huggingface-resnet": _HUGGINGFACE_RESNET}

KeyMap = str | Mapping[str, str] | Callable[[str], str | None] | None


def save_safetensors(model: torch.nn.Module, filepath: str | os.PathLike,
                     overwrite: bool = True) -> None:
    """Write `model.state_dict()` to a `.safetensors` file (atomically)."""
    from safetensors.torch import save_file

    path = os.fspath(filepath)
    check_overwrite(path, overwrite)
    if not getattr(model, "built", True):
        raise ValueError(
            f"Model {getattr(model, 'name', '?')!r} is not built yet, so it has no weights to "
            "save. Call it on data or build it first."
        )
    # Tied weights share storage, which safetensors refuses: each tensor gets its own copy.
    tensors = {key: value.detach().to("cpu", copy=True).contiguous()
               for key, value in model.state_dict().items()}
    metadata = {"format": "pt", "producer": f"lamina {_lamina_version()}"}
    atomic_write(path, lambda temporary: save_file(tensors, temporary, metadata=metadata))


def _lamina_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lamina")
    except metadata.PackageNotFoundError:
        return "unknown"


def read_state_dict(filepath: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a `.safetensors` or torch (`.pt`/`.pth`/`.bin`) weights file, by name,
    without running code from the file."""
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file found at {path!r}; cannot load weights from it.")
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    return _read_torch(path)


def _read_safetensors(path: str) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # noqa: BLE001 - a damaged header makes the reader raise anything
        raise FileFormatError(
            f"{path!r} is not a readable safetensors file (it may be truncated or of another "
            f"format). Original error: {type(error).__name__}: {error}"
        ) from None


def _read_torch(path: str) -> dict[str, torch.Tensor]:
    import pickle

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as error:
        # torch's weights-only unpickler names a refused callable or class ("GLOBAL os.system");
        # any other refusal is a stream that is not a pickle of tensors at all.
        refused = re.search(r"(GLOBAL \S+)|Unsupported (global|class)[^\n]*", str(error))
        if refused is None:
            raise FileFormatError(
                f"{path!r} is not a readable torch checkpoint (it may be truncated or of another "
                f"format): torch.load(weights_only=True) could not parse it."
            ) from None
        raise UnsafeLoadError(
            f"{path!r} holds more than tensors: it asks to load {refused.group(0)}, which "
            "torch.load(weights_only=True) refused, and Lamina never unpickles arbitrary objects. "
            "Save the weights alone: torch.save(model.state_dict(), path), or use safetensors."
        ) from None
    except Exception as error:  # noqa: BLE001 - a damaged zip or pickle stream raises anything
        raise FileFormatError(
            f"{path!r} is not a readable torch checkpoint (it may be truncated or of another "
            f"format). Original error: {type(error).__name__}: {error}"
        ) from None
    if isinstance(loaded, Mapping):
        for key in _NESTED_KEYS:
            nested = loaded.get(key)
            if isinstance(nested, Mapping) and nested and all(
                isinstance(v, torch.Tensor) for v in nested.values()
            ):
                loaded = nested
                break
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise FileFormatError(
            f"{path!r} does not hold a state_dict (a mapping of names to tensors); it holds "
            f"{type(loaded).__name__}. Save model.state_dict(), not the model."
        )
    return dict(loaded)


def map_keys(state_dict: Mapping[str, torch.Tensor], key_map: KeyMap = None
             ) -> dict[str, torch.Tensor]:
    """Rename checkpoint keys: wrapper prefixes (`module.`, `_orig_mod.`) are always dropped;
    `key_map` is a preset name ("huggingface-resnet"), a `{old_prefix: new_prefix}` dict, or a
    function `key -> new key` (None drops the tensor)."""
    rename = _renamer(key_map)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        new_key = rename(key)
        if new_key is None:
            continue
        if new_key in mapped:
            raise FileFormatError(
                f"Two checkpoint tensors map to the key {new_key!r}; check key_map={key_map!r}."
            )
        mapped[new_key] = value
    return mapped


def _renamer(key_map: KeyMap) -> Callable[[str], str | None]:
    if key_map is None:
        return lambda key: key
    if callable(key_map):
        return key_map
    if isinstance(key_map, str):
        if key_map not in KEY_MAPS:
            raise ValueError(
                f"Unknown key_map {key_map!r}. Valid presets are: "
                f"{', '.join(repr(k) for k in KEY_MAPS)}; or pass a dict of prefixes or a function."
            )
        rules = [(re.compile(pattern), replacement) for pattern, replacement in KEY_MAPS[key_map]]

        def by_rules(key: str) -> str:
            for pattern, replacement in rules:
                if pattern.search(key):
                    return pattern.sub(replacement, key, count=1)
            return key

        return by_rules
    if isinstance(key_map, Mapping):
        prefixes = sorted(key_map.items(), key=lambda item: -len(item[0]))

        def by_prefix(key: str) -> str:
            for old, new in prefixes:
                if key.startswith(old):
                    return new + key[len(old):]
            return key

        return by_prefix
    raise TypeError(
        "`key_map` must be None, a preset name, a dict of prefixes or a function. "
        f"Received: {key_map!r}."
    )


def load_weights_file(model: torch.nn.Module, filepath: str | os.PathLike,
                      skip_mismatch: bool = False, key_map: KeyMap = None) -> None:
    """Load a `.safetensors` / `.pt` / `.pth` / `.bin` weights file into a built `model`.

    A file whose names are the model's own `state_dict` names (what `save_weights(...
    '.safetensors')` writes) loads tensor by tensor. Otherwise the file is taken as a torch
    model's checkpoint (torchvision's naming, after `key_map`) and converted to Keras layouts
    by `lamina.applications.load_torch_state_dict`. Either way nothing changes unless all of it
    loads.
    """
    path = os.fspath(filepath)
    if not getattr(model, "built", True):
        raise ValueError(
            f"Model {getattr(model, 'name', '?')!r} is not built, so its weights do not exist "
            "yet. Call it on data or build it before load_weights."
        )
    state = map_keys(read_state_dict(path), key_map)
    own = model.state_dict(keep_vars=True)
    if set(state) & set(own) and key_map is None:
        staged = _stage_own(own, state, path, skip_mismatch)
        with torch.no_grad():
            for target, value in staged:
                target.copy_(value)
        return
    _load_foreign(model, state, path)


def _stage_own(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], path: str,
               skip_mismatch: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(model tensor, checked value) pairs; raises before anything is copied."""
    import warnings

    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    problems: list[str] = []
    if missing:
        problems.append(f"the model's {', '.join(missing[:6])} are not in the file")
    if extra:
        problems.append(f"the file's {', '.join(extra[:6])} are not in the model")
    staged = []
    for key in sorted(set(own) & set(state)):
        target, value = own[key], state[key]
        if tuple(value.shape) != tuple(target.shape):
            problems.append(f"{key!r} has shape {tuple(value.shape)} in the file but "
                            f"{tuple(target.shape)} in the model")
            continue
        if value.is_floating_point() != target.is_floating_point() or (
            value.dtype == torch.bool) != (target.dtype == torch.bool):
            raise FileFormatError(
                f"{path!r}: {key!r} is stored as {value.dtype}, which cannot hold the model's "
                f"{target.dtype} tensor; the file is damaged or from another model."
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise FileFormatError(f"{path!r}: {key!r} holds NaN or infinite values; the file is "
                                  "damaged or the run that saved it diverged.")
        converted = value.to(dtype=target.dtype, device=target.device)
        if converted.is_floating_point() and not bool(torch.isfinite(converted).all()):
            raise FileFormatError(f"{path!r}: {key!r} holds values beyond the range of "
                                  f"{target.dtype}.")
        staged.append((target, converted))
    if problems and not skip_mismatch:
        raise FileFormatError(
            f"{path!r} does not fit the model: {'; '.join(problems)}. It was saved from a "
            "different architecture; pass skip_mismatch=True to load the tensors that match."
        )
    for problem in problems:
        warnings.warn(f"load_weights({path!r}): {problem}; skipping it.", stacklevel=4)
    return staged


def _load_foreign(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str) -> None:
    from lamina.applications.convert import load_torch_state_dict

    # The converter sets layer after layer; a late failure must not leave a half-loaded model.
    snapshot = {key: value.detach().clone() for key, value in model.state_dict().items()}
    try:
        load_torch_state_dict(model, state)
    except Exception as error:
        model.load_state_dict(snapshot)
        if isinstance(error, ValueError):
            raise FileFormatError(
                f"{path!r} does not fit model {getattr(model, 'name', '?')!r}: {error} "
                "(its names are neither the model's state_dict names nor a torchvision-style "
                "model's; pass key_map= to rename them)."
            ) from None
        raise
