"""Keras's math ops (`keras.ops.math`): segment reductions, top-k, log-sum-exp, FFTs and
short-time Fourier transforms, special functions."""

from __future__ import annotations

from typing import Any

import torch

from lamina.ops._op import canonical_axis, floating, op, promote, public_names, to_tensor

Tensor = torch.Tensor


def _segment(data: Any, segment_ids: Any, num_segments: int | None, reduce: str) -> Tensor:
    data = to_tensor(data)
    ids = to_tensor(segment_ids, device=data.device).long()
    if num_segments is None:
        num_segments = int(ids.max()) + 1 if ids.numel() else 0
    # Rows with an id outside [0, num_segments) go to one extra segment, dropped at the end.
    shape = (num_segments + 1,) + tuple(data.shape[1:])
    ids = torch.where((ids >= 0) & (ids < num_segments), ids, num_segments)
    index = ids.reshape((-1,) + (1,) * (data.ndim - 1)).expand_as(data)
    if reduce == "sum":
        out = torch.zeros(shape, dtype=data.dtype, device=data.device)
        return out.scatter_add(0, index, data)[:-1]
    initial = {"prod": 1, "amax": _lowest(data.dtype), "amin": _highest(data.dtype)}[reduce]
    out = torch.full(shape, initial, dtype=data.dtype, device=data.device)
    return out.scatter_reduce(0, index, data, reduce=reduce, include_self=True)[:-1]


def _lowest(dtype: torch.dtype) -> Any:
    return -float("inf") if dtype.is_floating_point else torch.iinfo(dtype).min


def _highest(dtype: torch.dtype) -> Any:
    return float("inf") if dtype.is_floating_point else torch.iinfo(dtype).max


@op
def segment_sum(data: Any, segment_ids: Any, num_segments: int | None = None,
                sorted: bool = False) -> Tensor:
    """Sums of the rows of `data` sharing a segment id (ids outside [0, num_segments) dropped)."""
    return _segment(data, segment_ids, num_segments, "sum")


@op
def segment_prod(data: Any, segment_ids: Any, num_segments: int | None = None,
                 sorted: bool = False) -> Tensor:
    """Products of the rows of `data` sharing a segment id (1 for empty segments)."""
    return _segment(data, segment_ids, num_segments, "prod")


@op
def segment_max(data: Any, segment_ids: Any, num_segments: int | None = None,
                sorted: bool = False) -> Tensor:
    """Maxima of the rows sharing a segment id (the dtype's lowest value for empty segments)."""
    return _segment(data, segment_ids, num_segments, "amax")


@op
def segment_min(data: Any, segment_ids: Any, num_segments: int | None = None,
                sorted: bool = False) -> Tensor:
    """Minima of the rows sharing a segment id (the dtype's highest value for empty segments)."""
    return _segment(data, segment_ids, num_segments, "amin")


@op
def top_k(x: Any, k: int, sorted: bool = True) -> tuple[Tensor, Tensor]:
    """The `k` largest values along the last axis and their (int64) indices."""
    values, indices = torch.topk(to_tensor(x), k, dim=-1, sorted=True)
    return values, indices


@op
def in_top_k(targets: Any, predictions: Any, k: int) -> Tensor:
    """True where the target class is among the `k` highest predictions of its row (ties with
    the k-th value count as in)."""
    predictions = to_tensor(predictions)
    targets = to_tensor(targets, device=predictions.device).long()
    target_values = torch.gather(predictions, 1, targets[:, None])
    kth = torch.topk(predictions, k, dim=-1).values[:, -1:]
    return (target_values >= kth)[:, 0]


@op
def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """`log(sum(exp(x)))` over `axis`, stably."""
    x = floating(to_tensor(x))
    axis = canonical_axis(axis)
    dims = tuple(range(x.ndim)) if axis is None else axis
    return torch.logsumexp(x, dim=dims, keepdim=keepdims)


@op
def erf(x: Any) -> Tensor:
    """The error function."""
    return torch.erf(floating(to_tensor(x)))


@op
def erfc(x: Any) -> Tensor:
    """The complementary error function `1 - erf(x)`."""
    return torch.erfc(floating(to_tensor(x)))


@op
def erfinv(x: Any) -> Tensor:
    """The inverse error function."""
    return torch.erfinv(floating(to_tensor(x)))


@op
def rsqrt(x: Any) -> Tensor:
    """`1 / sqrt(x)`."""
    return torch.rsqrt(floating(to_tensor(x)))


@op
def logdet(x: Any) -> Tensor:
    """Natural log of the determinant of (batches of) square matrices."""
    return torch.logdet(floating(to_tensor(x)))


@op
def cdist(x: Any, y: Any) -> Tensor:
    """Euclidean distances between the rows of `x` and those of `y` (batched over leading axes)."""
    return torch.cdist(floating(to_tensor(x)), floating(to_tensor(y)))


def _complex_pair(x: Any) -> Tensor:
    real, imag = promote(*x)
    return torch.complex(floating(real), floating(imag))


def _split_complex(z: Tensor) -> tuple[Tensor, Tensor]:
    return z.real.contiguous(), z.imag.contiguous()


@op
def fft(x: Any) -> tuple[Tensor, Tensor]:
    """FFT along the last axis of a complex signal given as (real, imag); returns (real, imag)."""
    return _split_complex(torch.fft.fft(_complex_pair(x), dim=-1))


@op
def fft2(x: Any) -> tuple[Tensor, Tensor]:
    """2-D FFT over the last two axes of (real, imag); returns (real, imag)."""
    return _split_complex(torch.fft.fft2(_complex_pair(x), dim=(-2, -1)))


@op
def ifft2(x: Any) -> tuple[Tensor, Tensor]:
    """Inverse 2-D FFT over the last two axes of (real, imag); returns (real, imag)."""
    return _split_complex(torch.fft.ifft2(_complex_pair(x), dim=(-2, -1)))


@op
def rfft(x: Any, fft_length: int | None = None) -> tuple[Tensor, Tensor]:
    """FFT of a real signal along the last axis; returns (real, imag) of the non-negative
    frequencies."""
    return _split_complex(torch.fft.rfft(floating(to_tensor(x)), n=fft_length, dim=-1))


@op
def irfft(x: Any, fft_length: int | None = None) -> Tensor:
    """Inverse of `rfft`: a real signal from (real, imag) of the non-negative frequencies."""
    return torch.fft.irfft(_complex_pair(x), n=fft_length, dim=-1)


@op
def extract_sequences(x: Any, sequence_length: int, sequence_stride: int) -> Tensor:
    """Overlapping frames of the last axis: (..., num_frames, sequence_length)."""
    return to_tensor(x).unfold(-1, sequence_length, sequence_stride)


def _window(window: Any, length: int, fft_length: int, dtype: torch.dtype,
            device: torch.device) -> Tensor:
    """The analysis window (ones for None), centred in `fft_length` samples."""
    if window is None:
        win = torch.ones(length, dtype=dtype, device=device)
    elif isinstance(window, str):
        windows = {"hann": torch.hann_window, "hamming": torch.hamming_window}
        if window not in windows:
            raise ValueError(f"`window` must be 'hann', 'hamming', a tensor or None. Received: "
                             f"window={window!r}.")
        win = windows[window](length, periodic=True, dtype=dtype, device=device)
    else:
        win = to_tensor(window, dtype, device)
    if length < fft_length:
        left = (fft_length - length) // 2
        win = torch.nn.functional.pad(win, (left, fft_length - length - left))
    return win


@op
def stft(x: Any, sequence_length: int, sequence_stride: int, fft_length: int,
         window: Any = "hann", center: bool = True) -> tuple[Tensor, Tensor]:
    """Short-time Fourier transform of the last axis; returns (real, imag) of shape
    (..., frames, fft_length // 2 + 1)."""
    x = floating(to_tensor(x))
    win = _window(window, sequence_length, fft_length, x.dtype, x.device)
    batch_shape = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    spectrum = torch.stft(flat, fft_length, hop_length=sequence_stride, win_length=fft_length,
                          window=win, center=center, pad_mode="reflect", return_complex=True)
    spectrum = spectrum.transpose(-1, -2)
    spectrum = spectrum.reshape(batch_shape + spectrum.shape[-2:])
    return _split_complex(spectrum)


@op
def istft(x: Any, sequence_length: int, sequence_stride: int, fft_length: int,
          length: int | None = None, window: Any = "hann", center: bool = True) -> Tensor:
    """Inverse of `stft` (overlap-add with window normalization)."""
    spectrum = _complex_pair(x)
    win = _window(window, sequence_length, fft_length, spectrum.real.dtype, spectrum.device)
    batch_shape = spectrum.shape[:-2]
    flat = spectrum.reshape((-1,) + spectrum.shape[-2:]).transpose(-1, -2)
    signal = torch.istft(flat, fft_length, hop_length=sequence_stride, win_length=fft_length,
                         window=win, center=center, length=length)
    return signal.reshape(batch_shape + signal.shape[-1:])


@op
def view_as_complex(x: Any) -> Tensor:
    """A complex tensor from a real one whose last axis (size 2) holds (real, imag)."""
    return torch.view_as_complex(floating(to_tensor(x)).contiguous())


@op
def view_as_real(x: Any) -> Tensor:
    """A real tensor with a last axis (real, imag) from a complex one."""
    return torch.view_as_real(to_tensor(x))


__all__ = public_names(globals(), __name__)
