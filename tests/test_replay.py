import numpy as np
import pytest

from dreamer.config import ReplayConfig
from dreamer.replay import Replay

A = 3


def make(capacity=40, num_envs=2, stack=2, batch=16, k=2, n=2, **kw):
    cfg = ReplayConfig(capacity=capacity, batch_size=batch, unroll_steps=k, td_steps=n, **kw)
    return Replay(
        cfg,
        num_envs=num_envs,
        frame_shape=(1,),
        frame_dtype=np.float32,
        num_actions=A,
        frame_stack=stack,
    )


def step(replay, t, terminated=(False, False), truncated=(False, False)):
    """Frame value encodes (env, t): env * 1000 + t; reward = t."""
    e = np.arange(replay.num_envs)
    obs = np.stack([np.full((replay.frame_stack, 1), 1000 * i + t) for i in e]).astype(np.float32)
    replay.add(
        obs,
        np.full(len(e), t % A),
        np.full(len(e), float(t)),
        np.array(terminated),
        np.array(truncated),
        np.full((len(e), A), 1 / A),
    )


def test_frames_are_stored_once_and_memory_is_flat():
    replay = make()
    assert replay.frames.shape == (2, 20, 1)  # newest frame only, one ring per env
    nbytes = sum(v.nbytes for v in replay.state().values())
    for t in range(100):
        step(replay, t)
    assert sum(v.nbytes for v in replay.state().values()) == nbytes
    assert replay.size == 40 and replay.total_added == 200


def test_window_padding_and_targets_inputs():
    replay = make(batch=64)
    for t in range(6):
        step(replay, t, terminated=(t == 3, False))
    batch, (env, pos) = replay.sample(np.random.default_rng(0), beta=0.4)
    for i in range(64):
        t = replay.step_id[env[i], pos[i]]
        base = 1000 * env[i]
        if env[i] == 0 and t <= 3:  # episode 0..3, terminal after step 3
            frames = [base + min(max(u, 0), 3) for u in range(t - 1, t + 5)]
            np.testing.assert_array_equal(batch.frames[i, :, 0], frames)
            assert batch.terminal[i] and batch.last_offset[i] == 3 - t
            np.testing.assert_array_equal(
                batch.rewards[i], [u if u <= 3 else 0.0 for u in range(t, t + 4)]
            )
            np.testing.assert_allclose(
                batch.policies[i, :, 0], [1 / A if t + k <= 3 else 0.0 for k in range(3)]
            )
        elif env[i] == 0:  # second episode starts at 4: frames before it repeat frame 4
            assert batch.frames[i, 0, 0] == base + max(t - 1, 4)
        else:  # ongoing: the unroll (K=2) must lie inside stored data
            assert t + 2 <= 5 and not batch.terminal[i]
            assert batch.last_offset[i] == 5 - t


def test_truncation_bootstraps_and_end_all_episodes():
    replay = make()
    for t in range(4):
        step(replay, t, truncated=(t == 3, False))
    replay.end_all_episodes()
    assert (replay.episode_end[:, :4] == 3).all() and not replay.terminal.any()
    batch, (env, pos) = replay.sample(np.random.default_rng(1), beta=1.0)
    assert not batch.terminal.any()
    assert (replay.step_id[env, pos] <= 1).all()  # t + K <= last for cut episodes


def test_priorities_drive_sampling_and_weights():
    replay = make(batch=4000, priority_alpha=1.0)
    for t in range(10):
        step(replay, t)
    # 16 eligible starts (t <= 7 in each env, K = 2); one gets 15x the priority of the rest.
    replay.update_priorities((np.array([0]), np.array([2])), np.array([15.0]))
    batch, (env, pos) = replay.sample(np.random.default_rng(0), beta=1.0)
    assert set(replay.step_id[env, pos]) == set(range(8))
    hot = (env == 0) & (pos == 2)
    assert hot.mean() == pytest.approx(0.5, abs=0.03)
    assert batch.weights.max() == pytest.approx(1.0)
    np.testing.assert_allclose(batch.weights[hot], 1 / 15, rtol=1e-5)


def test_off_policy_correction_shortens_old_horizons():
    replay = make(capacity=400, num_envs=1, n=5, batch=256)
    for t in range(100):
        step(replay, t)
    batch, (env, pos) = replay.sample(np.random.default_rng(0), beta=1.0, age_unit=20)
    age = replay.total_added - replay.inserted_at[env, pos]
    np.testing.assert_array_equal(batch.td_steps, np.clip(5 - age // 20, 1, 5))


def test_state_round_trip():
    a, b = make(), make()
    for t in range(7):
        step(a, t, terminated=(t == 4, False))
    b.load_state(a.state())
    ra, _ = a.sample(np.random.default_rng(3), beta=0.5)
    rb, _ = b.sample(np.random.default_rng(3), beta=0.5)
    np.testing.assert_array_equal(ra.frames, rb.frames)
    with pytest.raises(ValueError, match="shape"):
        make(capacity=80).load_state(a.state())
