"""Prioritised sampling: the distribution it promises, and never a record of probability 0."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.core import priorities as P


def _ring_with_zero_runs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Priorities and eligibility of a 16 x 6,250 ring as a fast Atari run leaves it: an
    unfilled tail in every env, and short runs of ineligible steps (cut episodes' tails)."""
    rng = np.random.default_rng(seed)
    eligible = np.ones((16, 6250), bool)
    eligible[:, 6000:] = False
    for env in range(16):
        for start in rng.integers(0, 6000, 30):
            eligible[env, start : start + 5] = False
    return rng.gamma(1.0, 1.0, eligible.shape).astype(np.float32), eligible


def test_millions_of_draws_never_land_on_a_zero_probability_record():
    """8.2 M draws (a fast Atari run's worth); inverse-CDF sampling over the raw float32
    cumulative sum (``jax.random.choice``) drew 8 ineligible records from this very ring."""
    priorities, eligible = _ring_with_zero_runs()
    probs, count = P.probabilities(priorities, eligible, 1.0)

    @jax.jit
    def ineligible_draws(key, probs, eligible):
        index, weights = P.sample(key, probs, count, 65_536, beta=1.0)
        return (~eligible[index]).sum(), jnp.isfinite(weights).all()

    flat = jnp.asarray(eligible.ravel())
    for i in range(125):
        bad, finite = ineligible_draws(jax.random.PRNGKey(i), probs, flat)
        assert int(bad) == 0 and bool(finite), f"draw batch {i}"


def test_draw_frequencies_follow_the_probabilities_and_weights_are_exact():
    priorities = np.array([0.0, 4.0, 0.0, 0.0, 1.0, 3.0, 0.0], np.float32)
    eligible = np.array([True, True, False, True, True, True, False])
    probs, count = P.probabilities(priorities, eligible, 1.0)
    # Record 0 is eligible with priority 0: probability 0, never drawn. N counts it.
    np.testing.assert_allclose(probs, [0, 0.5, 0, 0, 0.125, 0.375, 0], rtol=1e-6)
    assert int(count) == 5
    index, weights = jax.jit(P.sample, static_argnums=3)(
        jax.random.PRNGKey(0), probs, count, 200_000, beta=0.5
    )
    freq = np.bincount(np.asarray(index), minlength=7) / 200_000
    np.testing.assert_allclose(freq, probs, atol=0.004)
    # w_i = (N P_i)^-beta / max w: the rarest drawn record (P = 1/8) has weight 1.
    expected = (5 * np.asarray(probs)[np.asarray(index)]) ** -0.5 / (5 * 0.125) ** -0.5
    np.testing.assert_allclose(weights, expected, rtol=1e-5)


@pytest.mark.parametrize("last", [True, False])
def test_a_draw_at_the_very_top_falls_on_the_last_positive_record(last, monkeypatch):
    probs = jnp.array([0.25, 0.75, 0.0, 0.0]) if not last else jnp.array([0.25, 0.0, 0.75])
    monkeypatch.setattr(
        jax.random, "uniform", lambda key, shape, maxval: jnp.full(shape, maxval)
    )  # a draw that rounded up to the total
    index, weights = P.sample(jax.random.PRNGKey(0), probs, 2, 3, beta=1.0)
    np.testing.assert_array_equal(index, [1, 1, 1] if not last else [2, 2, 2])
    assert np.isfinite(np.asarray(weights)).all()
