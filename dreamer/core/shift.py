"""Random shifts of image windows (DrQ, Kostrikov et al. 2021; EfficientZero after SPR).

Replicate-pad ``pad`` pixels on each side of every frame, then crop back to ``H x W`` at an
offset drawn uniformly from ``{0, ..., 2 pad}`` per axis: one offset per example, shared by
every frame of its window (kornia ``ReplicationPad2d`` + ``RandomCrop`` in EfficientZero's
code). The one implementation behind EfficientZero's and DQN's augmentation.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def random_shift(key: chex.PRNGKey, frames: chex.Array, pad: int) -> chex.Array:
    """``frames [B, T, H, W, C]`` shifted by up to ``pad`` pixels, one offset per example."""
    chex.assert_rank(frames, 5)
    b, t, hh, ww, c = frames.shape
    padded = jnp.pad(frames, ((0, 0), (0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)

    def crop(window: chex.Array, offset: chex.Array) -> chex.Array:
        return jax.lax.dynamic_slice(window, (0, offset[0], offset[1], 0), (t, hh, ww, c))

    return jax.vmap(crop)(padded, offsets)
