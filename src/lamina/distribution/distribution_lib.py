"""Keras's distribution API (`keras.distribution`) over torch.distributed.

One process per device, as torchrun starts them: `DataParallel` replicates the model and runs on
`DistributedDataParallel`; `ModelParallel` (parameters laid out by a `LayoutMap`) and `FSDP`
shard the parameters with torch's FSDP2 (`fully_shard`, DTensor). The communication is torch's;
this module only says which one to use.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import re
from typing import Any, Iterator

import torch
import torch.distributed as dist

_state: dict[str, Any] = {"distribution": None}


def initialize(job_addresses: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, backend: str | None = None,
               timeout: float = 600.0) -> None:
    """Join the job's process group (torchrun's environment gives every argument).

    Keras's arguments are the coordinator address (`host:port`), the number of processes and
    this process's rank; under `torchrun` leave them out. A job of one process needs no group.
    `backend` is NCCL on CUDA and gloo on the CPU unless given; `timeout` (seconds) bounds every
    collective, so a process that died makes the others fail instead of waiting forever.
    """
    if dist.is_available() and dist.is_initialized():
        return
    world = int(num_processes if num_processes is not None else os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return
    rank = int(process_id if process_id is not None else os.environ.get("RANK", 0))
    if job_addresses:
        host, _, port = job_addresses.split(",")[0].rpartition(":")
        os.environ.setdefault("MASTER_ADDR", host)
        os.environ.setdefault("MASTER_PORT", port)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(
            f"A job of {world} processes needs the coordinator's address, but {missing} is not "
            "set. Start the script with torchrun, or pass job_addresses='host:port'.")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count())))
    dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"),
                            rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout))


def _launched() -> bool:
    """Whether this process is one of a job of several (torchrun sets WORLD_SIZE)."""
    if dist.is_available() and dist.is_initialized():
        return True
    return int(os.environ.get("WORLD_SIZE", 1)) > 1


def process_count() -> int:
    """The number of processes of the job (1 when not started by torchrun)."""
    if _launched():
        initialize()
        return dist.get_world_size()
    return 1


def process_index() -> int:
    """This process's rank in the job (0 when not started by torchrun)."""
    return dist.get_rank() if process_count() > 1 else 0


def is_chief() -> bool:
    """Whether this process prints progress and writes files (rank 0)."""
    return process_index() == 0


def list_devices(device_type: str | None = None) -> list[str]:
    """The job's devices, one per process ('cuda:0', 'cuda:1', ... or 'cpu:0', 'cpu:1', ...)."""
    kind = (device_type or ("cuda" if torch.cuda.is_available() else "cpu")).lower()
    if kind == "gpu":
        kind = "cuda"
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"`device_type` must be 'cpu', 'gpu' or 'cuda'. Received: {device_type!r}.")
    return [f"{kind}:{index}" for index in range(process_count())]


class DeviceMesh:
    """The job's devices arranged as an n-dimensional grid with a name per axis.

    Args:
        shape: the grid's shape; its product is the number of devices (processes).
        axis_names: one name per axis ('batch', 'model').
        devices: the devices, in grid order; `list_devices()` when omitted.
    """

    def __init__(self, shape: tuple[int, ...], axis_names: list[str] | tuple[str, ...],
                 devices: list[str] | None = None):
        shape = tuple(int(s) for s in shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"`shape` must be a non-empty tuple of positive sizes. Received: shape={shape}.")
        if len(axis_names) != len(shape):
            raise ValueError(
                f"`axis_names` must name each of the {len(shape)} axes of `shape`. Received: "
                f"shape={shape}, axis_names={list(axis_names)}.")
        devices = list(devices) if devices is not None else list_devices()
        if len(devices) != math.prod(shape):
            raise ValueError(
                f"A mesh of shape {shape} holds {math.prod(shape)} devices, but {len(devices)} "
                f"were given ({devices}). With one process per device, start "
                f"{math.prod(shape)} processes (torchrun --nproc-per-node) or change the shape.")
        self.shape, self.axis_names, self.devices = shape, tuple(axis_names), devices

    def __repr__(self) -> str:
        return f"DeviceMesh(shape={self.shape}, axis_names={list(self.axis_names)})"

    def torch_mesh(self):
        """The torch `DeviceMesh` over the job's process group."""
        from torch.distributed.device_mesh import init_device_mesh

        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        return init_device_mesh(device_type, self.shape, mesh_dim_names=self.axis_names)


class TensorLayout:
    """How one tensor lies on a mesh: per tensor axis, the mesh axis it is split over or None."""

    def __init__(self, axes: tuple[str | None, ...], device_mesh: DeviceMesh | None = None):
        self.axes, self.device_mesh = tuple(axes), device_mesh

    def __repr__(self) -> str:
        return f"TensorLayout(axes={self.axes})"


class LayoutMap(dict):
    """Regular expressions over weight paths ('dense.*kernel') mapped to layouts; a weight takes
    the layout of the first key that `re.search`es its path (Keras's rule)."""

    def __init__(self, device_mesh: DeviceMesh):
        super().__init__()
        self.device_mesh = device_mesh

    def __setitem__(self, key: str, layout: TensorLayout | tuple) -> None:
        if not isinstance(layout, TensorLayout):
            if not isinstance(layout, (tuple, list)):
                raise ValueError(
                    "A LayoutMap value must be a TensorLayout or a tuple of mesh axis names (None "
                    f"for an unsplit axis). Received: {layout!r} for {key!r}.")
            layout = TensorLayout(tuple(layout), self.device_mesh)
        unknown = [a for a in layout.axes if a is not None and a not in self.device_mesh.axis_names]
        if unknown:
            raise ValueError(
                f"The layout for {key!r} names mesh axes {unknown} that the mesh does not have. "
                f"Its axes are {list(self.device_mesh.axis_names)}.")
        super().__setitem__(key, layout)

    def get_layout(self, path: str) -> TensorLayout | None:
        for key, layout in self.items():
            if re.search(key, path):
                return layout
        return None


class Distribution:
    """Base class: a mesh and the axis that splits the batch (None: every process sees it all).

    The subclasses say how the model is laid out: `DataParallel` (replicated), `FSDP` and
    `ModelParallel` (sharded parameters).
    """

    def __init__(self, device_mesh: DeviceMesh, batch_dim_name: str | None = None):
        if batch_dim_name is not None and batch_dim_name not in device_mesh.axis_names:
            raise ValueError(
                f"`batch_dim_name` {batch_dim_name!r} is not an axis of the mesh "
                f"{list(device_mesh.axis_names)}.")
        self.device_mesh, self.batch_dim_name = device_mesh, batch_dim_name

    @property
    def data_shards(self) -> int:
        """How many parts each global batch is split into."""
        if self.batch_dim_name is None:
            return 1
        return self.device_mesh.shape[self.device_mesh.axis_names.index(self.batch_dim_name)]

    def data_shard_index(self) -> int:
        """Which part of each global batch this process trains on."""
        if self.data_shards == 1:
            return 0
        # Mesh coordinates in row-major order: the batch axis's coordinate of this rank.
        coordinates = torch.arange(math.prod(self.device_mesh.shape)).reshape(self.device_mesh.shape)
        where = (coordinates == process_index()).nonzero()[0]
        return int(where[self.device_mesh.axis_names.index(self.batch_dim_name)])

    def get_variable_layout(self, path: str) -> TensorLayout | None:
        return None

    @contextlib.contextmanager
    def scope(self) -> Iterator["Distribution"]:
        """Models built and compiled inside use this distribution (`set_distribution` for the
        duration of the block)."""
        previous = _state["distribution"]
        set_distribution(self)
        try:
            yield self
        finally:
            _state["distribution"] = previous

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device_mesh={self.device_mesh!r})"


def _one_axis_mesh(device_mesh: DeviceMesh | None, devices: list[str] | None, axis: str) -> DeviceMesh:
    if device_mesh is not None and devices is not None:
        raise ValueError("Pass `device_mesh` or `devices`, not both.")
    if device_mesh is not None:
        return device_mesh
    devices = list(devices) if devices is not None else list_devices()
    return DeviceMesh((len(devices),), [axis], devices)


class DataParallel(Distribution):
    """Every process holds the whole model and trains on its part of each global batch; the
    gradients are averaged by `DistributedDataParallel` (Keras's `DataParallel`).

    Args:
        device_mesh: a one-axis mesh; or
        devices: the devices to use (`list_devices()` when both are omitted).
        auto_shard_dataset: accepted for Keras compatibility; data is always sharded.
    """

    def __init__(self, device_mesh: DeviceMesh | None = None, devices: list[str] | None = None,
                 auto_shard_dataset: bool = True):
        mesh = _one_axis_mesh(device_mesh, devices, "batch")
        if len(mesh.shape) != 1:
            raise ValueError(f"DataParallel takes a one-axis mesh. Received: {mesh!r}; use "
                             "ModelParallel for a mesh with a model axis.")
        super().__init__(mesh, mesh.axis_names[0])
        self.auto_shard_dataset = auto_shard_dataset


MIN_UNIT_SIZE = 1_000_000


def _check_unit_size(min_unit_size: int) -> int:
    if isinstance(min_unit_size, bool) or not isinstance(min_unit_size, int) or min_unit_size < 1:
        raise ValueError(
            "`min_unit_size` must be a positive number of weight elements (a layer with at least "
            "that many is gathered on its own). Received: "
            f"min_unit_size={min_unit_size!r}. Use e.g. {MIN_UNIT_SIZE:_}.")
    return min_unit_size


class FSDP(Distribution):
    """Fully sharded data parallelism (Lamina's addition): like `DataParallel`, but each process
    stores 1/N of the parameters, gradients and optimizer state, gathered for each step's
    compute by torch's FSDP2 (`fully_shard`).

    Args:
        device_mesh: a one-axis mesh; or
        devices: the devices to use (`list_devices()` when both are omitted).
        min_unit_size: a layer of the model with at least this many weight elements is gathered
            whole only while it runs (its own FSDP unit); smaller ones are gathered together
            for the whole step.
    """

    def __init__(self, device_mesh: DeviceMesh | None = None, devices: list[str] | None = None,
                 *, min_unit_size: int = MIN_UNIT_SIZE):
        mesh = _one_axis_mesh(device_mesh, devices, "batch")
        if len(mesh.shape) != 1:
            raise ValueError(f"FSDP takes a one-axis mesh. Received: {mesh!r}.")
        super().__init__(mesh, mesh.axis_names[0])
        self.min_unit_size = _check_unit_size(min_unit_size)


class ModelParallel(Distribution):
    """Parameters split over the mesh as a `LayoutMap` says (Keras's `ModelParallel`); the batch
    is split over `batch_dim_name` and replicated over the other axes.

    On torch this is FSDP2 storage sharding: each weight is stored split along the tensor axis
    its layout names, and gathered whole for the layer's compute. Weights no key matches are
    split along their first axis. A layer with at least `min_unit_size` weight elements is
    gathered only while it runs, as under `FSDP`.
    """

    def __init__(self, device_mesh: DeviceMesh | None = None, layout_map: LayoutMap | None = None,
                 batch_dim_name: str | None = None, auto_shard_dataset: bool = True, *,
                 min_unit_size: int = MIN_UNIT_SIZE, **kwargs: Any):
        if layout_map is None:
            raise ValueError("ModelParallel needs a `layout_map` (a LayoutMap over a DeviceMesh).")
        if kwargs:
            raise TypeError(f"ModelParallel got unexpected arguments {sorted(kwargs)}.")
        mesh = device_mesh or layout_map.device_mesh
        super().__init__(mesh, batch_dim_name or mesh.axis_names[0])
        self.layout_map = layout_map
        self.auto_shard_dataset = auto_shard_dataset
        self.min_unit_size = _check_unit_size(min_unit_size)

    def get_variable_layout(self, path: str) -> TensorLayout | None:
        return self.layout_map.get_layout(path)


def distribution() -> Distribution | None:
    """The distribution set by `set_distribution` (or the enclosing `scope()`), or None."""
    return _state["distribution"]


def set_distribution(value: Distribution | None) -> None:
    """Use `value` for the models built and compiled from now on (None: single process)."""
    if value is not None and not isinstance(value, Distribution):
        raise TypeError(
            "set_distribution takes a DataParallel, ModelParallel or FSDP (or None). "
            f"Received: {value!r}.")
    if value is not None:
        initialize()
    _state["distribution"] = value
