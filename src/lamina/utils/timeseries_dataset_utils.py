"""`timeseries_dataset_from_array`: sliding windows over a series, as `keras.utils` makes them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lamina.utils.dataset import Dataset, _as_leaf


def timeseries_dataset_from_array(
    data: Any,
    targets: Any,
    sequence_length: int,
    sequence_stride: int = 1,
    sampling_rate: int = 1,
    batch_size: int | None = 128,
    shuffle: bool = False,
    seed: int | None = None,
    start_index: int | None = None,
    end_index: int | None = None,
) -> Dataset:
    """A `Dataset` of windows `data[i : i + sequence_length * sampling_rate : sampling_rate]`.

    Windows start at `start_index + k * sequence_stride` (k = 0, 1, ...) for every start whose
    window fits before `end_index` (exclusive; default `len(data)`). The target of the window
    that starts at data row `s` is `targets[s]`: to predict the value `n` steps after a window,
    pass `targets=data[sequence_length + n - 1:]`-style shifted arrays, as in Keras. With
    `targets=None` elements are the windows alone. With `shuffle` the start positions are
    permuted once (NumPy's `RandomState(seed)`) and the windows shuffled again in a buffer of
    `batch_size * 8` each epoch; `batch_size=None` yields single windows.

    >>> ds = timeseries_dataset_from_array(np.arange(10), None, sequence_length=3, batch_size=2)
    >>> next(iter(ds)).tolist()
    [[0, 1, 2], [1, 2, 3]]
    """
    length = len(data)
    sequence_length = _positive_int(sequence_length, "sequence_length")
    sampling_rate = _positive_int(sampling_rate, "sampling_rate")
    sequence_stride = _positive_int(sequence_stride, "sequence_stride")
    if batch_size is not None:
        batch_size = _positive_int(batch_size, "batch_size")
    # Keras's checks, kept with its truthiness: start_index=0 and end_index=None mean "no bound".
    if start_index and not 0 <= start_index < length:
        raise ValueError(
            f"`start_index` must be in [0, {length}) for data of length {length}. "
            f"Received: start_index={start_index}."
        )
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError(
                "`end_index` must be greater than `start_index`. Received: "
                f"start_index={start_index}, end_index={end_index}."
            )
        if not 0 < end_index < length:
            raise ValueError(
                f"`end_index` must be in (0, {length}) for data of length {length} (it is "
                f"exclusive; leave it None to use all the data). Received: end_index={end_index}."
            )
    if sampling_rate >= length:
        raise ValueError(
            f"`sampling_rate` must be lower than the length of the data ({length}). "
            f"Received: sampling_rate={sampling_rate}."
        )
    if sequence_stride >= length:
        raise ValueError(
            f"`sequence_stride` must be lower than the length of the data ({length}). "
            f"Received: sequence_stride={sequence_stride}."
        )
    start = start_index or 0
    stop = length if end_index is None else end_index

    series = _as_leaf(data if isinstance(data, torch.Tensor) else np.asarray(data))[start:stop]
    labels = None
    num_windows = stop - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        labels = _as_leaf(targets if isinstance(targets, torch.Tensor) else np.asarray(targets))
        labels = labels[start:stop]
        num_windows = min(num_windows, len(targets))

    starts = np.arange(0, max(num_windows, 0), sequence_stride, dtype=np.int64)
    if labels is not None and starts.size and starts[-1] >= len(labels):
        raise ValueError(
            f"`targets` has {len(targets)} entries, too few for start_index={start}: the window "
            f"starting at data row {start + int(starts[-1])} needs targets[{start + int(starts[-1])}]. "
            "Pass one target per data row."
        )
    if shuffle:
        if seed is None:
            seed = int(np.random.randint(1_000_000))
        np.random.RandomState(seed).shuffle(starts)
    offsets = torch.arange(0, sequence_length * sampling_rate, sampling_rate)

    def windows(positions: torch.Tensor) -> Any:
        # (batch, sequence_length) row indices gathered in one indexing call.
        rows = series[positions.unsqueeze(-1) + offsets]
        return rows if labels is None else (rows, labels[positions])

    dataset = Dataset.from_tensor_slices(starts)
    if shuffle:
        dataset = dataset.shuffle(1024 if batch_size is None else batch_size * 8, seed=seed)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset.map(windows)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}.")
    return int(value)
