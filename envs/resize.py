"""Area-average image resizing in pure numpy (what OpenCV calls ``INTER_AREA``).

Each output pixel is the average of the input pixels its footprint covers, with partially
covered pixels weighted by the covered fraction. The weights are separable (rows, then
columns) and periodic: with ``g = gcd(n_in, n_out)`` the ``[n_out, n_in]`` weight matrix is
block-diagonal with ``g`` copies of one ``[n_out / g, n_in / g]`` block. For Atari's
``210 x 160 -> 96 x 96`` the blocks are ``16 x 35`` (rows) and ``3 x 5`` (columns), so a
resize is two small matrix products: about 65 us for an RGB frame on one CPU core.
"""

from __future__ import annotations

import math

import numpy as np


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Returns the ``[n_out, n_in]`` area-averaging matrix; every row sums to one."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be positive, got n_in={n_in}, n_out={n_out}")
    # Work in units of 1 / n_out input pixels so that the footprints are exact integers.
    starts = np.arange(n_out)[:, None] * n_in  # [n_out, 1]
    pixels = np.arange(n_in)[None, :] * n_out  # [1, n_in]
    overlap = np.minimum(starts + n_in, pixels + n_out) - np.maximum(starts, pixels)
    weights = np.clip(overlap, 0, None).astype(np.float64)
    return weights / weights.sum(axis=1, keepdims=True)


class AreaResize:
    """Resizes ``[H, W, C]`` uint8 frames to ``[h, w, C]`` by area averaging.

    Construction precomputes the weight blocks and work buffers (fresh large temporaries
    would cost more in page faults than the arithmetic); a call is two matrix products on
    contiguous arrays and writes the rounded uint8 result into ``out``. Not thread-safe: use
    one instance per env.
    """

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int], channels: int):
        (in_h, in_w), (out_h, out_w) = in_hw, out_hw
        self.in_shape, self.out_shape = (in_h, in_w, channels), (out_h, out_w, channels)
        rb, cb = math.gcd(in_h, out_h), math.gcd(in_w, out_w)  # numbers of diagonal blocks
        rows = area_weights(in_h, out_h)[: out_h // rb, : in_h // rb]
        cols = area_weights(in_w, out_w)[: out_w // cb, : in_w // cb]
        self._row_kernel = rows.astype(np.float32)  # [out_h / rb, in_h / rb]
        # Acts on one column block of interleaved channels: [in_w / cb * C, out_w / cb * C].
        self._col_kernel = np.kron(cols.T, np.eye(channels)).astype(np.float32)
        self._pixels = np.zeros((rb, in_h // rb, in_w * channels), np.float32)
        self._rows = np.zeros((rb, out_h // rb, in_w * channels), np.float32)
        self._resized = np.zeros((out_h * cb, self._col_kernel.shape[1]), np.float32)

    def __call__(self, frame: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Resizes ``frame`` [H, W, C] (or [H, W] when C=1) into uint8 ``out`` [h, w, C]."""
        np.copyto(self._pixels.reshape(self.in_shape), frame.reshape(self.in_shape))
        np.matmul(self._row_kernel, self._pixels, out=self._rows)
        blocks = self._rows.reshape(self._resized.shape[0], self._col_kernel.shape[0])
        np.matmul(blocks, self._col_kernel, out=self._resized)
        # Weights are convex, so values stay in [0, 255]; +0.5 then truncation rounds.
        np.add(self._resized, 0.5, out=self._resized)
        np.copyto(out.reshape(self._resized.shape), self._resized, casting="unsafe")
        return out
