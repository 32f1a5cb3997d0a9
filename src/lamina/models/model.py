"""`Model`: a `Layer` with training, evaluation, saving and a summary.

`Model(inputs, outputs)` builds a functional model; subclassing `Model` and writing `call` gives
a subclassed model, as in Keras. Training calls go to the one engine in `lamina.training`; this
file holds no loop code.
"""

from __future__ import annotations

import inspect
import json
import warnings
from typing import Any, Callable

import torch
from torch import nn

from lamina._registry import register
from lamina._symbolic import _run_probes, make_probes
from lamina.layers.layer import Layer, _is_symbolic
from lamina.metrics.metric import Metric
from lamina.saving import saving_api, serialization
from lamina.training import concurrency
from lamina.training.data_adapters import unpack_x_y_sample_weight
from lamina.training.logs import trainer_of


_FUNCTIONAL_SUBCLASSES: dict[type, type] = {}
# Functional's and Sequential's tables keyed by id(layer) (names, plain modules' output shapes).
_KEYED_BY_LAYER = ("_layer_names", "_plain_output_shapes")


def _functional_arguments(args: tuple, kwargs: dict) -> bool:
    """Whether a Model subclass is called as `Cls(inputs, outputs)` with symbolic tensors."""
    inputs = args[0] if args else kwargs.get("inputs")
    outputs = args[1] if len(args) > 1 else kwargs.get("outputs")
    return _is_symbolic(inputs) and _is_symbolic(outputs)


def _functional_subclass(cls: type, functional: type) -> type:
    """`cls` with the functional model's graph machinery under it (cls's methods win)."""
    made = _FUNCTIONAL_SUBCLASSES.get(cls)
    if made is None:
        made = type(cls.__name__, (cls, functional), {"__module__": cls.__module__,
                                                      "__qualname__": cls.__qualname__})
        _FUNCTIONAL_SUBCLASSES[cls] = made
    return made


def _new_functional_subclass(cls: type) -> "Model":
    """An empty instance of what `cls(inputs, outputs)` makes, for unpickling: that class is
    made at run time under `cls`'s name, so pickle cannot find it by name."""
    from lamina.models.functional import Functional

    made = _functional_subclass(cls, Functional)
    return made.__new__(made)


def _sample_count(x: Any) -> int | None:
    """The rows of the first array in `x` (a list or dict of inputs counts its samples, not its
    entries); None when `x` holds no array."""
    while isinstance(x, (list, tuple, dict)) and x:
        x = next(iter(x.values())) if isinstance(x, dict) else x[0]
    shape = getattr(x, "shape", None)
    return int(shape[0]) if shape and shape[0] else None


@register("Model")
class Model(Layer):
    """A trainable model. Three ways to make one, as in Keras:

    - `Sequential([...])`, a stack of layers;
    - `Model(inputs, outputs)`, a graph of layers built on `Input` tensors;
    - a subclass of `Model` with layers made in `__init__` and the forward pass in `call`.

    Every model is an `nn.Module`: `parameters()`, `state_dict()`, `.to(device)` and hand-written
    PyTorch loops work on it.
    """

    # Each layer inside casts its own inputs to its dtype (layers/layer.py `_cast_inputs`); a
    # cast here to the model's dtype would drop float64 data to float32 before float64 layers.
    _casts_inputs = False
    # Keras's step callables (`make_train_function` and its twins); `compile` clears them.
    train_function: Callable[[Any], Any] | None = None
    test_function: Callable[[Any], Any] | None = None
    predict_function: Callable[[Any], Any] | None = None

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is Model and (len(args) >= 2 or ("inputs" in kwargs and "outputs" in kwargs)
                             or (len(args) == 1 and "outputs" in kwargs)):
            from lamina.models.functional import Functional

            return super().__new__(Functional)
        if _functional_arguments(args, kwargs):
            from lamina.models.functional import Functional

            if not issubclass(cls, Functional):
                # `CustomModel(inputs, outputs)` with a subclass that overrides train_step (the
                # Keras guides): a functional model of that subclass, as Keras makes one.
                return super().__new__(_functional_subclass(cls, Functional))
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any):
        if args:
            raise TypeError(
                f"{type(self).__name__}() got unexpected positional arguments {args!r}. A subclassed "
                "model calls super().__init__() with keyword arguments only (name=, trainable=)."
            )
        super().__init__(**kwargs)
        self._compile_config: dict[str, Any] | None = None
        self.stop_training = False
        self.history = None

    def __getstate__(self) -> dict[str, Any]:
        # copy.deepcopy, pickle and torch.save: the copy gets no thread's lock or guard, and
        # the tables keyed by id(layer) travel keyed by the layer (the copy's are new objects).
        state = concurrency.copy_state(self, super().__getstate__())
        if any(key in state for key in _KEYED_BY_LAYER):
            layers = {id(module): module for module in self.modules()}
            for key in _KEYED_BY_LAYER:
                if key in state:
                    state[key] = [(layers[k], v) for k, v in state[key].items() if k in layers]
        return state

    def __reduce_ex__(self, protocol: Any) -> Any:
        reduced = super().__reduce_ex__(protocol)
        base = type(self).__bases__[0]
        if _FUNCTIONAL_SUBCLASSES.get(base) is type(self):
            return (_new_functional_subclass, (base,), *reduced[2:])
        return reduced

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key in _KEYED_BY_LAYER:
            if key in state:
                state[key] = {id(layer): value for layer, value in state[key]}
        super().__setstate__(state)
        concurrency.after_copy(self)

    def call(self, inputs: Any, training: Any = None) -> Any:
        raise NotImplementedError(
            f"Model {type(self).__name__} has no `call` method. A subclassed model defines "
            "`call(self, inputs, training=None)`; use Sequential or Model(inputs, outputs) otherwise."
        )

    def build(self, input_shape: Any = None) -> None:
        """Create a subclassed model's weights by running `call` once on a zero batch of
        `input_shape` (a tuple, or a list of tuples for several inputs), as Keras does."""
        if self._building or self.built or type(self).build is not Model.build:
            # Building for a first call (that call creates the sublayers' weights), or called
            # through super() from a subclass's own build, which creates what it needs.
            return
        if input_shape is None:
            raise ValueError(
                f"Model {self.name!r} needs an input shape to be built, e.g. "
                "model.build((None, 784)); or call it on a batch of data."
            )
        def probe(shape: Any) -> Any:
            if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
                return [probe(s) for s in shape]
            return make_probes(tuple(shape), self._dtype)[0]

        _run_probes(lambda which: self(probe(input_shape)), self)
        self._build_input_shape = input_shape

    @classmethod
    def from_config(cls, config_dict: dict[str, Any], custom_objects: dict | None = None,
                    safe_mode: bool = True) -> "Model":
        """A functional config gives a functional model (`keras.Model.from_config`); a subclassed
        model is rebuilt as `cls(**config)`."""
        if cls is Model and {"layers", "input_layers", "output_layers"} <= set(config_dict):
            from lamina.models.functional import Functional

            return Functional.from_config(config_dict, custom_objects=custom_objects,
                                          safe_mode=safe_mode)
        try:
            return cls(**config_dict)
        except TypeError as error:
            raise TypeError(
                f"Could not rebuild model {cls.__name__} from its config (keys "
                f"{sorted(config_dict)}): {error}. A subclassed model whose __init__ takes "
                "arguments must return exactly those arguments from get_config()."
            ) from error

    # ------------------------------------------------------------------- training (the engine)

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None,
                metrics: Any = None, weighted_metrics: Any = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: Any = "auto", auto_scale_loss: bool = True,
                **kwargs: Any) -> None:
        """Configure the model for training (optimizer, loss, metrics); see `lamina.training`."""
        from lamina.training.compile import compile_model

        compile_model(self, optimizer=optimizer, loss=loss, loss_weights=loss_weights,
                      metrics=metrics, weighted_metrics=weighted_metrics, run_eagerly=run_eagerly,
                      steps_per_execution=steps_per_execution, jit_compile=jit_compile,
                      auto_scale_loss=auto_scale_loss, **kwargs)
        self.__dict__["_run_eagerly"] = bool(run_eagerly)
        self.train_function = self.test_function = self.predict_function = None

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compile with `get_compile_config()`'s dict (a saved model's compile settings), as
        Keras does when loading; the optimizer is built for the weights of a built model."""
        from lamina.saving.compile_config import LAMINA_COMPILE_ARGUMENTS, deserialize_compile_config

        if type(self).compile is not Model.compile:
            warnings.warn(
                "`compile()` was not called as part of model loading because the model's "
                "`compile()` method is custom. All subclassed Models that have `compile()` "
                "overridden should also override `get_compile_config()` and "
                "`compile_from_config(config)`. Alternatively, you can call `compile()` "
                "manually after loading.", stacklevel=2)
            return
        if not isinstance(config, dict):
            raise TypeError(
                "`compile_from_config` takes the dict that `get_compile_config()` returns. "
                f"Received: config={config!r:.80}."
            )
        valid = [name for name in inspect.signature(Model.compile).parameters
                 if name not in ("self", "kwargs")] + list(LAMINA_COMPILE_ARGUMENTS)
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise TypeError(
                f"`compile_from_config` received keys {unknown} that compile() does not take. "
                f"Valid keys: {valid}."
            )
        self.compile(**deserialize_compile_config(config))
        if self.built and self.trainable_variables:
            trainer = self._trainer()
            trainer._place()  # the optimizer's state is made on the weights' final device
            self.optimizer.build([p for p in self.parameters() if p.requires_grad])

    @property
    def jit_compile(self) -> bool:
        """Whether `fit` runs the model through `torch.compile` (Keras: XLA; "auto" is False on
        torch). Settable; set before `compile`, `compile`'s own argument replaces it."""
        trainer = self.__dict__.get("_lamina_trainer")
        if trainer is not None:
            return trainer.jit_compile
        return self.__dict__.get("_jit_compile", False)

    @jit_compile.setter
    def jit_compile(self, value: Any) -> None:
        from lamina.training.compile import _resolve_jit_compile

        resolved = _resolve_jit_compile(value, run_eagerly=False)
        trainer = self.__dict__.get("_lamina_trainer")
        if trainer is None:
            self.__dict__["_jit_compile"] = resolved
        else:
            _set_trainer_jit_compile(trainer, resolved)

    @property
    def run_eagerly(self) -> bool:
        """`compile`'s `run_eagerly`. Lamina's steps always run eagerly unless `jit_compile`
        asks for torch.compile; setting it to True turns `jit_compile` off (nothing compiled)."""
        return self.__dict__.get("_run_eagerly", False)

    @run_eagerly.setter
    def run_eagerly(self, value: Any) -> None:
        if value not in (True, False):
            raise ValueError(
                f"`run_eagerly` must be True or False. Received: run_eagerly={value!r}."
            )
        self.__dict__["_run_eagerly"] = bool(value)
        if value:
            trainer = self.__dict__.get("_lamina_trainer")
            if trainer is not None:
                _set_trainer_jit_compile(trainer, False)
            self.__dict__["_jit_compile"] = False

    def _trainer(self):
        return trainer_of(self)

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: Any = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, class_weight: Any = None,
            sample_weight: Any = None, initial_epoch: int = 0, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int = 1, *, doctor: Any = False, **kwargs: Any):
        """Train for `epochs` epochs; returns a `History` (`history.history['val_loss']`, ...).

        `doctor=True` adds a `lamina.callbacks.Doctor` (reachable as `model.doctor`).
        """
        from lamina.callbacks.doctor import with_doctor

        callbacks = with_doctor(self, callbacks, doctor)
        try:
            return self._trainer().fit(
                x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                validation_split=validation_split, validation_data=validation_data,
                shuffle=shuffle, class_weight=class_weight, sample_weight=sample_weight,
                initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps, validation_batch_size=validation_batch_size,
                validation_freq=validation_freq, **kwargs)
        except Exception as error:
            # Callbacks that diagnose a run (the Doctor) hear why it stopped, even when fit's
            # up-front checks refused the data before any callback started.
            for callback in callbacks or ():
                if callable(getattr(callback, "on_exception", None)):
                    if callback.model is None:
                        callback.set_model(self)
                    callback.on_exception(error)
            raise

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: Any = "auto", sample_weight: Any = None, steps: int | None = None,
                 callbacks: Any = None, return_dict: bool = False, **kwargs: Any):
        """Loss and metrics on the given data: a scalar, a list, or a dict with `return_dict`."""
        return self._trainer().evaluate(x, y, batch_size=batch_size, verbose=verbose,
                                        sample_weight=sample_weight, steps=steps,
                                        callbacks=callbacks, return_dict=return_dict, **kwargs)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto",
                steps: int | None = None, callbacks: Any = None, **kwargs: Any):
        """Outputs for the inputs, batched, as numpy arrays (no compile needed)."""
        # The compiled trainer, else the bare one an earlier uncompiled predict made: looked up
        # here, as a serving loop calls this per sample.
        trainer = self.__dict__.get("_lamina_trainer") or self.__dict__.get("_lamina_predictor")
        if trainer is None:
            from lamina.training.trainer import predict_without_compile

            return predict_without_compile(self, x, batch_size=batch_size, verbose=verbose,
                                           steps=steps, callbacks=callbacks)
        return trainer.predict(x, batch_size=batch_size, verbose=verbose, steps=steps,
                               callbacks=callbacks, **kwargs)

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                       class_weight: Any = None, return_dict: bool = False):
        return self._trainer().train_on_batch(x, y, sample_weight=sample_weight,
                                              class_weight=class_weight, return_dict=return_dict)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                      return_dict: bool = False):
        return self._trainer().test_on_batch(x, y, sample_weight=sample_weight,
                                             return_dict=return_dict)

    def predict_on_batch(self, x: Any):
        """Outputs for `x` taken as one batch (one forward pass), as numpy arrays."""
        return self.predict(x, batch_size=_sample_count(x), verbose=0)

    def find_learning_rate(self, x: Any = None, y: Any = None, start: float = 1e-7,
                           end: float = 10.0, steps: int = 100, **kwargs: Any):
        """The learning-rate range test (fastai's `lr_find`): a sweep from `start` to `end`,
        returning the loss curve, the suggested rates (`steep`, `minimum`) and `plot()`. The
        weights, optimizer and random state are put back after; see `lamina.training.lr_finder`."""
        from lamina.training.lr_finder import find_learning_rate

        return find_learning_rate(self, x, y, start=start, end=end, steps=steps, **kwargs)

    def fit_one_cycle(self, x: Any = None, y: Any = None, epochs: int = 1,
                      max_lr: float | None = None, **kwargs: Any):
        """`fit` with fastai's one-cycle learning rate and momentum (`pct_start=0.25`,
        `div=25`, `div_final=1e5`, `moms=(0.95, 0.85, 0.95)`); see `lamina.training.one_cycle`."""
        from lamina.training.one_cycle import fit_one_cycle

        return fit_one_cycle(self, x, y, epochs=epochs, max_lr=max_lr, **kwargs)

    def train_step(self, data: Any) -> dict[str, Any]:
        """One optimization step on a batch: forward, loss, backward, optimizer step.

        Override it for custom training (as Keras 3 documents); return a dict of logs.
        """
        return self._trainer().default_train_step(data)

    def test_step(self, data: Any) -> dict[str, Any]:
        return self._trainer().default_test_step(data)

    def predict_step(self, data: Any) -> Any:
        trainer = self.__dict__.get("_lamina_trainer")
        if trainer is None:
            # predict() needs no compile (as in Keras); an uncompiled model just runs forward.
            if isinstance(data, torch.Tensor):  # one input: nothing to unpack
                return self(data, training=False)
            x, _, _ = unpack_x_y_sample_weight(data)
            return self(x, training=False)
        return trainer.default_predict_step(data)

    def make_train_function(self, force: bool = False) -> Callable[[Any], Any]:
        """The callable `fit` would run per batch, as Keras's torch trainer makes it: one
        `train_step` per call on `[batch]` (or on `next(iterator)`); returns the logs dict.
        Also kept as `model.train_function`; made once unless `force`."""
        return self._step_function("train", force)

    def make_test_function(self, force: bool = False) -> Callable[[Any], Any]:
        """One `test_step` per call, without gradients, in inference mode; returns the logs."""
        return self._step_function("test", force)

    def make_predict_function(self, force: bool = False) -> Callable[[Any], Any]:
        """One `predict_step` per call, without gradients; returns the outputs as tensors."""
        return self._step_function("predict", force)

    def _step_function(self, kind: str, force: bool) -> Callable[[Any], Any]:
        from lamina.models.step_functions import StepFunction

        attribute = f"{kind}_function"
        function = getattr(self, attribute)
        if function is None or force:
            function = StepFunction(self, kind)
            setattr(self, attribute, function)
        return function

    def stateless_call(self, trainable_variables: Any, non_trainable_variables: Any, *args: Any,
                       return_losses: bool = False, **kwargs: Any) -> tuple:
        """Call the model on the given weight values without changing the model's own.

        Returns `(outputs, non_trainable_variables)`, the latter the state after the call
        (BatchNormalization's moving statistics in training mode), in the order of
        `model.non_trainable_variables`; with `return_losses`, also the call's losses
        (`add_loss` terms, weight penalties on the values given). Gradients flow to the
        trainable values given, so `torch.func.grad` works over it."""
        from lamina.models.stateless import stateless_call

        return stateless_call(self, trainable_variables, non_trainable_variables, args, kwargs,
                              return_losses=return_losses)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True):
        """The compiled loss (plus regularization losses), as Keras 3's `compute_loss`.

        `training` is Keras's hook for overrides (the default steps pass it to an override that
        takes it); the default loss, like Keras's, does not depend on it."""
        return self._trainer().compute_loss(x, y, y_pred, sample_weight)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None):
        return self._trainer().compute_metrics(x, y, y_pred, sample_weight)

    @property
    def metrics(self) -> list:
        """The loss tracker and compiled metrics (after `compile`), then the metrics kept as
        attributes of the model (`self.loss_tracker = metrics.Mean(...)`), as in Keras 3."""
        found = self._trainer().model_metrics() if self._compile_config is not None else []
        return found + [v for v in self.__dict__.values() if isinstance(v, Metric)]

    @property
    def metrics_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        """Reset the state of every metric in `model.metrics` (the loss tracker included)."""
        for metric in self.metrics:
            metric.reset_state()

    def get_metrics_result(self) -> dict[str, Any]:
        """The values of `model.metrics` as a dict of tensors (a metric whose result is a dict,
        like the compiled metrics before the first step, adds its entries), as in Keras."""
        results: dict[str, Any] = {}
        for metric in self.metrics:
            result = metric.result()
            if isinstance(result, dict):
                results.update(result)
            else:
                results[metric.name] = result
        return results

    @property
    def metrics_variables(self) -> list[torch.Tensor]:
        """The state tensors of every metric in `model.metrics`, in that order."""
        return [variable for metric in self.metrics for variable in metric.variables]

    def add_metric(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "Layer `add_metric()` method is deprecated. Add your metric in "
            "`Model.compile(metrics=[...])`, or create metric trackers in init() or build() "
            "when subclassing the layer or model, then call `metric.update_state()` whenever "
            "necessary."
        )

    @property
    def optimizer(self):
        return self._trainer().optimizer if self._compile_config is not None else None

    @property
    def loss(self):
        return self._compile_config.get("loss") if self._compile_config else None

    # ------------------------------------------------------------------- inspection and saving

    def summary(self, line_length: int | None = None, positions: Any = None,
                print_fn: Callable[[str], Any] | None = None, expand_nested: bool = False,
                show_trainable: bool = False, layer_range: Any = None) -> None:
        """Print Keras 3's table of the layers (output shape, parameters, connections), then the
        totals. `positions` places the column ends (fractions of `line_length`); `layer_range`
        is `(first, last)` layer names or regular expressions."""
        from lamina.models.summary import print_summary

        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable,
                      layer_range=layer_range)

    def get_layer(self, name: str | None = None, index: int | None = None) -> nn.Module:
        """A layer by name or by index in `model.layers`."""
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model {self.name!r} only "
                    f"has {len(layers)} layers."
                )
            return layers[index]
        for layer in layers:
            if getattr(layer, "name", None) == name:
                return layer
        valid = [getattr(layer, "name", type(layer).__name__) for layer in layers]
        raise ValueError(f"No such layer: {name!r}. Existing layers are: {valid}.")

    def save(self, filepath: Any, overwrite: bool = True, **kwargs: Any) -> None:
        """Save architecture, weights and compile state: `.keras` (zip) or `.h5` (legacy HDF5)."""
        saving_api.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath: Any, overwrite: bool = True) -> None:
        """Save the weights to an HDF5 file (`.weights.h5`, or a plain `.h5`), or
        the torch `state_dict` to a `.safetensors` file."""
        if str(filepath).endswith(".safetensors"):
            from lamina.export import save_safetensors

            return save_safetensors(self, filepath, overwrite=overwrite)
        saving_api.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: Any, skip_mismatch: bool = False, **kwargs: Any) -> None:
        """Load weights saved by `save_weights` (or inside a `.keras` file), matched by layer name;
        or a `.safetensors` / torch `.pt` / `.pth` / `.bin` state dict (`key_map=` renames a
        foreign checkpoint's keys; see `lamina.export.load_weights_file`)."""
        from lamina.export import WEIGHT_SUFFIXES

        if str(filepath).endswith(WEIGHT_SUFFIXES):
            from lamina.export import load_weights_file

            return load_weights_file(self, filepath, skip_mismatch=skip_mismatch, **kwargs)
        saving_api.load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)

    def export(self, filepath: Any, format: str | None = None, verbose: bool = True,
               input_signature: Any = None, **kwargs: Any) -> Any:
        """Export for inference: `format="onnx"` (torch.onnx) or `"torch"` (a torch.export
        `.pt2` program); None picks it from the suffix. Keras's default, "tf_saved_model",
        needs TensorFlow and is not offered. See `lamina.export.export_model`."""
        from lamina.export import export_model

        return export_model(self, filepath, format=format, verbose=verbose,
                            input_signature=input_signature, **kwargs)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(serialization.serialize(self), **kwargs)

    def get_compile_config(self) -> dict[str, Any]:
        """The arguments `compile` was given, as JSON-able data (what a saved model holds; a
        name stays a name, an object becomes its config); `{}` before `compile`. Entries that
        cannot be described (a torch optimizer, a lambda loss) are left out."""
        if self._compile_config is None:
            return {}
        from lamina.saving.compile_config import serialize_compile_config

        config = serialize_compile_config(self._compile_config)
        if "jit_compile" in config:
            # What compile settled on, as Keras records it ("auto" is eager on torch, and
            # run_eagerly wins over jit_compile).
            config["jit_compile"] = config["jit_compile"] is True and not config.get("run_eagerly")
        return config


def _set_trainer_jit_compile(trainer: Any, jit_compile: bool) -> None:
    trainer.jit_compile = jit_compile
    if not jit_compile:
        # The compiled wrapper the next step would use; fit makes one again when turned on.
        trainer._forward = None
