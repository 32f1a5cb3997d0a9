"""Saving and loading in a distributed run: every process gathers whole weights (FSDP), rank 0
writes; a load is split back into the shards."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

import torch.distributed as dist

from lamina.distribution.distribution_lib import process_index

_depth = [0]


@contextlib.contextmanager
def writing(model: Any, slots: bool = True) -> Iterator[bool]:
    """Around a save: the block runs where this yields True (rank 0); every process takes part
    in gathering sharded weights (and with `slots`, optimizer slots), and the others wait until
    the file is written."""
    trainer = getattr(model, "__dict__", {}).get("_lamina_trainer")
    engine = getattr(trainer, "_distributed", None)
    if engine is None or not engine.active or _depth[0]:
        # A nested save (a backup writing its weights) runs on rank 0 alone: no collectives.
        yield process_index() == 0
        return
    _depth[0] += 1
    try:
        with engine.full_weights(slots=slots):
            yield process_index() == 0
    finally:
        _depth[0] -= 1
    dist.barrier()


def chief_writes(save: Callable[..., None]) -> Callable[..., None]:
    """`save(model, ...)` run by rank 0 only, with whole weights (see `writing`)."""

    @functools.wraps(save)
    def wrapper(model: Any, *args: Any, **kwargs: Any) -> None:
        with writing(model) as writer:
            if writer:
                save(model, *args, **kwargs)

    return wrapper


@contextlib.contextmanager
def restoring(model: Any) -> Iterator[None]:
    """Around a load on every process: a model already sharded (FSDP, ModelParallel) shows
    whole weights to the block, and what the block loaded into them is split back into the
    shards. A model not sharded yet loads as in one process."""
    trainer = getattr(model, "__dict__", {}).get("_lamina_trainer")
    engine = getattr(trainer, "_distributed", None)
    if engine is None or not engine.active:
        yield
        return
    with engine.full_weights(write_back=True):
        yield
