"""Session-wide test settings."""

from __future__ import annotations

import torch

# The tests use tiny tensors: intra-op threads only add spin-waiting, and under `pytest -n 2` on
# two cores each worker's threads would fight the other worker's.
torch.set_num_threads(1)
