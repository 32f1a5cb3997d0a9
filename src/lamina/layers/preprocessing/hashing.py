"""Hashing: strings or integers -> bin indices by a stable hash, as Keras's `Hashing` layer.

The bins match Keras (TensorFlow) bit for bit: without a salt, FarmHash's `Fingerprint64`
(TensorFlow's `to_hash_bucket_fast`); with one, SipHash-2-4 keyed by the two salt words
(`to_hash_bucket_strong`). Neither is in the Python standard library and Keras needs TensorFlow
for this layer, so both are written here from their published reference algorithms.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from lamina._registry import register
from lamina.layers.layer import Layer
from lamina.layers.preprocessing.category_encoding import encode_categorical, encoded_shape
from lamina.layers.preprocessing.lookup import (
    _lookup_string_probes,
    forward_with_string_probes,
)

Tensor = torch.Tensor

_MASK = (1 << 64) - 1
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F


def _rotate(value: int, shift: int) -> int:
    # FarmHash rotates right.
    return ((value >> shift) | (value << (64 - shift))) & _MASK if shift else value


def _fetch64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 8], "little")


def _fetch32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "little")


def _shift_mix(value: int) -> int:
    return value ^ (value >> 47)


def _hash_len16(u: int, v: int, mul: int) -> int:
    a = _shift_mix(((u ^ v) * mul) & _MASK)
    b = _shift_mix(((v ^ a) * mul) & _MASK)
    return (b * mul) & _MASK


def _hash_len0to16(data: bytes) -> int:
    length = len(data)
    if length >= 8:
        mul = _K2 + length * 2
        a = (_fetch64(data, 0) + _K2) & _MASK
        b = _fetch64(data, length - 8)
        c = (_rotate(b, 37) * mul + a) & _MASK
        d = ((_rotate(a, 25) + b) * mul) & _MASK
        return _hash_len16(c, d, mul)
    if length >= 4:
        mul = _K2 + length * 2
        a = _fetch32(data, 0)
        return _hash_len16(length + (a << 3), _fetch32(data, length - 4), mul)
    if length > 0:
        y = (data[0] + (data[length >> 1] << 8)) & 0xFFFFFFFF
        z = (length + (data[length - 1] << 2)) & 0xFFFFFFFF
        return (_shift_mix(((y * _K2) ^ (z * _K0)) & _MASK) * _K2) & _MASK
    return _K2


def _hash_len17to32(data: bytes) -> int:
    length = len(data)
    mul = _K2 + length * 2
    a = (_fetch64(data, 0) * _K1) & _MASK
    b = _fetch64(data, 8)
    c = (_fetch64(data, length - 8) * mul) & _MASK
    d = (_fetch64(data, length - 16) * _K2) & _MASK
    return _hash_len16((_rotate((a + b) & _MASK, 43) + _rotate(c, 30) + d) & _MASK,
                       (a + _rotate((b + _K2) & _MASK, 18) + c) & _MASK, mul)


def _hash_len33to64(data: bytes) -> int:
    length = len(data)
    mul = _K2 + length * 2
    a = (_fetch64(data, 0) * _K2) & _MASK
    b = _fetch64(data, 8)
    c = (_fetch64(data, length - 8) * mul) & _MASK
    d = (_fetch64(data, length - 16) * _K2) & _MASK
    y = (_rotate((a + b) & _MASK, 43) + _rotate(c, 30) + d) & _MASK
    z = _hash_len16(y, (a + _rotate((b + _K2) & _MASK, 18) + c) & _MASK, mul)
    e = (_fetch64(data, 16) * mul) & _MASK
    f = _fetch64(data, 24)
    g = ((y + _fetch64(data, length - 32)) * mul) & _MASK
    h = ((z + _fetch64(data, length - 24)) * mul) & _MASK
    return _hash_len16((_rotate((e + f) & _MASK, 43) + _rotate(g, 30) + h) & _MASK,
                       (e + _rotate((f + a) & _MASK, 18) + g) & _MASK, mul)


def _weak_hash_len32_with_seeds(data: bytes, at: int, a: int, b: int) -> tuple[int, int]:
    w, x = _fetch64(data, at), _fetch64(data, at + 8)
    y, z = _fetch64(data, at + 16), _fetch64(data, at + 24)
    a = (a + w) & _MASK
    b = _rotate((b + a + z) & _MASK, 21)
    c = a
    a = (a + x + y) & _MASK
    b = (b + _rotate(a, 44)) & _MASK
    return (a + z) & _MASK, (b + c) & _MASK


def farmhash_fingerprint64(data: bytes) -> int:
    """FarmHash's `Fingerprint64` (farmhashna `Hash64`) of `data`, an unsigned 64-bit integer."""
    length = len(data)
    if length <= 16:
        return _hash_len0to16(data)
    if length <= 32:
        return _hash_len17to32(data)
    if length <= 64:
        return _hash_len33to64(data)
    seed = 81
    x = seed
    y = (seed * _K1 + 113) & _MASK
    z = (_shift_mix((y * _K2 + 113) & _MASK) * _K2) & _MASK
    v = (0, 0)
    w = (0, 0)
    x = (x * _K2 + _fetch64(data, 0)) & _MASK
    end = ((length - 1) // 64) * 64
    last64 = end + ((length - 1) & 63) - 63
    at = 0
    while True:
        x = (_rotate((x + y + v[0] + _fetch64(data, at + 8)) & _MASK, 37) * _K1) & _MASK
        y = (_rotate((y + v[1] + _fetch64(data, at + 48)) & _MASK, 42) * _K1) & _MASK
        x ^= w[1]
        y = (y + v[0] + _fetch64(data, at + 40)) & _MASK
        z = (_rotate((z + w[0]) & _MASK, 33) * _K1) & _MASK
        v = _weak_hash_len32_with_seeds(data, at, (v[1] * _K1) & _MASK, (x + w[0]) & _MASK)
        w = _weak_hash_len32_with_seeds(data, at + 32, (z + w[1]) & _MASK,
                                        (y + _fetch64(data, at + 16)) & _MASK)
        z, x = x, z
        at += 64
        if at == end:
            break
    mul = _K1 + ((z & 0xFF) << 1)
    at = last64
    w0 = (w[0] + ((length - 1) & 63)) & _MASK
    v0 = (v[0] + w0) & _MASK
    w0 = (w0 + v0) & _MASK
    v, w = (v0, v[1]), (w0, w[1])
    x = (_rotate((x + y + v[0] + _fetch64(data, at + 8)) & _MASK, 37) * mul) & _MASK
    y = (_rotate((y + v[1] + _fetch64(data, at + 48)) & _MASK, 42) * mul) & _MASK
    x ^= (w[1] * 9) & _MASK
    y = (y + v[0] * 9 + _fetch64(data, at + 40)) & _MASK
    z = (_rotate((z + w[0]) & _MASK, 33) * mul) & _MASK
    v = _weak_hash_len32_with_seeds(data, at, (v[1] * mul) & _MASK, (x + w[0]) & _MASK)
    w = _weak_hash_len32_with_seeds(data, at + 32, (z + w[1]) & _MASK,
                                    (y + _fetch64(data, at + 16)) & _MASK)
    z, x = x, z
    return _hash_len16(
        (_hash_len16(v[0], w[0], mul) + _shift_mix(y) * _K0 + z) & _MASK,
        (_hash_len16(v[1], w[1], mul) + x) & _MASK, mul)


def _sip_rounds(v0: int, v1: int, v2: int, v3: int, rounds: int) -> tuple[int, int, int, int]:
    for _ in range(rounds):
        v0 = (v0 + v1) & _MASK
        v1 = _rotate_left(v1, 13) ^ v0
        v0 = _rotate_left(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotate_left(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotate_left(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotate_left(v1, 17) ^ v2
        v2 = _rotate_left(v2, 32)
    return v0, v1, v2, v3


def _rotate_left(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (64 - shift))) & _MASK


def siphash24(key: tuple[int, int], data: bytes) -> int:
    """SipHash-2-4 of `data` keyed by two 64-bit words `(k0, k1)` (the 16-byte key read as two
    little-endian words), an unsigned 64-bit integer."""
    k0, k1 = key[0] & _MASK, key[1] & _MASK
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573
    length = len(data)
    full = length - length % 8
    for at in range(0, full, 8):
        m = _fetch64(data, at)
        v3 ^= m
        v0, v1, v2, v3 = _sip_rounds(v0, v1, v2, v3, 2)
        v0 ^= m
    # The last word: the remaining bytes, with the length's low byte on top.
    m = int.from_bytes(data[full:], "little") | ((length & 0xFF) << 56)
    v3 ^= m
    v0, v1, v2, v3 = _sip_rounds(v0, v1, v2, v3, 2)
    v0 ^= m
    v2 ^= 0xFF
    v0, v1, v2, v3 = _sip_rounds(v0, v1, v2, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count")


def _salt_pair(salt: Any) -> list[int] | None:
    if salt is None:
        return None
    if isinstance(salt, numbers.Integral) and not isinstance(salt, bool):
        salt = [salt, salt]
    if (isinstance(salt, (list, tuple)) and len(salt) == 2
            and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in salt)):
        return [int(salt[0]), int(salt[1])]
    raise ValueError(
        "The `salt` argument for `Hashing` can only be a tuple of size 2 integers, or a single "
        f"integer. Received: salt={salt!r}."
    )


@register("Hashing")
class Hashing(Layer):
    """Hashes strings or integers into `num_bins` bins, stable across runs and platforms.

    Without `salt` the hash is FarmHash64 (`Fingerprint64`); with it, SipHash-2-4 keyed by the
    salt. Integers hash their decimal text (`7` as `"7"`), floats are truncated to integers first,
    as Keras does, so the bins equal Keras's.

    Args:
        num_bins: the number of bins, the mask bin included when `mask_value` is set.
        mask_value: inputs equal to it go to bin 0 and the others to `[1, num_bins)`.
        salt: an integer, or a pair of them, that keys SipHash (one integer `s` means `[s, s]`).
        output_mode: 'int' (bin indices), 'one_hot', 'multi_hot' or 'count' (as
            CategoryEncoding, `num_bins` wide).
        sparse: must be False (torch sparse outputs are not produced here).

    Input shape: strings (lists, numpy arrays, `Input(dtype="string")`) or integers of any shape.
    Output shape: the same in 'int' mode (int64); else as CategoryEncoding with `num_bins`.

    >>> Hashing(num_bins=3)(["A", "B", "C", "D", "E"])
    tensor([1, 0, 1, 1, 2])
    """

    def __init__(self, num_bins: int, mask_value: Any = None, salt: Any = None,
                 output_mode: str = "int", sparse: bool = False, **kwargs: Any):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "int64" if output_mode == "int" else None
        super().__init__(**kwargs)
        if (num_bins is None or isinstance(num_bins, bool)
                or not isinstance(num_bins, numbers.Integral) or num_bins <= 0):
            raise ValueError(
                "The `num_bins` for `Hashing` cannot be `None` or non-positive values: it must "
                f"be an integer >= 1. Received: num_bins={num_bins!r}."
            )
        if output_mode not in OUTPUT_MODES:
            raise ValueError(
                "Invalid value for argument `output_mode`. Expected one of "
                f"{', '.join(repr(m) for m in OUTPUT_MODES)}. Received: output_mode={output_mode!r}."
            )
        if output_mode == "int" and self._dtype not in (torch.int32, torch.int64):
            raise ValueError(
                "When `output_mode=\"int\"`, `dtype` should be an integer type, 'int32' or "
                f"'int64'. Received: dtype={self.dtype!r}."
            )
        if sparse:
            raise ValueError(
                "`sparse=True` is not supported: torch sparse outputs are not produced here. "
                "Use the dense output."
            )
        self.num_bins = int(num_bins)
        self.mask_value = mask_value
        self.salt = _salt_pair(salt)
        self.output_mode = output_mode
        self.sparse = False
        # No weights; this buffer follows `.to(device)` so outputs land where the model is.
        self.register_buffer("_device_tracker", torch.empty(0), persistent=False)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return forward_with_string_probes(self, super().forward, args, kwargs,
                                          _lookup_string_probes)

    def _hash(self, text: str) -> int:
        data = text.encode("utf-8")
        if self.salt is None:
            return farmhash_fingerprint64(data)
        return siphash24((self.salt[0], self.salt[1]), data)

    def _bins(self, values: np.ndarray) -> np.ndarray:
        """Bin indices (int64) of an array of strings or integers."""
        bins = self.num_bins
        masked = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            masked = values == self.mask_value
        if values.dtype.kind == "f":
            values = values.astype(np.int64)
        # Categorical data repeats its values: hash each distinct one once.
        cache: dict[Any, int] = {}
        flat = []
        for value in values.ravel().tolist():
            bin_index = cache.get(value)
            if bin_index is None:
                text = (value if isinstance(value, str) else value.decode("utf-8")
                        if isinstance(value, bytes) else str(int(value)))
                bin_index = cache[value] = self._hash(text) % bins
            flat.append(bin_index)
        out = np.asarray(flat, dtype=np.int64).reshape(values.shape)
        if masked is not None:
            out = np.where(masked, 0, out + 1)
        return out

    def call(self, inputs):
        if isinstance(inputs, Tensor):
            if inputs.is_complex() or inputs.dtype == torch.bool:
                raise TypeError(
                    f"Layer {self.name!r} (Hashing) takes strings or numbers. Received a tensor "
                    f"of dtype {inputs.dtype}."
                )
            values = inputs.detach().cpu().numpy()
        else:
            values = np.asarray(inputs)
            if values.dtype.kind == "O" and values.size:
                bad = next((v for v in values.ravel().tolist()
                            if not isinstance(v, (str, bytes, numbers.Integral))), None)
                if bad is not None:
                    raise TypeError(
                        f"Layer {self.name!r} (Hashing) takes strings or integers of one shape. "
                        f"Received an element {bad!r} of type {type(bad).__name__}."
                    )
            elif values.dtype.kind not in "USiuf":
                raise TypeError(
                    f"Layer {self.name!r} (Hashing) takes strings or numbers. Received values "
                    f"of dtype {values.dtype}."
                )
        indices = torch.from_numpy(self._bins(values)).to(self._device_tracker.device)
        if self.output_mode == "int":
            return indices.to(self._dtype)
        return encode_categorical(indices, self.output_mode, self.num_bins, self._dtype)

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        return encoded_shape(input_shape, self.output_mode, self.num_bins)

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins, "mask_value": self.mask_value,
                "salt": self.salt, "output_mode": self.output_mode, "sparse": self.sparse}


__all__ = ["Hashing", "farmhash_fingerprint64", "siphash24"]
