"""Targets against hand-computed cases and a plain-Python reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.efficientzero import targets as T


def reference_value(rewards, values_at, k, td, last, terminal, gamma):
    """Plain-Python n-step target at unroll step k (values_at(b) = bootstrap value at b)."""
    if terminal and k > last:
        return 0.0
    z, i = 0.0, k
    while i < k + td:
        if terminal and i > last:
            return z  # absorbing: no more reward, no bootstrap
        if not terminal and i == last:
            break  # newest stored observation of a cut/ongoing episode: bootstrap there
        z += gamma ** (i - k) * rewards[i]
        i += 1
    if terminal and i > last:
        return z
    return z + gamma ** (i - k) * values_at(i)


@pytest.mark.parametrize("jit", [False, True])
def test_n_step_values_match_plain_python(jit):
    rng = np.random.default_rng(0)
    B, K, n, gamma = 64, 5, 5, 0.9
    rewards = rng.normal(size=(B, K + n)).astype(np.float32)
    last = rng.integers(0, K + n + 3, size=B).astype(np.int32)
    terminal = rng.random(B) < 0.5
    last = np.where(terminal, last, np.maximum(last, K))  # ongoing data covers the unroll
    rewards = np.where(np.arange(K + n)[None] <= last[:, None], rewards, 0.0).astype(np.float32)
    td = rng.integers(1, n + 1, size=B).astype(np.int32)
    table = rng.normal(size=(B, K + n + 1)).astype(np.float32)  # value of o_{t+i}

    def compute(rewards, last, terminal, td, table):
        b, boot = T.bootstrap_offsets(last, terminal, td, K)
        v = jnp.take_along_axis(table, jnp.minimum(b, K + n), axis=1)
        return T.n_step_values(rewards, v, b, boot, gamma)

    fn = jax.jit(compute) if jit else compute
    got = np.asarray(fn(rewards, last, terminal, td, table))
    for i in range(B):
        for k in range(K + 1):
            want = reference_value(
                rewards[i], table[i].__getitem__, k, td[i], last[i], terminal[i], gamma
            )
            assert got[i, k] == pytest.approx(want, abs=1e-4), (i, k)


def test_n_step_hand_computed():
    # rewards 1, 2, 3, 4 ...; horizon 2, gamma 0.5, episode ends (terminal) after step 2.
    rewards = jnp.array([[1.0, 2.0, 3.0, 0.0, 0.0, 0.0]])
    b, boot = T.bootstrap_offsets(jnp.array([2]), jnp.array([True]), jnp.array([2]), 3)
    np.testing.assert_array_equal(b, [[2, 3, 3, 3]])
    np.testing.assert_array_equal(boot, [[True, False, False, False]])
    v = jnp.full((1, 4), 10.0)
    z = T.n_step_values(rewards, v, b, boot, 0.5)
    # k=0: 1 + 0.5*2 + 0.25*10; k=1: 2 + 0.5*3; k=2: 3; k=3: 0 (absorbing).
    np.testing.assert_allclose(z, [[4.5, 3.5, 3.0, 0.0]])


def test_value_prefix_targets_reset_every_horizon():
    rewards = jnp.array([[1.0, 2.0, 3.0, 4.0, 5.0, 0.0]])
    np.testing.assert_allclose(T.value_prefix_targets(rewards, 5, 5), [[1, 3, 6, 10, 15]])
    np.testing.assert_allclose(T.value_prefix_targets(rewards, 5, 2), [[1, 3, 3, 7, 5]])


def test_step_masks():
    mask = T.step_masks(jnp.array([1, 1]), jnp.array([True, False]), 3)
    np.testing.assert_array_equal(mask, [[True, True, False, False], [True] * 4])


def test_stack_at_builds_frame_stacks():
    frames = jnp.arange(2 * 6).reshape(2, 6, 1)  # [B, W, frame]
    out = T.stack_at(frames, jnp.array([0, 2]), 3)
    np.testing.assert_array_equal(out[..., 0], [[0, 1, 2], [8, 9, 10]])
    multi = T.stack_at(frames, jnp.array([[0, 1], [2, 3]]), 3)
    assert multi.shape == (4, 3, 1)
    np.testing.assert_array_equal(multi[3, :, 0], [9, 10, 11])
    flat = T.stack_at(frames, jnp.array([4, 5]), 1)
    np.testing.assert_array_equal(flat[:, 0], [4, 11])
    pairs = T.stack_at(frames, jnp.array([1, 4]), 2)  # the smallest stack keeps its axis
    np.testing.assert_array_equal(pairs[..., 0], [[1, 2], [10, 11]])
