"""Image augmentation of the learner's inputs (EfficientZero, after SPR; pure, jittable).

EfficientZero augments the step-0 observation and the observations that give the
temporal-consistency targets, each batch with fresh randomness and each example with its own
draw, shared by every frame of that example's window:

- ``shift``: replicate-pad ``pad`` pixels on each side, then crop back to ``H x W`` at an
  offset drawn uniformly from ``{0, ..., 2 pad}`` per axis (kornia ``ReplicationPad2d`` +
  ``RandomCrop`` in the official code);
- ``intensity``: multiply by ``1 + scale * clip(z, -2, 2)``, ``z ~ N(0, 1)`` per example.

Frames come in as uint8 ``[B, T, H, W, C]`` and leave as float32 in (about) ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp


def random_shift(key: chex.PRNGKey, frames: chex.Array, pad: int) -> chex.Array:
    """``frames [B, T, H, W, C]`` shifted by up to ``pad`` pixels, one offset per example."""
    b, t, hh, ww, c = frames.shape
    padded = jnp.pad(frames, ((0, 0), (0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)

    def crop(window: chex.Array, offset: chex.Array) -> chex.Array:
        return jax.lax.dynamic_slice(window, (0, offset[0], offset[1], 0), (t, hh, ww, c))

    return jax.vmap(crop)(padded, offsets)


def intensity(key: chex.PRNGKey, frames: chex.Array, scale: float) -> chex.Array:
    """``frames [B, ...]`` times ``1 + scale * clip(N(0, 1), -2, 2)``, one factor per example."""
    z = jax.random.normal(key, (frames.shape[0],), jnp.float32)
    factor = 1.0 + scale * jnp.clip(z, -2.0, 2.0)
    return frames * factor.reshape((-1,) + (1,) * (frames.ndim - 1))


def augment(
    key: chex.PRNGKey,
    frames: chex.Array,
    names: Sequence[str],
    *,
    pad: int,
    scale: float,
) -> chex.Array:
    """Apply the augmentations ``names`` in order to uint8 ``frames [B, T, H, W, C]``."""
    chex.assert_rank(frames, 5)
    x = frames.astype(jnp.float32) / 255.0
    for name, sub in zip(names, jax.random.split(key, max(len(names), 1)), strict=False):
        if name == "shift":
            x = random_shift(sub, x, pad)
        elif name == "intensity":
            x = intensity(sub, x, scale)
        else:
            raise ValueError(f"unknown augmentation {name!r}")
    return x
