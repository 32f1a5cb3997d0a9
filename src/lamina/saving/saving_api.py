"""`save_model`/`load_model`/`save_weights`/`load_weights` with Keras's file conventions.

- `.keras`: a zip of `config.json` (architecture + compile settings), `metadata.json` and
  `model.weights.h5`.
- `.h5`: one HDF5 file, the architecture in the `model_config` attribute and the weights under
  `model_weights` (Keras's legacy format, the sheet's `model.save('model.h5')`).
- `.weights.h5` (or any `.h5` given to `save_weights`): weights only.

No load path unpickles or runs code; every write is atomic.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
from typing import Any

import h5py

from lamina.errors import FileFormatError
from lamina.saving.file_format import (
    atomic_write,
    check_overwrite,
    open_h5,
    read_weights,
    write_weights,
)
from lamina.saving.serialization import deserialize, serialize

FORMAT_VERSION = "1"


def _version() -> str:
    from lamina import __version__

    return __version__


def _model_document(model) -> dict[str, Any]:
    document = serialize(model)
    compile_config = getattr(model, "_compile_config", None)
    if compile_config is not None:
        from lamina.training.compile import serialize_compile_config

        document["compile_config"] = serialize_compile_config(compile_config)
    document["build_config"] = {"input_shape": _jsonable(getattr(model, "_build_input_shape", None))}
    return document


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def save_model(model, filepath: str | os.PathLike, overwrite: bool = True, **kwargs: Any) -> None:
    """Save a model to `.keras` or `.h5`."""
    path = str(filepath)
    check_overwrite(path, overwrite)
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} is not built yet, so it has no weights to save. Give the first "
            "layer an input_shape, start with lamina.Input(shape), or call the model on data first."
        )
    if path.endswith(".keras"):
        atomic_write(path, lambda temporary: _write_keras_zip(model, temporary))
    elif path.endswith(".h5") or path.endswith(".hdf5"):
        atomic_write(path, lambda temporary: _write_legacy_h5(model, temporary))
    else:
        raise ValueError(
            "Invalid filepath extension for saving: give a `.keras` (recommended) or `.h5` path. "
            f"Received: filepath={path!r}. For a PyTorch checkpoint use "
            "torch.save(model.state_dict(), path)."
        )


def _write_keras_zip(model, temporary: str) -> None:
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        write_weights(model, h5.create_group("model"))
    metadata = {"lamina_version": _version(), "format_version": FORMAT_VERSION,
                "date_saved": datetime.datetime.now().isoformat(timespec="seconds")}
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(_model_document(model)))
        archive.writestr("model.weights.h5", weights.getvalue())


def _write_legacy_h5(model, temporary: str) -> None:
    with h5py.File(temporary, "w") as h5:
        h5.attrs["model_config"] = json.dumps(_model_document(model))
        h5.attrs["lamina_version"] = _version()
        h5.attrs["backend"] = "torch"
        write_weights(model, h5.create_group("model_weights"))


def load_model(filepath: str | os.PathLike, custom_objects: dict[str, Any] | None = None,
               compile: bool = True, safe_mode: bool = True):
    """Load a model saved by `model.save` (architecture, weights and, if compiled, compile state)."""
    path = str(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file or directory found at {path!r}.")
    if path.endswith(".keras") or zipfile.is_zipfile(path):
        document, weights_bytes = _read_keras_zip(path)
        model = _model_from_document(document, custom_objects, safe_mode, path)
        with _weights_archive(weights_bytes, path) as h5:
            _read_weights_checked(model, h5, "model", path, skip_mismatch=False)
    else:
        with open_h5(path, "load a model from it") as h5:
            if "model_config" not in h5.attrs:
                if "model" in h5 or "model_weights" in h5:
                    raise FileFormatError(
                        f"{path!r} holds no model architecture (no `model_config`): it is a "
                        "weights file. Build the model in code and call model.load_weights(path)."
                    )
                raise FileFormatError(
                    f"{path!r} is an HDF5 file but not a Lamina/Keras model: it has neither a "
                    "model architecture nor weights."
                )
            document = _parse_json(h5.attrs["model_config"], path)
            model = _model_from_document(document, custom_objects, safe_mode, path)
            _read_weights_checked(model, h5, "model_weights", path, skip_mismatch=False)
    if compile and document.get("compile_config"):
        from lamina.training.compile import deserialize_compile_config

        model.compile(**deserialize_compile_config(document["compile_config"], custom_objects))
    return model


def _read_keras_zip(path: str) -> tuple[dict[str, Any], bytes]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if not {"config.json", "model.weights.h5"} <= names:
                raise FileFormatError(
                    f"{path!r} is a zip archive but not a .keras model: it lacks "
                    f"{sorted({'config.json', 'model.weights.h5'} - names)}."
                )
            document = _parse_json(archive.read("config.json"), path)
            return document, archive.read("model.weights.h5")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        raise FileFormatError(
            f"{path!r} is not a valid .keras file (not a complete zip archive: it may be truncated "
            f"or of another format). Original error: {error}"
        ) from None


def _parse_json(text: str | bytes, path: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise FileFormatError(
            f"{path!r} has a model config that is not valid JSON (the file is damaged or was not "
            f"written by Lamina or Keras): {error}"
        ) from None
    if not isinstance(document, dict) or "class_name" not in document:
        raise FileFormatError(
            f"{path!r} has no model description in its config (expected an object with a "
            "`class_name`); it was not written by model.save()."
        )
    return document


def _weights_archive(weights_bytes: bytes, path: str) -> h5py.File:
    try:
        return h5py.File(io.BytesIO(weights_bytes), "r")
    except OSError as error:
        raise FileFormatError(
            f"The weights inside {path!r} are not a readable HDF5 file (the archive is damaged). "
            f"Original error: {error}"
        ) from None


def _read_weights_checked(model, h5: h5py.File, root: str, path: str, skip_mismatch: bool) -> None:
    if root not in h5:
        raise FileFormatError(f"{path!r} has no `{root}` group: it holds no weights.")
    try:
        read_weights(model, h5[root], skip_mismatch=skip_mismatch)
    except (OSError, KeyError) as error:
        raise FileFormatError(
            f"The weights in {path!r} could not be read (the file is damaged or truncated). "
            f"Original error: {error}"
        ) from None


def _model_from_document(document: dict[str, Any], custom_objects, safe_mode: bool, path: str):
    model = deserialize(document, custom_objects, safe_mode=safe_mode)
    if not model.built:
        shape = (document.get("build_config") or {}).get("input_shape")
        if shape is not None:
            model.build(tuple(shape))
    return model


def save_weights(model, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    path = str(filepath)
    if not (path.endswith(".h5") or path.endswith(".hdf5")):
        raise ValueError(
            "The filename must end in `.weights.h5` (or `.h5`) for save_weights. "
            f"Received: filepath={path!r}."
        )
    check_overwrite(path, overwrite)
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built yet, so it has no weights to save.")

    def write(temporary: str) -> None:
        with h5py.File(temporary, "w") as h5:
            h5.attrs["lamina_version"] = _version()
            write_weights(model, h5.create_group("model"))

    atomic_write(path, write)


def load_weights(model, filepath: str | os.PathLike, skip_mismatch: bool = False,
                 **kwargs: Any) -> None:
    path = str(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file found at {path!r}; cannot load weights from it.")
    if path.endswith(".keras") or zipfile.is_zipfile(path):
        _, weights_bytes = _read_keras_zip(path)
        with _weights_archive(weights_bytes, path) as h5:
            _read_weights_checked(model, h5, "model", path, skip_mismatch)
        return
    with open_h5(path, "load weights from it") as h5:
        root = "model" if "model" in h5 else "model_weights" if "model_weights" in h5 else None
        if root is None:
            raise FileFormatError(f"{path!r} is an HDF5 file but holds no Lamina/Keras weights.")
        if not model.built:
            raise ValueError(
                f"Model {model.name!r} is not built, so its weights do not exist yet. Call it on "
                "data or build it before load_weights."
            )
        _read_weights_checked(model, h5, root, path, skip_mismatch)


