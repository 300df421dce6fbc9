"""Image augmentation of the learner's inputs (EfficientZero, after SPR; pure, jittable).

EfficientZero augments the step-0 observation and the observations that give the
temporal-consistency targets, each batch with fresh randomness and each example with its own
draw, shared by every frame of that example's window:

- ``shift``: ``dreamer.core.shift.random_shift`` (replicate-pad ``pad`` pixels on each side,
  then crop back to ``H x W`` at an offset drawn uniformly from ``{0, ..., 2 pad}`` per axis);
- ``intensity``: multiply by ``1 + scale * clip(z, -2, 2)``, ``z ~ N(0, 1)`` per example.

Frames come in as uint8 ``[B, T, H, W, C]`` and leave as float32 in (about) ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp

from dreamer.core.shift import random_shift


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
