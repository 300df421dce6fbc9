"""The Atari-100k protocol on real ROMs (Pong, Breakout, Space Invaders); a few seconds."""

import dataclasses

import gymnasium
import numpy as np
import pytest

import envs
from envs.resize import AreaResize

PONG = "ALE/Pong-v5"


def _play(env, actions):
    """Steps ``env`` through ``actions`` lazily, yielding the step tuples."""
    return (env.step(action) for action in actions)


def _random_actions(num_actions, length, seed=0):
    return np.random.default_rng(seed).integers(num_actions, size=length).tolist()


def test_observations_are_uint8_frame_stacks():
    env = envs.make(PONG, seed=0)
    obs, info = env.reset()
    assert obs.shape == (4, 96, 96, 3) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 96, 96, 3)
    assert env.observation_space.contains(obs)
    assert all(np.array_equal(obs[k], obs[0]) for k in range(4))  # padded with the reset frame
    next_obs = env.step(0)[0]
    assert np.array_equal(next_obs[:3], obs[1:])  # oldest frame first, newest last
    assert set(info) == {"lives", "episode_frame_number", "raw_reward", "game_return", "game_over"}

    gray = envs.make(PONG, seed=0, grayscale=True, frame_stack=2, image_size=64)
    obs, _ = gray.reset()
    assert obs.shape == (2, 64, 64, 1) and obs.dtype == np.uint8
    assert gray.observation_space.shape == (2, 64, 64, 1)


def test_frames_per_agent_step_is_action_repeat():
    for repeat in (4, 3):
        env = envs.make(PONG, seed=0, noop_max=0, action_repeat=repeat)
        env.reset()
        ale = env.unwrapped.ale
        assert ale.getEpisodeFrameNumber() == 0
        start = ale.getFrameNumber()
        for step in range(1, 6):
            _, _, _, _, info = env.step(1)
            assert ale.getEpisodeFrameNumber() == info["episode_frame_number"] == repeat * step
        assert ale.getFrameNumber() - start == 5 * repeat


def test_no_sticky_actions():
    actions = _random_actions(6, 60)
    runs = []
    for sticky in (0.0, 0.0, 0.25):
        env = envs.make(PONG, seed=7, repeat_action_probability=sticky)
        first, _ = env.reset()
        runs.append([first] + [step[0] for step in _play(env, actions)])
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))


def test_observation_max_pools_the_last_two_raw_frames():
    seed, repeat = 3, 4
    env = envs.make(PONG, seed=seed, noop_max=0, mode="eval")
    env.reset()
    raw = gymnasium.make(PONG, frameskip=1, repeat_action_probability=0.0).unwrapped
    raw.reset(seed=seed)
    action_set = raw.ale.getMinimalActionSet()
    resize = AreaResize((210, 160), (96, 96), 3)
    expected, last_only = np.zeros((96, 96, 3), np.uint8), np.zeros((96, 96, 3), np.uint8)
    pooling_mattered = False
    for action in _random_actions(len(action_set), 40, seed=1):
        obs = env.step(action)[0]
        frames = []
        for _ in range(repeat):
            raw.ale.act(action_set[action])
            frames.append(raw.ale.getScreenRGB())
        np.testing.assert_array_equal(obs[-1], resize(np.maximum(*frames[-2:]), expected))
        pooling_mattered |= not np.array_equal(obs[-1], resize(frames[-1], last_only))
    assert pooling_mattered


def test_noop_starts_are_seeded():
    env = envs.make(PONG)
    frames = {}
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        frames[seed] = info["episode_frame_number"]
        assert 1 <= frames[seed] <= 30
    again_obs, again_info = env.reset(seed=5)
    assert again_info["episode_frame_number"] == frames[5]
    np.testing.assert_array_equal(again_obs, obs)
    assert len(set(frames.values())) > 1
    assert envs.make(PONG, noop_max=0).reset(seed=0)[1]["episode_frame_number"] == 0
    # make(seed=s) seeds the first reset exactly like reset(seed=s).
    assert envs.make(PONG, seed=4).reset()[1]["episode_frame_number"] == frames[4]


def test_life_loss_ends_episodes_only_in_train():
    actions = _random_actions(4, 400, seed=0)
    first_loss = {}
    for mode in ("train", "eval"):
        env = envs.make("ALE/Breakout-v5", seed=1, mode=mode)
        _, info = env.reset()
        lives = info["lives"]
        steps = _play(env, actions)
        first_loss[mode], (_, _, terminated, truncated, info) = next(
            (t, step) for t, step in enumerate(steps) if step[4]["lives"] < lives or step[2]
        )
        assert info["lives"] == lives - 1 and not info["game_over"] and not truncated
        assert terminated == (mode == "train")
        if mode == "train":
            frame_number = info["episode_frame_number"]
            _, info = env.reset()  # the game goes on: same lives, frames keep counting
            assert info["lives"] == lives - 1
            assert info["episode_frame_number"] == frame_number + 4
    assert first_loss["train"] == first_loss["eval"]


def test_rewards_are_clipped_only_in_train():
    actions = _random_actions(6, 300, seed=2)
    for mode in ("train", "eval"):
        env = envs.make("ALE/SpaceInvaders-v5", seed=0, mode=mode)
        env.reset()
        steps = list(_play(env, actions))
        rewards = np.array([step[1] for step in steps])
        raw_rewards = np.array([step[4]["raw_reward"] for step in steps])
        assert raw_rewards.max() > 1  # Space Invaders pays 5 to 30 points an alien
        expected = np.clip(raw_rewards, -1, 1) if mode == "train" else raw_rewards
        np.testing.assert_array_equal(rewards, expected)
        assert steps[-1][4]["game_return"] == raw_rewards.sum()


@pytest.mark.parametrize("cap", [100, 102])
def test_episode_frame_cap_truncates(cap):
    env = envs.make(PONG, seed=0, noop_max=0, max_episode_frames=cap)
    env.reset()
    steps, truncated = 0, False
    while not truncated and steps < 100:
        _, _, terminated, truncated, info = env.step(0)
        steps += 1
    assert steps == -(-cap // 4) and not terminated
    assert info["episode_frame_number"] == cap and info["game_over"]
    assert env.reset()[1]["episode_frame_number"] == 0  # a new game


def test_option_validation_and_mode_defaults():
    with pytest.raises(TypeError, match="valid options are .*frame_stack"):
        envs.make(PONG, frame_stak=4)
    with pytest.raises(ValueError, match="action_repeat"):
        envs.AtariOptions(action_repeat=0)
    with pytest.raises(TypeError, match="grayscale"):
        envs.AtariOptions(grayscale="yes")
    options = envs.AtariOptions()
    train, evaluation = options.resolve("train"), options.resolve("eval")
    assert train.terminal_on_life_loss and train.clip_rewards
    assert not evaluation.terminal_on_life_loss and not evaluation.clip_rewards
    explicit = dataclasses.replace(options, clip_rewards=False).resolve("train")
    assert explicit.terminal_on_life_loss and not explicit.clip_rewards
    assert options.observation_shape == (4, 96, 96, 3)
    with pytest.raises(ValueError, match="'train', 'eval'"):
        options.resolve("test")


def test_vector_env_autoresets_in_the_same_step():
    cap, num_envs = 40, 2
    venv = envs.make_vector(PONG, num_envs, seed=5, noop_max=0, max_episode_frames=cap)
    obs, _ = venv.reset()
    assert obs.shape == (num_envs, 4, 96, 96, 3) and obs.dtype == np.uint8
    for _ in range(cap // 4):
        obs, _, terminated, truncated, info = venv.step(np.ones(num_envs, np.int64))
    assert truncated.all() and not terminated.any() and info["_final_obs"].all()
    for i in range(num_envs):
        assert info["final_info"]["episode_frame_number"][i] == cap
        assert info["episode_frame_number"][i] == 0  # already the next game's reset info
        assert np.array_equal(obs[i], np.repeat(obs[i][:1], 4, axis=0))  # a reset stack
        assert info["final_obs"][i].shape == (4, 96, 96, 3)
    venv.close()


def test_vector_env_seeds_sub_envs_with_seed_plus_index():
    seed, num_envs = 11, 2
    runs = []
    for _ in range(2):
        venv = envs.make_vector(PONG, num_envs, seed=seed)
        obs, info = venv.reset()
        runs.append((obs, info["episode_frame_number"]))
        venv.close()
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for i in range(num_envs):
        single_obs, single_info = envs.make(PONG, seed=seed + i).reset()
        np.testing.assert_array_equal(runs[0][0][i], single_obs)
        assert runs[0][1][i] == single_info["episode_frame_number"]
