"""Inference on one model from several threads.

`predict` and `evaluate` need the model in inference mode (Dropout off, BatchNormalization on
its moving statistics), and `module.training` is one flag shared by every thread. Flipping it
per call, as a single-threaded engine may, lets one thread's "back to training mode" land in
the middle of another thread's inference. So the flip is counted: the first inference call to
enter puts the model in eval mode and remembers exactly which modules were in training mode;
later ones join without touching the flags; the last one to leave puts those modules back.
Concurrent inference calls therefore run in parallel, all in eval mode, and the model's mode
afterwards is what it was.

`fit` registers itself: inference from another thread while `fit` runs, or `fit` while another
thread is inside inference, raises instead of silently training in the wrong mode.

Copies (`copy.deepcopy`, pickle, `torch.save` of the whole model) never carry a guard or a lock:
a copy is a new model that no thread is using, so it gets a fresh lock and an idle guard. A copy
taken while another thread is inside inference gets the modes the model has outside inference,
read under the guard's lock before anything is copied (the copy's modules are otherwise copied
one by one, and a predict starting or ending meanwhile would leave some of them in eval mode).
"""

from __future__ import annotations

import threading
from typing import Any

_CREATE = threading.Lock()


class ModeGuard:
    """The per-model counter behind `inference(model)` and `training(model)`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.restore: list[Any] = []
        self.fit_thread: int | None = None


class Lock:
    """A `threading.Lock` (a context manager) whose copies are new, unlocked locks: the object
    that owns it stays copyable (`threading.Lock` itself refuses to be pickled)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    def __reduce__(self) -> tuple:
        return (Lock, ())


_MODES = "_lamina_copy_modes"


def copy_state(model: Any, state: dict[str, Any]) -> dict[str, Any]:
    """`state` (the model's `__dict__` as `__getstate__` returns it) without the guard, and
    with the modules that are in training mode outside any inference call, for `after_copy`."""
    state.pop("_lamina_mode_guard", None)
    guard = guard_of(model)
    with guard.lock:
        modes = list(guard.restore) if guard.users else _training_modules(model)
    # The model itself goes along: a deep copy or a pickle maps it to the copy, a shallow copy
    # (`copy.copy`, whose submodules are the original's) keeps the original.
    state[_MODES] = (model, modes)
    return state


def after_copy(model: Any) -> None:
    """Give a copy made from `copy_state` the recorded modes. Called from `__setstate__`, when
    every submodule of the copy is built (unpickling builds an object's state before it)."""
    owner, modes = model.__dict__.pop(_MODES, (None, None))
    if owner is not model:
        # A shallow copy shares the modules: setting their modes would switch the original's
        # under a predict running in another thread.
        return
    training = {id(module) for module in modes}
    for module in _training_modules(model, every=True):
        module.__dict__["training"] = id(module) in training


def guard_of(model: Any) -> ModeGuard:
    guard = model.__dict__.get("_lamina_mode_guard")
    if guard is None:
        with _CREATE:
            guard = model.__dict__.get("_lamina_mode_guard")
            if guard is None:
                guard = ModeGuard()
                object.__setattr__(model, "_lamina_mode_guard", guard)
    return guard


def _training_modules(model: Any, every: bool = False) -> list[Any]:
    """The modules of `model` in training mode (all of them with `every`), `model.modules()` order.
    A plain walk over the `_modules` dicts: `modules()` (a generator per level, a memo set) cost
    more than a small model's forward pass at batch 1. A shared module is listed once."""
    found, seen, stack = [], set(), [model]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        if every or module.training:
            found.append(module)
        stack.extend(reversed([m for m in module._modules.values() if m is not None]))
    return found


class inference:  # noqa: N801  (used as a context manager, like torch.no_grad)
    """Hold the model in eval mode for the duration of one predict/evaluate call."""

    def __init__(self, model: Any):
        self.model = model
        self.guard = guard_of(model)

    def __enter__(self) -> None:
        guard, me = self.guard, threading.get_ident()
        with guard.lock:
            if guard.fit_thread is not None and guard.fit_thread != me:
                raise RuntimeError(
                    f"Model {self.model.name!r} is being trained by fit() in another thread; "
                    "predict/evaluate from a second thread would switch it to inference mode "
                    "mid-training. Call them from a callback (on_epoch_end) or after fit "
                    "returns, or on a copy of the model."
                )
            if guard.users == 0:
                guard.restore = _training_modules(self.model)
                if guard.restore:
                    self.model.eval()
            guard.users += 1

    def __exit__(self, *exc: Any) -> None:
        guard = self.guard
        with guard.lock:
            guard.users -= 1
            if guard.users == 0:
                # Exactly the modules that were in training mode, not model.train(): a frozen
                # BatchNorm left in eval mode by the user stays in eval mode.
                for module in guard.restore:
                    module.__dict__["training"] = True
                guard.restore = []


class training:  # noqa: N801
    """Mark the model as being trained by this thread for the duration of fit."""

    def __init__(self, model: Any):
        self.model = model
        self.guard = guard_of(model)
        self.outer = False

    def __enter__(self) -> None:
        guard, me = self.guard, threading.get_ident()
        with guard.lock:
            if guard.fit_thread is not None and guard.fit_thread != me:
                raise RuntimeError(
                    f"Model {self.model.name!r} is already being trained by fit() in another "
                    "thread; one model trains in one thread at a time."
                )
            if guard.users and guard.fit_thread is None:
                raise RuntimeError(
                    f"predict/evaluate is running on model {self.model.name!r} in another "
                    "thread; fit would switch the model to training mode under it. Wait for "
                    "them to finish (or train a copy of the model)."
                )
            self.outer = guard.fit_thread is None
            guard.fit_thread = me

    def __exit__(self, *exc: Any) -> None:
        if self.outer:
            with self.guard.lock:
                self.guard.fit_thread = None


class one_training_step(training):  # noqa: N801
    """A train step called outside fit (by hand, or by `make_train_function`'s function): fit's
    mark, and fit's train mode for the step (Keras's step runs the model with training=True);
    the eval mode it found is put back after."""

    def __enter__(self) -> None:
        super().__enter__()
        self.switched = not self.model.training
        if self.switched:
            self.model.train()

    def __exit__(self, *exc: Any) -> None:
        if self.switched:
            self.model.eval()
        super().__exit__(*exc)
