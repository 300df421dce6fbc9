"""The device replay: storage, eligibility, windows and padding, priorities, off-policy horizon.

Expected values are written out by hand from the step encoding below, not from the code.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.efficientzero.config import ConfigError, ReplayConfig
from dreamer.agents.efficientzero.replay import Replay

A = 3


def make(capacity=40, num_envs=2, stack=2, batch=16, k=2, n=2, age_unit=0.0, **kw):
    cfg = ReplayConfig(capacity=capacity, batch_size=batch, unroll_steps=k, td_steps=n, **kw)
    replay = Replay(
        cfg,
        num_envs=num_envs,
        frame_shape=(1,),
        frame_dtype=np.float32,
        num_actions=A,
        frame_stack=stack,
        age_unit=age_unit,
    )
    return replay, replay.init()


def step(replay, state, t, terminated=None, truncated=None):
    """Frame value encodes (env, t): env * 1000 + t; reward = t; action = t % A; the stored
    policy is uniform and the stored value is t / 10."""
    e = np.arange(replay.num_envs)
    none = np.zeros(len(e), bool)
    frame = 1000 * e + t
    obs = np.repeat(frame[:, None, None], replay.frame_stack, axis=1).astype(np.float32)
    if replay.frame_stack == 1:
        obs = obs[:, 0]
    return replay.add(
        state,
        obs,
        np.full(len(e), t % A),
        np.full(len(e), float(t)),
        none if terminated is None else np.array(terminated),
        none if truncated is None else np.array(truncated),
        np.full((len(e), A), 1 / A),
        np.full(len(e), t / 10),
    )


def sample(replay, state, seed=0, beta=0.4):
    batch, (env, pos) = jax.jit(replay.sample)(state, jax.random.PRNGKey(seed), beta=beta)
    batch = jax.tree.map(np.asarray, batch)
    return batch, np.asarray(env), np.asarray(pos)


def test_frames_are_stored_once_and_memory_is_flat():
    replay, state = make()
    assert state.frames.shape == (2, 20, 1)  # newest frame only, one ring per env
    nbytes = sum(v.nbytes for v in jax.tree.leaves(state))
    for t in range(100):
        state = step(replay, state, t)
    assert sum(v.nbytes for v in jax.tree.leaves(state)) == nbytes
    assert int(replay.size(state)) == 40 and int(state.total_added) == 200


def test_capacity_too_small_for_a_sequence_names_the_minimum():
    with pytest.raises(ConfigError, match="at least 16"):
        make(capacity=10, num_envs=2, stack=2, k=2, n=3)


def test_window_padding_and_targets_inputs():
    replay, state = make(batch=256)
    for t in range(7):
        state = step(replay, state, t, terminated=(t == 3, False))
    batch, env, pos = sample(replay, state)
    step_id = np.asarray(state.step_id)
    for i in range(256):
        t = step_id[env[i], pos[i]]
        base = 1000 * env[i]
        if env[i] == 0 and t <= 3:  # episode 0..3, terminal after step 3
            frames = [base + min(max(u, 0), 3) for u in range(t - 1, t + 5)]
            np.testing.assert_array_equal(batch.frames[i, :, 0], frames)
            assert batch.terminal[i] and batch.last_offset[i] == 3 - t
            np.testing.assert_array_equal(
                batch.rewards[i], [u if u <= 3 else 0.0 for u in range(t, t + 4)]
            )
            inside = [1 / A if t + k <= 3 else 0.0 for k in range(3)]
            np.testing.assert_allclose(batch.policies[i, :, 0], inside)
            np.testing.assert_allclose(batch.reanalysed[i, :, 0], inside)
            np.testing.assert_allclose(batch.values[i], [min(u, 3) / 10 for u in range(t, t + 5)])
        elif env[i] == 0:  # the second episode starts at 4: earlier frames repeat frame 4
            assert t == 4  # 5 and 6 are not eligible: their K = 2 steps are not stored yet
            expected = [base + u for u in (4, 4, 5, 6, 6, 6)]
            np.testing.assert_array_equal(batch.frames[i, :, 0], expected)
            assert not batch.terminal[i] and batch.last_offset[i] == 2
        else:  # ongoing: the unroll (K=2) must lie inside stored data
            assert t + 2 <= 6 and not batch.terminal[i]
            assert batch.last_offset[i] == 6 - t
    assert set(step_id[env, pos]) == {0, 1, 2, 3, 4}  # every eligible start was drawn


def test_padding_at_the_start_of_a_later_episode_uses_that_episodes_first_frame():
    replay, state = make(capacity=400, num_envs=1, stack=4, k=1, n=1, batch=512)
    for t in range(12):
        state = step(replay, state, t, terminated=(t == 4,))
    batch, env, pos = sample(replay, state)
    t = np.asarray(state.step_id)[env, pos]
    later = t == 6  # the episode 5..11 started at 5: frames 3, 4 must not appear
    assert later.any()
    np.testing.assert_array_equal(batch.frames[later][0, :, 0], [5, 5, 5, 6, 7, 8])
    first = t == 1
    np.testing.assert_array_equal(batch.frames[first][0, :, 0], [0, 0, 0, 1, 2, 3])


def test_truncation_bootstraps_and_end_episodes():
    replay, state = make()
    for t in range(4):
        state = step(replay, state, t, truncated=(t == 3, False))
    state = jax.jit(replay.end_episodes)(state)
    done = np.asarray(state.done)
    assert done[0, 3] and done[1, 3] and not np.asarray(state.terminal).any()
    batch, env, pos = sample(replay, state, seed=1, beta=1.0)
    assert not batch.terminal.any()
    assert (np.asarray(state.step_id)[env, pos] <= 1).all()  # t + K <= last for cut episodes
    np.testing.assert_array_equal(batch.last_offset, 3 - np.asarray(state.step_id)[env, pos])


def test_sampling_after_the_ring_wraps_reads_only_live_steps():
    replay, state = make(capacity=20, num_envs=1, stack=2, k=2, n=2, batch=512)
    for t in range(33):  # 20 slots hold steps 13..32
        state = step(replay, state, t)
    batch, env, pos = sample(replay, state)
    t = np.asarray(state.step_id)[env, pos]
    assert set(t) == set(range(13, 31))  # 31, 32: their K steps are not stored yet
    oldest = t == 13  # the frame before 13 was overwritten: padding repeats 13
    np.testing.assert_array_equal(batch.frames[oldest][0, :, 0], [13, 13, 14, 15, 16, 17])
    newest = t == 30
    np.testing.assert_array_equal(batch.frames[newest][0, :, 0], [29, 30, 31, 32, 32, 32])
    assert batch.last_offset[newest][0] == 2


def test_priority_exponent_and_importance_weights():
    alpha = 0.5
    replay, state = make(batch=20000, priority_alpha=alpha)
    for t in range(10):
        state = step(replay, state, t)
    # 16 eligible starts (t <= 7 in each env, K = 2); one gets priority 9, the others 1.
    state = replay.set_priorities(state, (jnp.array([0]), jnp.array([2])), jnp.array([9.0]))
    hot_p = 9**alpha / (9**alpha + 15)  # = 3 / 18
    batch, env, pos = sample(replay, state, beta=1.0)
    hot = (env == 0) & (pos == 2)
    assert hot.mean() == pytest.approx(hot_p, abs=0.01)
    # w = (N P)^-1 normalised by the largest (the priority-1 records): 1/3 for the hot one
    np.testing.assert_allclose(batch.weights[hot], 1 / 3, rtol=1e-5)
    np.testing.assert_allclose(batch.weights[~hot], 1.0, rtol=1e-5)


def test_new_steps_enter_at_the_largest_priority_in_the_replay():
    replay, state = make()
    assert float(replay.max_priority(state)) == 1.0  # empty
    for t in range(4):
        state = step(replay, state, t)
    assert float(replay.max_priority(state)) == 1.0
    state = replay.set_priorities(
        state, (jnp.array([0, 1]), jnp.array([0, 1])), jnp.array([5.0, 0.5])
    )
    state = step(replay, state, 4)
    np.testing.assert_array_equal(np.asarray(state.priorities)[:, 4], [5.0, 5.0])
    # The maximum is the replay's current one (EfficientZero), not an all-time one: once the
    # 5s are lowered, new steps enter at the largest priority left.
    everything = (jnp.repeat(jnp.arange(2), 5), jnp.tile(jnp.arange(5), 2))
    lowered = jnp.array([0.1, 0.2, 0.3, 0.4, 0.7, 0.1, 0.2, 0.3, 0.4, 0.5])
    state = replay.set_priorities(state, everything, lowered)
    state = step(replay, state, 5)
    np.testing.assert_allclose(np.asarray(state.priorities)[:, 5], [0.7, 0.7])


def test_off_policy_correction_against_a_hand_made_table():
    # Two envs, so transition counts advance by 2 per step. 30 steps -> 60 transitions; a
    # record added at step t of env e has inserted_at = 2 t + e and age = 60 - (2 t + e).
    replay, state = make(capacity=400, num_envs=2, n=5, batch=2048, age_unit=10)
    for t in range(30):
        state = step(replay, state, t)
    batch, env, pos = sample(replay, state)
    t = np.asarray(state.step_id)[env, pos]
    table = {  # (t, env) -> td: 5 - age // 10, at least 1
        (0, 0): 1,
        (0, 1): 1,
        (5, 0): 1,
        (5, 1): 1,
        (10, 0): 1,
        (20, 0): 3,
        (20, 1): 4,
        (25, 0): 4,
        (25, 1): 5,
        (27, 1): 5,
        (15, 1): 3,
        (15, 0): 2,
    }
    for (ti, ei), td in table.items():
        hits = (t == ti) & (env == ei)
        assert hits.any()
        assert (batch.td_steps[hits] == td).all(), (ti, ei)
    replay_off, state_off = make(capacity=400, num_envs=2, n=5, batch=64)
    for t in range(30):
        state_off = step(replay_off, state_off, t)
    assert (sample(replay_off, state_off)[0].td_steps == 5).all()


def test_observations_rebuild_stacks_for_the_target_cache():
    replay, state = make(capacity=400, num_envs=1, stack=3)
    for t in range(6):
        state = step(replay, state, t, terminated=(t == 2,))
    obs = np.asarray(replay.observations(state, jnp.zeros(4, int), jnp.array([0, 2, 3, 5])))
    np.testing.assert_array_equal(obs[..., 0], [[0, 0, 0], [0, 1, 2], [3, 3, 3], [3, 4, 5]])


def test_state_is_a_pytree_that_round_trips_through_host_arrays():
    replay, state = make()
    for t in range(7):
        state = step(replay, state, t, terminated=(t == 4, False))
    host = jax.device_get(state)
    again = jax.device_put(host)
    replay.check_restored(again)
    a, _, _ = sample(replay, state, seed=3)
    b, _, _ = sample(replay, again, seed=3)
    np.testing.assert_array_equal(a.frames, b.frames)
    bigger, _ = make(capacity=80)
    with pytest.raises(ConfigError, match="shape"):
        bigger.check_restored(state)
