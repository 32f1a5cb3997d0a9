"""The one engine behind `fit`, `evaluate`, `predict` and the `*_on_batch` calls.

The step is `model.train_step(data)` (overridable, as in Keras 3); callbacks observe the loop and
steer it only through `model.stop_training` and the optimizer's learning rate. Losses and metrics
accumulate on the device; values are read back only when something is shown or a callback asks.
"""

from __future__ import annotations

import gc
import inspect
import math
from collections.abc import Mapping
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from lamina import config
from lamina import losses as losses_module
from lamina import metrics as metrics_module
from lamina._grad_mode import call_without_grad
from lamina.callbacks.callback_list import CallbackList
from lamina.callbacks.terminate_on_nan import TerminateOnNaN
from lamina.distribution import runtime as distributed
from lamina.errors import DataError, NonFiniteError, NotCompiledError
from lamina.layers import layer as layer_module
from lamina.layers.layer import Layer
from lamina.metrics.metric import divide_no_nan
from lamina.models.model import Model
from lamina.training import concurrency, data_adapters, fusion, validation
from lamina.training.data_adapters import flatten, map_structure, unpack_x_y_sample_weight
from lamina.training.logs import logs_to_floats
from lamina.training.nonfinite import NonFiniteGuard
from lamina.training.precision import Precision, resolve_autocast_dtype, scaled_step

Tensor = torch.Tensor


class _StepLogs(Mapping):
    """The logs of the latest step. Values are device tensors computed on access, so a step
    that nobody reads costs no metric `result()` and no host sync."""

    def __init__(self, trainer: "Trainer"):
        self._trainer = trainer

    def _metrics(self) -> dict[str, Any]:
        # The model's own metrics too (a subclass's `metrics` property or Metric attributes),
        # later ones winning a shared name, as Keras's logs are built from `model.metrics`.
        return {m.name: m for m in self._trainer.logged_metrics()}

    def __getitem__(self, key: str) -> Tensor:
        return self._metrics()[key].result()

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics())

    def __len__(self) -> int:
        return len(self._metrics())

    def items(self):
        # One walk over the metrics for all the values (the Mapping default walks once per key).
        return {name: metric.result() for name, metric in self._metrics().items()}.items()


class StepLossMean(metrics_module.Metric):
    """The epoch's mean loss, `sum(loss_i * batch_size_i) / sum(batch_size_i)`, as Keras's loss
    tracker sums it: each step adds its detached loss times its batch size into `total` in place
    (one kernel, no host sync). The batch sizes are host integers: they are counted on the host
    and folded into `count` when its variable is read (`fold`), which saves a second kernel.

    Nothing is kept per step. A list of the steps' loss tensors, summed every few steps, cost
    no kernel a step but left one small allocation alive per step, above the step's freed
    activations: glibc then grew the heap by an activation's size every step, and each new page
    faulted in (~4% of evaluate at batch 1024, docs/benchmarks.md).
    """

    def __init__(self, name: str = "loss") -> None:
        super().__init__(name=name)
        self.total = self.add_variable("total", shape=())
        self.count = self.add_variable("count", shape=())
        self.uncounted = 0  # samples added into `total` but not yet into `count`

    def record(self, loss: Tensor, batch_size: int) -> None:
        self.total.add_(loss, alpha=batch_size)
        self.uncounted += batch_size

    def fold(self) -> None:
        """Bring `count` up to date with the samples counted on the host."""
        if self.uncounted:
            self.count.add_(self.uncounted)
            self.uncounted = 0

    @property
    def variables(self) -> list[Tensor]:
        """`total` and `count` as Keras's `Mean` holds them: every reader of the state
        (`model.metrics_variables`, mid-epoch backups, the distributed all-reduce) gets the
        host-counted samples folded in first."""
        self.fold()
        return super().variables

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """A loss of one batch (the mean over its samples) and the batch size as its weight."""
        values = self._tensor(values).to(self.total.dtype)
        weight = 1 if sample_weight is None else sample_weight
        self.total.add_(values.sum() * weight)
        self.count.add_(weight)

    def result(self) -> Tensor:
        count = self.count + self.uncounted if self.uncounted else self.count
        return divide_no_nan(self.total, count)

    def reset_state(self) -> None:
        self.uncounted = 0
        super().reset_state()


class CompileMetrics(metrics_module.Metric):
    """The compiled metrics before the first step resolves them (Keras's "compile_metrics"):
    `model.metrics` lists it right after `compile`, so a guide-style `train_step` that calls
    `metric.update_state(y, y_pred)` on every metric but the loss updates them from the start.
    The first update resolves the metrics for the output structure and updates them; after
    that `model.metrics` lists them one by one."""

    def __init__(self, trainer: "Trainer") -> None:
        super().__init__(name="compile_metrics")
        self._trainer = trainer

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        trainer = self._trainer
        if not trainer._metrics_built:
            trainer._build_losses_and_metrics(y_true, y_pred)
        trainer.compute_metrics(None, y_true, y_pred, sample_weight)

    def result(self) -> dict[str, Tensor]:
        return {m.name: m.result() for m in self._trainer._compiled_metrics}

    def reset_state(self) -> None:
        for metric in self._trainer._compiled_metrics:
            metric.reset_state()


class Trainer:
    """Holds what `compile` resolved and runs the loops."""

    def __init__(self, model, optimizer, loss, loss_weights, metrics, weighted_metrics,
                 steps_per_execution, jit_compile, device=None, mixed_precision=None,
                 auto_scale_loss=True):
        self.model = model
        self.optimizer = optimizer
        self.loss_argument = loss
        self.loss_weights = loss_weights
        self.metrics_argument = metrics
        self.weighted_metrics_argument = weighted_metrics
        self.steps_per_execution = steps_per_execution
        self.jit_compile = jit_compile  # resolved by compile(): True or False
        self.auto_scale_loss = auto_scale_loss
        self.device = torch.device(device) if device is not None else None
        self.autocast_dtype = resolve_autocast_dtype(mixed_precision, model)
        self.loss_tracker = StepLossMean()
        self._losses: Any = None          # a Loss, or a list/dict of them per output
        self._output_losses: list[tuple[str, Any, float, Any]] = []  # (name, loss, weight, key)
        self._output_trackers: list = []
        self._compiled_metrics: list = []
        self._metric_routes: list[tuple[Any, Any, bool]] = []  # (metric, output key, weighted)
        self._metrics_built = False
        self._forward = None
        self._precision: Precision | None = None
        self._regularized = False
        self._constrained: list[tuple[nn.Module, str, Any]] = []
        self._guard: NonFiniteGuard | None = None  # set while fit runs
        # Steps between reads of the non-finite flag: None is 1 on CPU (reading is free there;
        # a bad step is then never applied) and 100 on accelerators (see nonfinite.py).
        self.nonfinite_check_every: int | None = None
        # evaluate's metrics are one set of accumulators: concurrent evaluates take turns.
        self._evaluate_lock = concurrency.Lock()
        self._resumed_metrics: dict[str, Any] | None = None  # see load_metric_state
        # `after_backward(data, loss)` of the fit's callbacks that define it (the training
        # doctor): called with the gradients present, before the guard or the update.
        self.after_backward_hooks: list = []
        self._model_compute_loss = _overridden_compute_loss(model)
        self._pending_metrics: CompileMetrics | None = None
        # A final softmax/sigmoid the loss absorbs in the default train_step (fusion.py).
        self._fused: fusion.FusedOutput | None = None
        # The distribution set when the model was compiled (lamina.distribution), or None.
        self._distributed = distributed.at_compile()

    def __getstate__(self) -> dict[str, Any]:
        # A copy of the model (deepcopy, pickle, torch.save, also from a callback inside fit)
        # carries no run: torch.compile's wrapper cannot be copied (the copy compiles its own
        # at its first fit), and the non-finite guard and the hooks belong to this fit.
        return {**self.__dict__, "_forward": None, "_guard": None, "after_backward_hooks": []}

    # ------------------------------------------------------------------- set-up

    @property
    def metrics(self) -> list:
        return [self.loss_tracker, *self._output_trackers, *self._compiled_metrics]

    def model_metrics(self) -> list:
        """The engine's part of `model.metrics`: the loss, the per-output losses, the compiled
        metrics (one `CompileMetrics` until the first step). Keras lists its one
        `CompileMetrics` before the per-output losses; the lists `evaluate` returns follow
        Keras's order all the same (`_logs_as_list`)."""
        if self._metrics_built or (self.metrics_argument is None
                                   and self.weighted_metrics_argument is None):
            return self.metrics
        if self._pending_metrics is None:
            self._pending_metrics = CompileMetrics(self)
        return [self.loss_tracker, self._pending_metrics]

    def logged_metrics(self) -> list:
        """The engine's metrics, then the model's own (`model.metrics` beyond the engine's:
        trackers a custom `train_step` updates), each once."""
        found = self.metrics
        seen = {id(m) for m in found}
        extra = [m for m in _model_metrics(self.model) if id(m) not in seen]
        return found + extra if extra else found

    def _logs_as_list(self, logs: dict[str, float]) -> Any:
        """The logs as `evaluate` and the `*_on_batch` methods return them without `return_dict`,
        in Keras's order (`_flatten_metrics_in_order`): the loss, a single output's compiled
        metrics, the per-output losses, the model's own metrics, then every other entry sorted
        by name. So a multi-output model's `a_mae`, `b_mse`, ... come sorted, whatever their
        order in `compile`: code unpacking Keras's list gets the same values here."""
        keyed = {id(metric) for metric, key, _ in self._metric_routes if key is not None}
        names = [m.name for m in self.logged_metrics() if id(m) not in keyed]
        values = [logs[name] for name in names if name in logs]
        values += [logs[key] for key in sorted(logs) if key not in names]
        return values[0] if len(values) == 1 else values

    def reset_metrics(self) -> None:
        self._resumed_metrics = None
        for metric in self.logged_metrics():
            metric.reset_state()

    def metric_state(self) -> dict[str, Any]:
        """The running epoch's accumulators, for a backup taken mid-epoch."""
        trackers = [self.loss_tracker, *self._output_trackers, *self._compiled_metrics]
        return {"metrics": {m.name: list(m.variables) for m in trackers}}

    def load_metric_state(self, state: dict[str, Any]) -> None:
        """Put back `metric_state()`; compiled metrics that are built at the first step get
        theirs then (before their first update)."""
        self.loss_tracker.uncounted = 0
        self._resumed_metrics = dict(state["metrics"])
        self._apply_resumed_metrics()
        # A backup written before the tracker summed in place lists its unsummed step losses.
        with torch.no_grad():
            for loss, size in state.get("pending", ()):
                self.loss_tracker.record(loss.to(self.loss_tracker.total.device), int(size))

    def _apply_resumed_metrics(self) -> None:
        saved = self._resumed_metrics
        with torch.no_grad():
            for metric in [self.loss_tracker, *self._output_trackers, *self._compiled_metrics]:
                for variable, value in zip(metric.variables, saved.pop(metric.name, ())):
                    variable.copy_(value)

    def _place(self) -> torch.device:
        """Put the model on its device: compile(device=) if given, else CUDA when available and
        the model is still on the CPU, else where the user put it."""
        current = _device_of(self.model)
        target = self.device or (config.default_device() if current.type == "cpu" else current)
        if target != current:
            self.model.to(target)
        if self._precision is None or self._precision.device_type != target.type:
            self._precision = Precision(self.autocast_dtype, target, self.auto_scale_loss)
        return target

    def _prepare_optimizer(self) -> None:
        variables = [p for p in self.model.parameters() if p.requires_grad]
        if not variables:
            raise ValueError(
                f"Model {self.model.name!r} has no trainable weights (all are frozen), so fit "
                "would change nothing. Unfreeze some layers (layer.trainable = True) first."
            )
        optimizer = self.optimizer
        if optimizer.built and not (len(variables) == len(optimizer.variables) and all(
                a is b for a, b in zip(variables, optimizer.variables))):
            # The trainable set changed (layers frozen or unfrozen since the last fit), which
            # Keras handles by recompiling: start a fresh optimizer of the same configuration.
            self.optimizer = optimizer = type(optimizer).from_config(optimizer.get_config())
        optimizer.build(variables)
        if self.jit_compile and self._forward is None:
            self._forward = torch.compile(self.model)

    def _prepare_for(self, batch: Any, training: bool = True) -> None:
        """Before the first step: build layers that build on first call (a subclassed model
        has no weights until then, as in Keras), find the weights with penalties and
        constraints, and (for training) bind the optimizer."""
        model = self.model
        # A model with only a train_step (a GAN holding its networks) has no forward to run;
        # Keras builds its sublayers themselves, so they are built already or build on use.
        if _has_call(model) and any(isinstance(m, Layer) and not m.built for m in model.modules()):
            was_training = model.training
            model.eval()
            with torch.no_grad():
                model(unpack_x_y_sample_weight(batch)[0])
            model.train(was_training)
        if self._precision is not None:
            self._precision.fall_back(model)
        layers = [m for m in model.modules() if isinstance(m, Layer)]
        self._regularized = any(m._regularized or m.activity_regularizer is not None for m in layers)
        self._constrained = [(m, attr, c) for m in layers for attr, c in m._constrained]
        if training:
            distributed.wrap(self)  # DDP/FSDP, before the optimizer binds the weights
            self._prepare_optimizer()
            self._fused = fusion.plan(self)

    def _prepare_outside_the_loops(self, data: Any, training: bool) -> None:
        """The set-up of fit and evaluate for a `train_step`/`test_step` called by hand before
        either ran (Keras allows it), on the device the model and data are on."""
        if self._precision is None:
            self._precision = Precision(self.autocast_dtype, _device_of(self.model),
                                        self.auto_scale_loss)
        self._prepare_for(data, training=training)

    def _output_keys(self, y_pred: Any) -> list[Any]:
        if isinstance(y_pred, dict):
            return list(y_pred)
        if isinstance(y_pred, (list, tuple)):
            return list(range(len(y_pred)))
        return [None]

    def _output_name(self, key: Any) -> str:
        if isinstance(key, str):
            return key
        names = getattr(self.model, "output_names", None)
        if names and key is not None and key < len(names):
            return names[key]
        return f"output_{key}"

    def _build_losses_and_metrics(self, y: Any, y_pred: Any) -> None:
        """Resolve per-output losses and metrics once the output structure is known."""
        keys = self._output_keys(y_pred)
        loss = self.loss_argument
        self._output_losses = []
        if len(keys) == 1 and keys[0] is None:
            if isinstance(loss, (list, tuple)):
                loss = loss[0] if len(loss) == 1 else loss
            if loss is not None:
                self._output_losses.append(("loss", losses_module.get(loss), 1.0, None))
        elif loss is not None:
            per_output = _per_output(loss, keys, "loss", self._output_name)
            weights = _per_output(self.loss_weights, keys, "loss_weights", self._output_name) if self.loss_weights \
                is not None else {k: 1.0 for k in keys}
            for key in keys:
                if per_output.get(key) is not None:
                    name = f"{self._output_name(key)}_loss"
                    self._output_losses.append((name, losses_module.get(per_output[key]),
                                                float(weights.get(key, 1.0)), key))
            self._output_trackers = [metrics_module.Mean(name=n) for n, *_ in self._output_losses]
        self._compiled_metrics, self._metric_routes = [], []
        for argument, weighted in ((self.metrics_argument, False), (self.weighted_metrics_argument, True)):
            if argument is None:
                continue
            routes = _per_output(argument, keys, "metrics", self._output_name) if (len(keys) > 1 or isinstance(argument, dict)) \
                else {keys[0]: argument}
            for key in keys:
                items = routes.get(key)
                if items is None:
                    continue
                for item in (items if isinstance(items, (list, tuple)) else [items]):
                    output_loss = next((l for _, l, _, k in self._output_losses if k == key),
                                       self._output_losses[0][1] if self._output_losses else None)
                    metric = metrics_module.resolve(item, loss=output_loss,
                                                    y_true=_pick(y, key), y_pred=_pick(y_pred, key))
                    if key is not None:
                        metric.name = f"{self._output_name(key)}_{metric.name}"
                    if weighted and any(m.name == metric.name for m in self._compiled_metrics):
                        metric.name = f"weighted_{metric.name}"
                    self._compiled_metrics.append(metric)
                    self._metric_routes.append((metric, key, weighted))
        self._metrics_built = True
        if self._resumed_metrics:
            self._apply_resumed_metrics()

    # ------------------------------------------------------------------- the step

    def compute_loss(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> Tensor:
        return self._compute_loss(y, y_pred, sample_weight)

    def _compute_loss(self, y: Any, y_pred: Any, sample_weight: Any = None,
                      single_loss: Any = None) -> Tensor:
        """`compute_loss`; `single_loss` replaces a single-output model's compiled loss (the
        logits twin of a fused final activation)."""
        if not self._metrics_built:
            self._build_losses_and_metrics(y, y_pred)
        if not self._output_losses:
            total = None
        elif len(self._output_losses) == 1 and self._output_losses[0][3] is None:
            total = (single_loss or self._output_losses[0][1])(y, y_pred, sample_weight)
        else:
            total = 0.0
            for index, (_, loss, weight, key) in enumerate(self._output_losses):
                value = loss(_pick(y, key), _pick(y_pred, key), _pick_weight(sample_weight, key))
                with torch.no_grad():
                    self._output_trackers[index].update_state(value.detach(),
                                                              sample_weight=_batch_size(y_pred))
                total = total + weight * value
        if self._regularized or layer_module.holds_losses(self.model):
            # Regularization penalties and `add_loss` terms of the forward pass just run.
            penalties = self.model.losses
            self.model._clear_losses()
            if penalties:
                penalty = torch.stack([p.float().sum() for p in penalties]).sum()
                total = penalty if total is None else total + penalty
        if total is None:
            raise ValueError(
                "No loss to compute: compile() was called without `loss` and the model added "
                "no losses (add_loss, regularizers). Pass a loss to compile(), or override "
                "train_step or compute_loss to compute your own."
            )
        return total

    def _loss_of_step(self, x: Any, y: Any, y_pred: Any, sample_weight: Any,
                      training: bool) -> Tensor:
        """The default steps' loss: a model's own `compute_loss` when it overrides it."""
        custom = self._model_compute_loss
        if custom is None:
            return self._compute_loss(y, y_pred, sample_weight)
        if custom == "training":
            return self.model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                           training=training)
        return self.model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> Mapping:
        if not self._metrics_built:
            # A custom train_step may update metrics before (or without) computing the loss.
            self._build_losses_and_metrics(y, y_pred)
        for metric, key, weighted in self._metric_routes:
            metric.update_state(_pick(y, key), _pick(y_pred, key),
                                _pick_weight(sample_weight, key) if weighted else None)
        return _StepLogs(self)

    def default_train_step(self, data: Any) -> Mapping:
        if not self.model.training:  # called by hand: fit and the train function train in it
            with concurrency.one_training_step(self.model):
                return self.default_train_step(data)
        if self._precision is None or (self.optimizer is not None and not self.optimizer.built):
            self._prepare_outside_the_loops(data, training=True)
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        forward = self.model if self._forward is None else self._forward
        fused = self._fused
        if fused is not None and fused.observed():
            fused = None
        with self._precision.autocast():
            if fused is None:
                y_pred = forward(x)
                loss = self._loss_of_step(x, y, y_pred, sample_weight, True)
            else:
                y_pred = fused.forward(forward, x)  # the logits
                loss = self._compute_loss(y, y_pred, sample_weight, fused.loss)
        self._backward_and_step(loss, data)
        # The detached loss builds no graph, so only the metrics need grad mode off.
        self.loss_tracker.record(loss.detach(), _batch_size(y_pred))
        if not self._metric_routes:
            return _StepLogs(self)
        # A lone output detached without a tree walk: the walk costs a few percent of a small
        # model's step.
        y_pred = y_pred.detach() if isinstance(y_pred, Tensor) \
            else map_structure(lambda t: t.detach(), y_pred)
        return call_without_grad(self._metrics_of_step, x, y, y_pred, sample_weight, fused)

    def _metrics_of_step(self, x: Any, y: Any, y_pred: Any, sample_weight: Any,
                         fused: fusion.FusedOutput | None) -> Mapping:
        if fused is not None:
            y_pred = fused.metric_outputs(y_pred, self._compiled_metrics)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def _backward_and_step(self, loss: Tensor, data: Any = None) -> None:
        precision, guard = self._precision, self._guard
        if precision.scaler is None:
            loss.backward()
            for hook in self.after_backward_hooks:
                hook(data, loss)
            if guard is not None and guard.reject(loss):
                return
            self.optimizer.step()
        else:
            precision.scaler.scale(loss).backward()
            for hook in self.after_backward_hooks:
                hook(data, loss)
            # Overflowing scaled gradients are the scaler's business; a non-finite loss is not.
            if guard is not None and guard.reject(loss, check_gradients=False):
                return
            scaled_step(precision.scaler, self.optimizer)
        if self._constrained:
            with torch.no_grad():
                for module, attr, constraint in self._constrained:
                    weight = getattr(module, attr)
                    weight.copy_(constraint(weight))

    def default_test_step(self, data: Any) -> Mapping:
        if self._precision is None:
            self._prepare_outside_the_loops(data, training=False)
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        with self._precision.autocast():
            y_pred = self.model(x, training=False)
            loss = self._loss_of_step(x, y, y_pred, sample_weight, False)
        if loss.ndim:  # a custom compute_loss's per-sample losses
            self.loss_tracker.update_state(loss.detach(), sample_weight=_batch_size(y_pred))
        else:  # kept, not added: the tracker sums the batches' losses in one kernel later
            self.loss_tracker.record(loss.detach(), _batch_size(y_pred))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def default_predict_step(self, data: Any) -> Any:
        x, _, _ = unpack_x_y_sample_weight(data)
        with self._precision.autocast():
            return self.model(x, training=False)

    # ------------------------------------------------------------------- the loops

    def _adapter(self, x, y, sample_weight, batch_size, shuffle, steps, device, for_what,
                 class_weight=None):
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError("Pass either class_weight or sample_weight, not both.")
            sample_weight = _class_weights_to_sample_weights(y, class_weight)
        return data_adapters.make_adapter(x, y, sample_weight, batch_size=batch_size,
                                          shuffle=shuffle, device=device, steps=steps,
                                          for_what=for_what,
                                          strings=_reads_text(self.model, x))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        # Everything checkable is checked before the first forward pass (validation.py), so a
        # rejected call leaves the model untouched.
        validation.check_fit_arguments(
            batch_size=batch_size, epochs=epochs, verbose=verbose,
            validation_split=validation_split, shuffle=shuffle, initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
            validation_batch_size=validation_batch_size, validation_freq=validation_freq,
            class_weight=class_weight, sample_weight=sample_weight)
        if validation_data is not None:
            validation.check_validation_data(validation_data)
        model = self.model
        device = self._place()
        if validation_split and validation_data is None:
            (x, y, sample_weight), validation_data = data_adapters.split_validation(
                x, y, sample_weight, validation_split)
        train_data = self._adapter(x, y, sample_weight, batch_size, shuffle, steps_per_epoch,
                                   device, "fit", class_weight)
        self._check_data(train_data)
        train_data = distributed.shard(self, train_data, training=True)
        validation_adapter = None
        if validation_data is not None:
            vx, vy, vsw = unpack_x_y_sample_weight(validation_data)
            validation_adapter = self._adapter(vx, vy, vsw, validation_batch_size or batch_size,
                                               False, validation_steps, device, "fit")
            self._check_data(validation_adapter, "validation_data ")
            validation_adapter = distributed.shard(self, validation_adapter, training=False)
        callbacks = CallbackList(callbacks, add_history=True, add_progbar=_verbosity(verbose) != 0,
                                 model=model, verbose=_verbosity(verbose), epochs=epochs,
                                 steps=train_data.num_batches)
        self.after_backward_hooks = [c.after_backward for c in callbacks.callbacks
                                     if callable(getattr(c, "after_backward", None))]
        with concurrency.training(model):
            model.stop_training = False
            callbacks.on_train_begin()
            # Everything alive now (torch, the model, the data) lives through the fit: freezing
            # it keeps Python's cyclic collector from walking those ~10^5 objects again and
            # again (a measurable share of a small model's step: docs/provenance.md). Reference
            # counting still frees them.
            gc.freeze()
            try:
                epoch_logs = self._run_epochs(train_data, validation_adapter, callbacks,
                                              initial_epoch, epochs, validation_freq)
            finally:
                gc.unfreeze()
                self._guard = None
                self.after_backward_hooks = []
                model.eval()
        if getattr(self.optimizer, "use_ema", False):
            self.optimizer.finalize_variable_values(self.optimizer.variables)
        callbacks.on_train_end(epoch_logs)
        model.history = callbacks.history
        return callbacks.history

    def _run_epochs(self, train_data, validation, callbacks, initial_epoch: int, epochs: int,
                    validation_freq: int) -> dict[str, float]:
        model, every = self.model, self.steps_per_execution
        prepared = False
        epoch_logs: dict[str, float] = {}
        for epoch in range(callbacks.initial_epoch(initial_epoch), epochs):
            self.reset_metrics()
            model.train()
            callbacks.on_epoch_begin(epoch)
            # A run resumed mid-epoch continues at batch `start` of the same order.
            start, batches = callbacks.epoch_batches(epoch, train_data)
            logs: Mapping = _StepLogs(self) if start else {}
            for step, batch in enumerate(batches, start):
                if not prepared:
                    self._prepare_for(batch)
                    guard = self._guard = self._make_guard(callbacks)
                    prepared = True
                if callbacks.wants_batch_begin and step % every == 0:
                    callbacks.on_train_batch_begin(step)
                guard.begin_step(epoch, step, batch)
                try:
                    logs = model.train_step(_step_data(batch))
                except Exception as error:
                    raise _located(error, epoch, step, guard.failed_step())
                if guard.due(step):
                    guard.check(f"epoch {epoch + 1}, batch {step}")
                if callbacks.wants_batch_end and (step + 1) % every == 0:
                    callbacks.on_train_batch_end(step, logs)
                if model.stop_training:
                    break
            if prepared:
                # Before validation and on_epoch_end, so no checkpoint ever saves NaN weights.
                guard.check(f"the end of epoch {epoch + 1}")
            epoch_logs = logs_to_floats(distributed.reduce(self, logs, train_data))
            if validation is not None and (epoch + 1) % validation_freq == 0:
                validation_logs = self._evaluate_adapter(validation, callbacks=None)
                epoch_logs.update({f"val_{k}": v for k, v in validation_logs.items()})
            callbacks.on_epoch_end(epoch, epoch_logs)
            if model.stop_training:
                break
        return epoch_logs

    def _make_guard(self, callbacks) -> NonFiniteGuard:
        # TerminateOnNaN reads the loss every batch anyway, so checking every step costs
        # nothing more; a bad step is then skipped and training stops, as Keras's callback asks.
        stop = any(isinstance(c, TerminateOnNaN) for c in callbacks.callbacks)
        every = self.nonfinite_check_every
        if every is None:
            every = 1 if self._precision.device_type == "cpu" else 100
        return NonFiniteGuard(self, 1 if stop else every, stop_training=stop)

    def _check_data(self, adapter, prefix: str = "", scan_x: bool = True) -> None:
        """In-memory data against itself and the model, before any forward pass."""
        if not isinstance(adapter, data_adapters.ArrayAdapter):
            return
        ranges = validation.check_data(adapter.x, adapter.y, adapter.sample_weight, prefix,
                                       scan_x=scan_x)
        validation.check_against_model(self.model, adapter.x, adapter.y, ranges,
                                       self._sparse_loss(), prefix)

    def _sparse_loss(self) -> Any:
        """The compiled loss when it takes class indices (so labels can be range-checked)."""
        loss = self.loss_argument
        if isinstance(loss, (list, tuple)) and len(loss) == 1:
            loss = loss[0]
        if not isinstance(loss, (str, losses_module.Loss)):
            return None
        loss = losses_module.get(loss)
        return loss if isinstance(loss, losses_module.SparseCategoricalCrossentropy) else None

    def _evaluate_adapter(self, adapter, callbacks=None) -> dict[str, float]:
        model = self.model
        self.reset_metrics()
        logs: Mapping = {}
        with concurrency.inference(model), distributed.gathered(self):
            with torch.no_grad():
                for step, batch in enumerate(adapter.batches()):
                    if step == 0:
                        self._prepare_for(batch, training=False)
                    if callbacks is not None and callbacks.wants_test_batch:
                        callbacks.on_test_batch_begin(step)
                    logs = model.test_step(_step_data(batch))
                    if callbacks is not None and callbacks.wants_test_batch:
                        callbacks.on_test_batch_end(step, logs)
        return logs_to_floats(distributed.reduce(self, logs, adapter))

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        validation.check_count("batch_size", batch_size, allow_none=True)
        validation.check_count("steps", steps, allow_none=True)
        device = self._place()
        adapter = self._adapter(x, y, sample_weight, batch_size, False, steps, device, "evaluate")
        # Features are scanned for NaN/Inf only when a result comes out non-finite (below): an
        # up-front pass over x cost 4% of an MLP's evaluate, and evaluate changes no weights.
        self._check_data(adapter, scan_x=False)
        unsharded, adapter = adapter, distributed.shard(self, adapter, training=False)
        callbacks = CallbackList(callbacks, add_history=False, add_progbar=_verbosity(verbose) != 0,
                                 model=self.model, verbose=_verbosity(verbose), epochs=1,
                                 steps=adapter.num_batches, mode="test")
        with self._evaluate_lock:
            callbacks.on_test_begin()
            logs = self._evaluate_adapter(adapter, callbacks)
            if isinstance(unsharded, data_adapters.ArrayAdapter) \
                    and not all(math.isfinite(v) for v in logs.values()):
                validation.check_data(unsharded.x, None, None)  # the DataError naming the sample
            callbacks.on_test_end(logs)
            values = self._logs_as_list(logs)
        return logs if return_dict else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None, **kwargs):
        validation.check_count("batch_size", batch_size, allow_none=True)
        validation.check_count("steps", steps, allow_none=True)
        verbosity = _verbosity(verbose)
        model = self.model
        device = _device_of(model)
        if self._precision is None:
            self._precision = Precision(self.autocast_dtype, device)
            # fit and evaluate place the float32 layers before their first step; a predict-only
            # model gets them here, once.
            self._precision.fall_back(model)
        if not callbacks and not verbosity and self._distributed is None \
                and distributed.distribution() is None:
            # A serving loop's predict(sample): nothing observes the batches, so data that is
            # one batch skips the adapter, the callbacks and the concatenation.
            batch = data_adapters.single_batch(x, device, batch_size or 32)
            if batch is not None:
                with concurrency.inference(model):
                    outputs = call_without_grad(model.predict_step, _step_data((batch,)))
                return _concatenate_outputs([outputs])
        adapter = data_adapters.make_adapter(x, None, None, batch_size=batch_size, shuffle=False,
                                             device=device, steps=steps, for_what="predict",
                                             strings=_reads_text(model, x))
        adapter = distributed.shard(self, adapter, training=False)
        callbacks = CallbackList(callbacks, add_history=False, add_progbar=verbosity != 0,
                                 model=model, verbose=verbosity, epochs=1,
                                 steps=adapter.num_batches, mode="predict")
        outputs: list[Any] = []
        callbacks.on_predict_begin()
        with concurrency.inference(model), torch.no_grad(), distributed.gathered(self):
            for step, batch in enumerate(adapter.batches()):
                outputs.append(model.predict_step(_step_data(batch)))
                if callbacks.wants_predict_batch:
                    callbacks.on_predict_batch_end(step, {"outputs": outputs[-1]})
        callbacks.on_predict_end()
        return distributed.gather(self, _concatenate_outputs(outputs), adapter)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        device = self._place()
        if class_weight is not None:
            sample_weight = _class_weights_to_sample_weights(y, class_weight)
        batch = data_adapters.batch_to_device(
            data_adapters.pack_x_y_sample_weight(x, y, sample_weight), device)
        validation.check_data(*unpack_x_y_sample_weight(batch))
        self._prepare_for(batch)
        self.reset_metrics()
        self.model.train()
        logs = logs_to_floats(self.model.train_step(_step_data(batch)))
        self.model.eval()
        return logs if return_dict else self._logs_as_list(logs)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        device = self._place()
        batch = data_adapters.batch_to_device(
            data_adapters.pack_x_y_sample_weight(x, y, sample_weight), device)
        self._prepare_for(batch, training=False)
        self.reset_metrics()
        self.model.eval()
        with torch.no_grad():
            logs = logs_to_floats(self.model.test_step(_step_data(batch)))
        return logs if return_dict else self._logs_as_list(logs)


def predict_without_compile(model, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
    """`predict` needs no compile in Keras: a bare trainer, made once per model, runs it."""
    trainer = model.__dict__.get("_lamina_predictor")
    if trainer is None:
        # Two threads racing here each make one; both are stateless for predict, either wins.
        trainer = Trainer(model, optimizer=None, loss=None, loss_weights=None, metrics=None,
                          weighted_metrics=None, steps_per_execution=1,
                          jit_compile=False)
        object.__setattr__(model, "_lamina_predictor", trainer)
    return trainer.predict(x, batch_size=batch_size, verbose=verbose, steps=steps,
                           callbacks=callbacks)


def _device_of(model) -> torch.device:
    """The device of the model's first weight, as `next(model.parameters())` finds it, without
    the generators (a tenth of predict's cost at batch 1); the CPU for a model without weights."""
    return _first_device(model) or torch.device("cpu")


def _first_device(module) -> torch.device | None:
    # Depth first over `_modules` is `modules()`'s order; recursion beats an explicit stack and
    # a seen-set here (a module tree has no cycles: torch's own `.to()` recurses the same way).
    for parameter in module._parameters.values():
        if parameter is not None:
            return parameter.device
    for child in module._modules.values():
        if child is not None:
            device = _first_device(child)
            if device is not None:
                return device
    return None


def _reads_text(model, x: Any) -> bool:
    """Whether text in `x` is kept as text; numeric arrays skip the walk over the model."""
    return data_adapters.may_hold_text(x) and data_adapters.takes_strings(model)


def _batch_size(y_pred: Any) -> int:
    """The number of samples in a batch, from the first output tensor (a Python int: no sync)."""
    first = y_pred if isinstance(y_pred, Tensor) else flatten(y_pred)[0]
    return first.shape[0] if first.ndim else 1


def _step_data(batch: Any) -> Any:
    """The batch as Keras hands it to `train_step`/`test_step`/`predict_step`: `x` itself for
    x-only data (not `(x,)`), unless x is a list or tuple of inputs."""
    if type(batch) is tuple and len(batch) == 1 and not isinstance(batch[0], (list, tuple)):
        return batch[0]
    return batch


def _has_call(model) -> bool:
    return not (isinstance(model, Model) and type(model).call is Model.call)


def _overridden_compute_loss(model) -> str | None:
    """None for the built-in `compute_loss`; else "training" or "plain", whether the model's
    override takes `training` (added to Keras's signature in 3.3)."""
    method = getattr(type(model), "compute_loss", None)
    if not isinstance(model, Model) or method is None or method is Model.compute_loss:
        return None
    parameters = inspect.signature(method).parameters
    takes = "training" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    return "training" if takes else "plain"


def _model_metrics(model) -> list:
    metrics = getattr(type(model), "metrics", None)
    if metrics is None:
        return []
    try:
        found = model.metrics
    except NotCompiledError:
        return []
    return [m for m in found if isinstance(m, metrics_module.Metric)
            and not isinstance(m, CompileMetrics)]


def _verbosity(verbose: Any) -> int:
    return validation.check_verbose(verbose)


def _located(error: Exception, epoch: int, step: int, state: str) -> Exception:
    """A training step's error, saying which batch raised it (the model is already rolled
    back). An out-of-range label in a later batch is an IndexError deep in torch: a DataError
    names it."""
    where = f"training batch {step} of epoch {epoch + 1}"
    if isinstance(error, IndexError):
        located = DataError(
            f"{where} failed: {error}. Usually a class label outside [0, number of classes): "
            f"check that batch's labels against the model's output units. {state}"
        )
        located.__cause__ = error
        return located
    if not isinstance(error, NonFiniteError):
        error.add_note(f"Raised by {where}. {state}")
    return error


def _per_output(argument: Any, keys: list, what: str, name_of=str) -> dict:
    """Spread a compile argument over the outputs: a dict by output name, a list in output
    order, or one value for every output."""
    if isinstance(argument, dict):
        names = {key: name_of(key) for key in keys}
        unknown = set(argument) - set(keys) - set(names.values())
        if unknown:
            raise ValueError(
                f"`{what}` names outputs {sorted(map(str, unknown))} that the model does not "
                f"have. Its outputs are: {sorted(names.values())}."
            )
        return {k: argument.get(k, argument.get(names[k])) for k in keys}
    if isinstance(argument, (list, tuple)) and len(keys) > 1:
        if what == "metrics" and all(not isinstance(a, (list, tuple, dict)) for a in argument):
            return {k: list(argument) for k in keys}
        if len(argument) != len(keys):
            raise ValueError(
                f"The model has {len(keys)} outputs but `{what}` has {len(argument)} entries. "
                "Pass one per output (a list in output order or a dict by output name)."
            )
        return dict(zip(keys, argument))
    return {k: argument for k in keys}


def _pick(value: Any, key: Any) -> Any:
    if key is None or value is None:
        return value
    if isinstance(value, dict):
        return value[key]
    if isinstance(value, (list, tuple)):
        return value[key]
    return value


def _pick_weight(sample_weight: Any, key: Any) -> Any:
    if sample_weight is None or key is None or isinstance(sample_weight, Tensor):
        return sample_weight
    return _pick(sample_weight, key)


def _class_weights_to_sample_weights(y: Any, class_weight: dict) -> np.ndarray:
    if y is None or isinstance(y, (list, dict)) and not isinstance(y, np.ndarray):
        raise ValueError("class_weight needs a single array of labels y.")
    labels = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if labels.ndim > 1 and labels.shape[-1] > 1:
        labels = labels.argmax(axis=-1)
    labels = labels.reshape(len(labels), -1)[:, 0].astype(np.int64)
    missing = set(np.unique(labels).tolist()) - set(int(k) for k in class_weight)
    if missing:
        raise ValueError(f"class_weight has no weight for classes {sorted(missing)} found in y.")
    table = np.zeros(max(int(k) for k in class_weight) + 1, dtype=np.float32)
    for key, weight in class_weight.items():
        table[int(key)] = weight
    return table[labels]


def _concatenate_outputs(outputs: list[Any]) -> Any:
    if not outputs:
        raise DataError("predict received no data: the input produced no batches.")
    first = outputs[0]
    if isinstance(first, Tensor):
        if len(outputs) == 1 and first.ndim:
            return _to_numpy(first)
        return torch.cat([o.float() if o.dtype == torch.bfloat16 else o for o in outputs]).cpu().numpy()
    if isinstance(first, (list, tuple)):
        return [_concatenate_outputs([o[i] for o in outputs]) for i in range(len(first))]
    if isinstance(first, dict):
        return {k: _concatenate_outputs([o[k] for o in outputs]) for k in first}
    raise TypeError(f"predict_step returned {type(first).__name__}; expected tensors.")


def _to_numpy(tensor: Tensor) -> np.ndarray:
    """One batch's output as `torch.cat` of several returns it: a C-ordered numpy array of its
    own (a CPU tensor's `.numpy()` shares memory, with the input itself for an identity model)."""
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    if tensor.is_cpu:
        return tensor.numpy().copy()
    return tensor.contiguous().cpu().numpy()
