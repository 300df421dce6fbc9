"""Scalar <-> categorical support transforms (MuZero appendix F; EfficientZero).

Values and value prefixes are predicted as categorical distributions over the integers
``[-S, S]`` of the *transformed* scalar ``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x``.
``scalar_to_support`` projects ``h(x)`` onto the two neighbouring integers;
``support_to_scalar`` takes the expectation and applies ``h^-1``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

EPS = 0.001


def h(x: chex.Array, eps: float = EPS) -> chex.Array:
    """The invertible value transform h(x) = sign(x)(sqrt(|x|+1)-1) + eps x."""
    return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.0) - 1.0) + eps * x


def h_inv(y: chex.Array, eps: float = EPS) -> chex.Array:
    """Exact inverse of ``h`` (closed form of the quadratic)."""
    root = (jnp.sqrt(1.0 + 4.0 * eps * (jnp.abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)
    return jnp.sign(y) * (jnp.square(root) - 1.0)


def scalar_to_support(x: chex.Array, support: int) -> chex.Array:
    """``x[...]`` -> two-hot probabilities ``[..., 2 * support + 1]`` over h(x), clipped."""
    y = jnp.clip(h(x), -support, support)
    low = jnp.floor(y)
    frac = y - low
    idx = (low + support).astype(jnp.int32)
    size = 2 * support + 1
    probs = jax.nn.one_hot(idx, size) * (1.0 - frac)[..., None]
    # At the top bin frac is 0 and idx + 1 == size: one_hot gives that index a zero row.
    return probs + jax.nn.one_hot(idx + 1, size) * frac[..., None]


def support_to_scalar(logits: chex.Array, support: int) -> chex.Array:
    """``logits[..., 2 * support + 1]`` -> expected scalar ``h^-1(E[y])`` of shape ``[...]``."""
    chex.assert_axis_dimension(logits, -1, 2 * support + 1)
    probs = jax.nn.softmax(logits, axis=-1)
    bins = jnp.arange(-support, support + 1)  # the heads' logits are float32
    return h_inv(jnp.sum(probs * bins, axis=-1))
