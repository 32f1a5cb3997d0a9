"""`pad_sequences`, as in `keras.preprocessing.sequence` / `keras.utils.pad_sequences`."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def pad_sequences(
    sequences: Sequence[Any],
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pad (or truncate) variable-length sequences into one `(num_samples, maxlen, ...)` array.

    Args:
        sequences: a list of sequences (lists or arrays; each element may itself be an array of
            a fixed shape, which becomes the trailing shape of the result).
        maxlen: the output length; the longest sequence's length when None.
        dtype: dtype of the result; use `object` for variable-length strings.
        padding: 'pre' or 'post': pad before or after each sequence.
        truncating: 'pre' or 'post': drop values from the start or the end of sequences longer
            than `maxlen`.
        value: the padding value.

    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2)
    array([[2, 3],
           [0, 4]], dtype=int32)
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"`padding` must be 'pre' or 'post'. Received: padding={padding!r}.")
    if truncating not in ("pre", "post"):
        raise ValueError(
            f"`truncating` must be 'pre' or 'post'. Received: truncating={truncating!r}."
        )
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise ValueError(
            "`sequences` must be a list of sequences (e.g. the output of "
            f"Tokenizer.texts_to_sequences). Received: {type(sequences).__name__}."
        )
    if maxlen is not None and (
        isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0
    ):
        raise ValueError(f"`maxlen` must be a non-negative integer or None. Received: maxlen={maxlen!r}.")

    lengths = []
    sample_shape: tuple[int, ...] = ()
    found_sample_shape = False
    for position, sequence in enumerate(sequences):
        if isinstance(sequence, (str, bytes)) or not hasattr(sequence, "__len__"):
            raise ValueError(
                "`sequences` must be a list of sequences; the item at position "
                f"{position} is not one: {sequence!r}. Tokenize texts first "
                "(Tokenizer.texts_to_sequences)."
            )
        lengths.append(len(sequence))
        # The trailing shape comes from the first non-empty sequence; the rest must agree.
        if not found_sample_shape and len(sequence):
            sample_shape = np.asarray(sequence).shape[1:]
            found_sample_shape = True
    if maxlen is None:
        maxlen = max(lengths, default=0)

    is_text_dtype = np.dtype(dtype).kind in "USO"
    if isinstance(value, str) and not is_text_dtype:
        raise ValueError(
            f"`dtype` {dtype!r} cannot hold the string padding value {value!r}. "
            "Pass dtype=object for variable-length strings."
        )

    padded = np.full((len(lengths), maxlen) + sample_shape, value, dtype=dtype)
    if maxlen == 0:
        return padded
    for position, sequence in enumerate(sequences):
        if not len(sequence):
            continue
        kept = sequence[-maxlen:] if truncating == "pre" else sequence[:maxlen]
        kept = np.asarray(kept, dtype=dtype)
        if kept.shape[1:] != sample_shape:
            raise ValueError(
                f"The sequence at position {position} has elements of shape {kept.shape[1:]}, "
                f"but the first non-empty sequence has elements of shape {sample_shape}. All "
                "elements must share one shape."
            )
        if padding == "post":
            padded[position, : len(kept)] = kept
        else:
            padded[position, -len(kept) :] = kept
    return padded
