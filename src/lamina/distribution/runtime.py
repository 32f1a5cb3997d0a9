"""What the trainer asks of a distribution: the seam between the one engine and torch.distributed.

The trainer calls these functions at a handful of points (`shard` its data, `wrap` its model,
`reduce` its logs, `gather` predictions, `gathered` weights for inference); each does nothing
when no distribution was set when the model was compiled. A model compiled under a distribution
keeps an `Engine`, made once, that holds the wrapped model and the step's share of the batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lamina import tree
from lamina.distribution import sharding
from lamina.distribution.distribution_lib import (
    DataParallel, Distribution, ModelParallel, distribution, process_count, process_index,
)


class Engine:
    """One compiled model's side of a distribution."""

    def __init__(self, distribution: Distribution):
        self.distribution = distribution
        self.processes = process_count()
        mesh = distribution.device_mesh
        if len(mesh.devices) != self.processes:
            raise ValueError(
                f"{distribution!r} spans {len(mesh.devices)} devices but this job has "
                f"{self.processes} processes (one per device). Build the mesh from "
                "list_devices(), or start as many processes as the mesh has devices.")
        self.parts = distribution.data_shards
        self.index = distribution.data_shard_index()
        self.share = sharding.StepShare()
        self.module: nn.Module | None = None  # the model as wrapped for the training step
        self._trainer = None
        self.shared = False  # whether every process holds rank 0's weights yet
        self._after_build: Any = None  # the hook that shares weights a first call builds
        # A backup's optimizer state (whole tensors) waiting for the weights to be sharded.
        self.pending_optimizer_state: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self.processes > 1

    def wrap(self, trainer) -> Any:
        """The training step's forward: the model under DDP or FSDP2 (wrapped once)."""
        if self.module is None:
            model, distribution = trainer.model, self.distribution
            # DDP broadcasts rank 0's weights but FSDP2 shards each process's own: share first.
            self.share_weights(model, now=True)
            if _custom_train_step(model):
                self._average_gradients(model)
            elif isinstance(distribution, DataParallel):
                device = next(model.parameters()).device
                ids = [device.index] if device.type == "cuda" else None
                # Gradients as views of DDP's buckets: the all-reduced bucket is the gradient,
                # not copied back into a separate one after every backward.
                self.module = nn.parallel.DistributedDataParallel(
                    model, device_ids=ids, gradient_as_bucket_view=True)
            else:
                self.module = _fully_sharded(model, distribution)
                if self.pending_optimizer_state is not None:
                    self._restore_optimizer(trainer.optimizer, model)
            self._trainer = trainer
        if self.module is trainer.model:
            return None  # a custom train_step: the model as it is, gradients averaged by hooks
        return _ShareScaled(self.module, self.share, self.parts)

    def _restore_optimizer(self, optimizer: Any, model: nn.Module) -> None:
        """Bind the optimizer to the sharded weights now (the trainer's own build right after
        finds it built for them) and give it its backup's state, split as its weights are."""
        state, self.pending_optimizer_state = self.pending_optimizer_state, None
        variables = [p for p in model.parameters() if p.requires_grad]
        if variables:
            optimizer.build(variables)
            optimizer.load_state_dict(_sharded_like(state, variables))

    def _average_gradients(self, model: nn.Module) -> None:
        """A custom `train_step` calls the model itself, outside DDP: each gradient is averaged
        over the processes as it is accumulated (torch's all-reduce, one per weight), weighted
        by this process's share of the global batch as DDP's would be."""
        if not isinstance(self.distribution, DataParallel):
            raise ValueError(
                f"Model {model.name!r} overrides train_step, which calls the model outside "
                f"{type(self.distribution).__name__}'s sharded forward. Use DataParallel for a "
                "custom train_step, or override compute_loss instead of train_step.")

        def average(parameter: torch.Tensor) -> None:
            gradient = parameter.grad
            gradient.mul_(self.share.fraction)
            gradient.copy_(_all_reduce(gradient))

        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.register_post_accumulate_grad_hook(average)
        self.module = model

    def share_weights(self, model: nn.Module, now: bool = False) -> None:
        """Rank 0's weights (parameters and buffers) on every process, once, so every process
        evaluates, predicts and starts training from the same model whatever its own seed.
        Weights a first call builds (a subclassed model) are shared right after that call,
        whose output is then recomputed with them."""
        if self.shared:
            return
        if not now and _unbuilt(model):
            if self._after_build is None:
                self._after_build = model.register_forward_hook(self._share_after_build,
                                                                with_kwargs=True)
            return
        if self._after_build is not None:
            self._after_build.remove()
            self._after_build = None
        self.shared = True
        sharding.broadcast_all([*model.parameters(), *model.buffers()])

    def agree_on_weights(self, model: nn.Module) -> None:
        """Rank 0's weights (parameters and buffers) on every process again if the processes'
        parameters differ: weights loaded or set on some processes only (`load_weights` in a
        callback on the chief, a restore) reach the others, as the first use's did. Run by
        every process at each training epoch's start and at each evaluate and predict; under
        DataParallel only (the sharded strategies' processes hold different shards)."""
        if not self.shared or not isinstance(self.distribution, DataParallel):
            return
        if sharding.differ(list(model.parameters())):
            sharding.broadcast_all([*model.parameters(), *model.buffers()])

    def _share_after_build(self, model: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        self.share_weights(model, now=True)
        return model(*args, **kwargs)

    @contextlib.contextmanager
    def full_weights(self, write_back: bool = False, slots: bool = True) -> Iterator[None]:
        """Whole weights (and with `slots`, optimizer slots) on the model for the block: DDP has
        them; FSDP's shards are gathered into fresh tensors, and the sharded ones put back after
        (with `write_back`, holding the whole weights' values as the block left them: a load)."""
        module = self.module
        if module is None or isinstance(module, nn.parallel.DistributedDataParallel):
            yield
            return
        swapped = []
        for owner in module.model.modules():
            for name, parameter in list(owner._parameters.items()):
                if parameter is not None and hasattr(parameter, "full_tensor"):
                    whole = nn.Parameter(parameter.full_tensor().detach(), parameter.requires_grad)
                    owner._parameters[name] = whole
                    swapped.append((owner, name, parameter, whole))
        optimizer = getattr(self._trainer, "optimizer", None)
        built = optimizer is not None and optimizer.built and slots and not write_back
        if built:
            # The optimizer saves its slots by variable: point it at the whole weights, with
            # whole slots, for the block.
            variables, state = optimizer._variables, optimizer._torch.state
            wholes = {id(sharded): whole for _, _, sharded, whole in swapped}
            optimizer._variables = [wholes.get(id(v), v) for v in variables]
            for _, _, sharded, whole in swapped:
                if sharded in state:
                    state[whole] = {key: value.full_tensor() if hasattr(value, "full_tensor")
                                    else value for key, value in state[sharded].items()}
        try:
            yield
            if write_back:
                with torch.no_grad():
                    for _, _, sharded, whole in swapped:
                        sharded.copy_(_split_like(whole, sharded))
        finally:
            for owner, name, sharded, whole in swapped:
                owner._parameters[name] = sharded
                if built:
                    state.pop(whole, None)
            if built:
                optimizer._variables = variables


def _unbuilt(model: nn.Module) -> bool:
    from lamina.layers.layer import Layer

    return any(isinstance(m, Layer) and not m.built for m in model.modules())


def _custom_train_step(model: nn.Module) -> bool:
    from lamina.models.model import Model

    return isinstance(model, Model) and type(model).train_step is not Model.train_step


class _Root(nn.Module):
    """A holder for the model, so FSDP2 hooks the holder (whose class it rewrites) and the
    model keeps its own class, which its saved config names."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)


def _fully_sharded(model: nn.Module, distribution: Distribution) -> nn.Module:
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard

    mesh = distribution.device_mesh.torch_mesh()
    options: dict[str, Any] = {"mesh": mesh}
    if isinstance(distribution, ModelParallel):
        # Keras's weight paths ('dense/kernel'), which LayoutMap keys are written against.
        paths = {id(p): name.replace(".", "/") for name, p in model.named_parameters()}
        mesh_shape = dict(zip(distribution.device_mesh.axis_names, distribution.device_mesh.shape))

        def placement(parameter: nn.Parameter):
            path = paths.get(id(parameter), "")
            layout = distribution.get_variable_layout(path)
            split = [(axis, name) for axis, name in enumerate(layout.axes if layout else ())
                     if name is not None and name != distribution.batch_dim_name]
            if not split:
                return Shard(0)
            axis, name = split[0]
            size = mesh_shape[name]
            if axis >= parameter.ndim or parameter.shape[axis] % size:
                raise ValueError(
                    f"The LayoutMap splits axis {axis} of weight {path!r} (shape "
                    f"{tuple(parameter.shape)}) over the {size} devices of mesh axis {name!r}; "
                    "that axis must exist and its size be a multiple of theirs. Change the "
                    "layout (None leaves an axis whole) or the mesh.")
            return Shard(axis)

        # On a two-axis mesh FSDP2 replicates over the first axis and shards over the second.
        options["shard_placement_fn"] = placement
    # Units bottom-up, then the root (as FSDP2 requires): each unit's weights are gathered only
    # while it runs, so a process holds one large layer's whole weights at a time, not all.
    for unit in shard_units(model, distribution.min_unit_size):
        original = type(unit)
        fully_shard(unit, **options)
        # fully_shard rewrites the class (FSDPDense); FSDP2 keeps its state by module, not by
        # class, and the model's saved config must keep naming the layer's own class.
        unit.__class__ = original
    return fully_shard(_Root(model), **options)


def shard_units(model: nn.Module, min_unit_size: int) -> list[nn.Module]:
    """The layers that become their own FSDP unit, innermost first: each of the model's layers
    (recursing into nested models and torch containers) whose weights not yet in a unit hold at
    least `min_unit_size` elements, the rule of FSDP1's `size_based_auto_wrap_policy`.

    Candidates are the layers of the model, of nested models and of torch containers
    (`nn.Sequential`, `nn.ModuleList`, `nn.ModuleDict`: a transformer's list of blocks), not
    the sublayers a layer calls itself (the cell an RNN layer calls per time step stays in its
    layer's unit), and none that shares a weight with a layer outside it (tied embeddings): its
    unit would free that weight under the other.
    """
    from lamina.models.model import Model

    owners: dict[int, set[int]] = {}
    for module in model.modules():
        for parameter in module._parameters.values():
            if parameter is not None:
                owners.setdefault(id(parameter), set()).add(id(module))
    taken: set[int] = set()
    units: list[nn.Module] = []

    def visit(layer: nn.Module) -> None:
        if isinstance(layer, Model):
            for inner in layer.layers:
                visit(inner)
        elif isinstance(layer, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            for inner in layer.children():
                visit(inner)
        inside = {id(m) for m in layer.modules()}
        free = [p for p in layer.parameters() if id(p) not in taken]
        if not free or sum(p.numel() for p in free) < min_unit_size:
            return
        if any(not owners[id(p)] <= inside for p in layer.parameters()):
            return
        taken.update(id(p) for p in free)
        units.append(layer)

    for layer in (model.layers if isinstance(model, Model) else model.children()):
        visit(layer)
    return units


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> tuple[torch.Tensor, None]:
        return gradient * ctx.scale, None


class _ShareScaled:
    """Calls the wrapped model. DDP and FSDP average gradients over processes, which is the
    global batch's mean only when every process has as many samples; a process with a larger or
    smaller slice (the epoch's last batch) scales its output's gradient by its share x parts."""

    def __init__(self, module: nn.Module, share: sharding.StepShare, parts: int):
        self.module, self.share, self.parts = module, share, parts

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output = self.module(*args, **kwargs)
        scale = self.share.fraction * self.parts
        if scale == 1.0 or not torch.is_grad_enabled():
            return output
        return tree.map_structure(
            lambda t: _ScaleGradient.apply(t, scale) if getattr(t, "requires_grad", False) else t,
            output)


# --------------------------------------------------------------------------- the trainer's seam


def at_compile() -> Engine | None:
    """The engine for a model compiled now: one if a distribution is set, else None."""
    current = distribution()
    return Engine(current) if current is not None else None


def _engine(trainer) -> Engine | None:
    current = distribution()
    engine = trainer._distributed
    if current is not None and (engine is None or engine.distribution is not current):
        laid_out = repr(engine.distribution) if engine else "a single process"
        raise ValueError(
            f"Model {trainer.model.name!r} was built and compiled before the distribution "
            f"{current!r} was set, so it is laid out for {laid_out}. Call "
            "lamina.distribution.set_distribution(...) (or enter its scope()) first, then build "
            "and compile the model, as Keras requires.")
    return engine if engine is not None and engine.active else None


def shard(trainer, adapter: Any, training: bool) -> Any:
    """This process's part of `adapter` (the data of fit, validation, evaluate or predict)."""
    engine = _engine(trainer)
    if engine is None or adapter is None:
        return adapter
    if training:
        return sharding.for_training(adapter, engine.parts, engine.index, engine.share,
                                     lambda: engine.agree_on_weights(trainer.model))
    return sharding.for_inference(adapter, engine.parts, engine.index)


def wrap(trainer) -> None:
    """Put the model under DDP/FSDP once its weights exist (before the optimizer binds them)."""
    engine = _engine(trainer)
    if engine is not None:
        trainer._forward = engine.wrap(trainer)


def gathered(trainer) -> contextlib.AbstractContextManager:
    """Whole weights for evaluation and prediction, which call the model directly (a shared
    no-op context in a single process: predict at batch 1 should not pay for a generator);
    rank 0's weights on every process before any training, and again whenever the processes'
    weights differ."""
    engine = _engine(trainer)
    if engine is None:
        return _NOTHING
    engine.share_weights(trainer.model)
    engine.agree_on_weights(trainer.model)
    return engine.full_weights()


_NOTHING = contextlib.nullcontext()


def reduce(trainer, logs: Mapping, adapter: Any) -> Mapping:
    """The logs over all processes: every metric's state (sums and counts, for every Keras
    metric) summed over processes in one all-reduce, so each process reads the global values."""
    engine = _engine(trainer)
    if engine is None:
        return logs
    metrics = trainer.logged_metrics()
    variables = [v for m in metrics for v in m.variables]
    if variables:
        flat = torch.cat([v.detach().reshape(-1).to(torch.float64) for v in variables])
        # Processes that share a data part (along a model axis) counted the same samples.
        flat = _all_reduce(flat) / (engine.processes // engine.parts)
        with torch.no_grad():
            for variable, value in zip(variables, torch.split(flat, [v.numel() for v in variables])):
                variable.copy_(value.reshape(variable.shape).to(variable.dtype))
    if type(logs).__name__ == "_StepLogs":
        return logs
    # A custom train_step's own logs: metric names read the reduced metrics, other scalars are
    # averaged over processes.
    results = {m.name: m for m in metrics}
    reduced = {}
    for key, value in logs.items():
        if key in results:
            reduced[key] = results[key].result()
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            reduced[key] = _all_reduce(value.detach().to(torch.float64).reshape(1))[0] / engine.processes
        else:
            reduced[key] = value
    return reduced


def optimizer_state(trainer) -> dict[str, Any]:
    """The optimizer's `state_dict()` for a backup, which rank 0 writes: under FSDP and
    ModelParallel every sharded slot gathered whole. Every process takes part in each gather;
    the others keep None, so no process holds more than one whole slot beyond rank 0's."""
    state = trainer.optimizer.state_dict()
    engine = _engine(trainer)
    if engine is None or not _is_sharded(engine):
        return state
    keep = process_index() == 0

    def whole(value: Any) -> Any:
        if not hasattr(value, "full_tensor"):
            return value
        gathered = value.full_tensor()
        return gathered if keep else None

    return tree.map_structure(whole, state)


def load_optimizer_state(trainer, state: dict[str, Any]) -> None:
    """Put back `optimizer_state()`'s whole slots, each split as its weight is (under FSDP and
    ModelParallel); an optimizer not built yet gets them once the weights are sharded."""
    optimizer = trainer.optimizer
    engine = _engine(trainer)
    if engine is None or not _is_sharded(engine):
        optimizer.load_state_dict(state)
    elif engine.module is None:
        engine.pending_optimizer_state = state
    else:
        optimizer.load_state_dict(_sharded_like(state, optimizer.variables))


def check_agreement(trainer, found: str, where: str) -> None:
    """Raise on every process when the processes found different backups in `where` (`found`
    describes this process's): each would resume another run, and their collectives would
    mismatch."""
    engine = _engine(trainer)
    if engine is None:
        return
    everyone: list[Any] = [None] * engine.processes
    dist.all_gather_object(everyone, found)
    if len(set(everyone)) > 1:
        seen = "; ".join(f"process {rank}: {value}" for rank, value in enumerate(everyone))
        raise ValueError(
            f"The processes of this run found different backups in {where!r} ({seen}). "
            "Every process reads the backup directory: put it on storage all machines share.")


def _is_sharded(engine: Engine) -> bool:
    return not isinstance(engine.distribution, DataParallel)


def _split_like(whole: torch.Tensor, sharded: torch.Tensor) -> torch.Tensor:
    """`whole` split over the processes as the DTensor `sharded` is (rank 0's values sent, so
    the processes agree whatever each read)."""
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(whole.detach().to(sharded.dtype), sharded.device_mesh,
                             sharded.placements)


def _sharded_like(state: dict[str, Any], variables: list[torch.Tensor]) -> dict[str, Any]:
    """An optimizer `state_dict()` of whole tensors with every per-weight slot split as its
    weight (a DTensor) is; scalars (step counts) stay as they are."""

    def like(value: Any, variable: torch.Tensor) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() and hasattr(variable, "placements") \
                and not hasattr(value, "placements"):
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"The backup's optimizer holds a slot of shape {tuple(value.shape)} for a "
                    f"weight of shape {tuple(variable.shape)}: it was written for another model. "
                    "Resume with the model that wrote it, or delete the backup directory.")
            return _split_like(value, variable)
        return value

    torch_state = state["optimizer"]
    if torch_state is not None:
        slots = {index: {key: like(value, variables[index]) for key, value in entry.items()}
                 for index, entry in torch_state["state"].items()}
        torch_state = {**torch_state, "state": slots}
    return {**state, "optimizer": torch_state,
            **{name: [like(v, w) for v, w in zip(state[name], variables)]
               for name in ("accumulators", "averages")}}


def metric_state(trainer) -> dict[str, Any]:
    """The running epoch's accumulators for a mid-epoch backup: in a distributed run, summed
    over the processes (rank 0 writes the backup, so it must hold the whole job's)."""
    state = trainer.metric_state()
    engine = _engine(trainer)
    if engine is None:
        return state
    metrics = {name: [v.detach().clone() for v in values]
               for name, values in state["metrics"].items()}
    tensors = [v for values in metrics.values() for v in values]
    if tensors:
        flat = torch.cat([v.reshape(-1).to(torch.float64) for v in tensors])
        flat = _all_reduce(flat) / (engine.processes // engine.parts)
        for tensor, value in zip(tensors, torch.split(flat, [v.numel() for v in tensors])):
            tensor.copy_(value.reshape(tensor.shape).to(tensor.dtype))
    return {"metrics": metrics}


def load_metric_state(trainer, state: dict[str, Any]) -> None:
    """Put back `metric_state()`'s job-wide sums: each process takes an equal part, so the
    sum `reduce` takes at the epoch's end counts them once."""
    engine = _engine(trainer)
    if engine is not None:
        part = (engine.processes // engine.parts) / engine.processes
        state = {**state, "metrics": {name: [v * part for v in values]
                                      for name, values in state["metrics"].items()}}
    trainer.load_metric_state(state)


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    return sharding.collective(dist.all_reduce, tensor)


def gather(trainer, outputs: Any, adapter: Any) -> Any:
    """`predict`'s result over all processes: their contiguous parts, in rank order."""
    engine = _engine(trainer)
    if engine is None:
        return outputs
    sizes = adapter.sizes if isinstance(adapter, sharding.InferenceSlices) else None
    parts: list[Any] = [None] * engine.processes
    dist.all_gather_object(parts, (outputs, sizes))
    # Processes that share a data part (a model axis) computed the same rows: keep one copy.
    parts = _one_per_data_part(parts, engine)
    if sizes is None:
        return _concatenate([output for output, _ in parts])
    # A stream: each process holds its slice of every batch; put each batch back together.
    pieces, offsets = [], [0] * len(parts)
    for batch in range(len(sizes)):
        for rank, (output, rows) in enumerate(parts):
            start = offsets[rank]
            stop = offsets[rank] = start + rows[batch]
            if stop > start:
                pieces.append(tree.map_structure(lambda a, s=start, e=stop: a[s:e], output))
    return _concatenate(pieces)


def _one_per_data_part(parts: list[Any], engine: Engine) -> list[Any]:
    if engine.parts == engine.processes:
        return parts
    distribution = engine.distribution
    chosen: dict[int, Any] = {}
    mesh = distribution.device_mesh
    coordinates = torch.arange(len(mesh.devices)).reshape(mesh.shape)
    axis = mesh.axis_names.index(distribution.batch_dim_name)
    for rank, part in enumerate(parts):
        chosen.setdefault(int((coordinates == rank).nonzero()[0][axis]), part)
    return [chosen[i] for i in sorted(chosen)]


def _concatenate(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, (list, tuple)):
        return type(first)(_concatenate([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concatenate([p[k] for p in parts]) for k in first}
    raise TypeError(f"predict returned {type(first).__name__}; expected arrays.")


__all__ = ["Engine", "at_compile", "check_agreement", "gather", "gathered", "load_metric_state", "load_optimizer_state",
           "metric_state", "optimizer_state", "reduce", "shard", "shard_units", "wrap"]
