"""Keras's `keras.distribution` API, run by torch.distributed (DDP and FSDP2).

```python
import lamina as keras
keras.distribution.set_distribution(keras.distribution.DataParallel())
model = build_model(); model.compile(...); model.fit(x, y, batch_size=64)
```
Started with `torchrun --nproc-per-node N train.py` it trains on N processes (`batch_size` is
the global batch, split over them); started with plain `python` the same script runs in one
process. See docs/distributed.md.
"""

from lamina.distribution.distribution_lib import (
    FSDP,
    DataParallel,
    DeviceMesh,
    Distribution,
    LayoutMap,
    ModelParallel,
    TensorLayout,
    distribution,
    initialize,
    is_chief,
    list_devices,
    process_count,
    process_index,
    set_distribution,
)

__all__ = [
    "DataParallel", "DeviceMesh", "Distribution", "FSDP", "LayoutMap", "ModelParallel",
    "TensorLayout", "distribution", "initialize", "is_chief", "list_devices", "process_count",
    "process_index", "set_distribution",
]
