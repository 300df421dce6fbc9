"""Proportional prioritised sampling (Schaul et al. 2016) as pure JAX functions.

    P(i) = p_i^alpha / sum_j p_j^alpha  over eligible records,    w_i = (N P(i))^-beta / max w

One implementation, used by the EfficientZero replay inside jit and by the DQN replay on the
host (``numpy`` inputs are accepted).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def probabilities(
    priorities: chex.Array, eligible: chex.Array, alpha: chex.Numeric
) -> tuple[chex.Array, chex.Array]:
    """Flat ``[R]`` sampling probabilities of ``priorities ** alpha`` over ``eligible`` records
    (0 elsewhere; ``alpha`` 0 is uniform) and the number of eligible records ``N``.

    At least one record must be eligible (otherwise the probabilities are NaN).
    """
    eligible = jnp.asarray(eligible).ravel()
    p = jnp.where(eligible, jnp.asarray(priorities, jnp.float32).ravel(), 1.0) ** alpha
    p = jnp.where(eligible, p, 0.0)
    return p / p.sum(), eligible.sum()


def sample(
    key: chex.PRNGKey,
    probs: chex.Array,
    count: chex.Numeric,
    batch_size: int,
    *,
    beta: chex.Numeric,
) -> tuple[chex.Array, chex.Array]:
    """``batch_size`` flat indices drawn from ``probs`` with replacement, and their importance
    weights ``(N P(i)) ** -beta`` normalised by the batch maximum ``[B]`` float32.

    A record of probability 0 is never drawn (its weight would be infinite). Inverse-CDF
    sampling on a float32 cumulative sum cannot promise that by itself: a parallel prefix sum
    is not exactly monotone, so a run of zero-probability records can hold values a hair above
    its predecessor and catch a draw. Here every zero-probability record takes the cumulative
    value of the last positive one before it, so it is never the first record above the draw,
    and a draw that rounds up to the total falls on the last positive record.
    """
    probs = jnp.asarray(probs)
    positive = probs > 0
    cdf = jax.lax.cummax(jnp.where(positive, jnp.cumsum(probs), -jnp.inf))
    u = jax.random.uniform(key, (batch_size,), maxval=cdf[-1])
    last_positive = probs.shape[0] - 1 - jnp.argmax(positive[::-1])
    index = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), last_positive)
    weights = (count * probs[index]) ** (-beta)
    return index.astype(jnp.int32), (weights / weights.max()).astype(jnp.float32)
