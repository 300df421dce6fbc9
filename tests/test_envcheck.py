"""Env output checks: non-finite values (the shell) and rewards beyond EfficientZero's supports."""

import numpy as np
import pytest

from dreamer.agents.efficientzero.config import ModelConfig
from dreamer.agents.efficientzero.reward_scale import RewardScale
from dreamer.shell.envcheck import non_finite


def test_non_finite_names_the_value_the_field_and_the_sub_env():
    obs = np.zeros((3, 4), np.float32)
    reward = np.zeros(3)
    assert non_finite(obs, reward) is None
    obs[2, 1] = np.nan
    assert non_finite(obs, reward) == "NaN in the observation of sub-env 2"
    reward[1] = -np.inf
    assert non_finite(obs, reward) == "inf in the reward of sub-env 1"  # rewards first
    frames = np.full((2, 4, 8, 8, 1), 255, np.uint8)  # integer frames cannot be non-finite
    assert non_finite(frames, np.ones(2)) is None


def _limit(support):
    """Largest x with h(x) <= support, by bisection on h (independent of h_inv)."""
    h = lambda x: np.sqrt(x + 1.0) - 1.0 + 0.001 * x
    low, high = 0.0, 1e12
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if h(mid) <= support else (low, mid)
    return low


def test_rewards_beyond_the_supports_are_warned_about_once(capsys):
    check = RewardScale("MyEnv-v0", ModelConfig(value_support=300, reward_support=20))
    assert check.value_limit == pytest.approx(_limit(300), rel=1e-5)  # about 5.9e4
    assert check.prefix_limit == pytest.approx(_limit(20), rel=1e-5)
    assert check(np.array([1.0, -_limit(20) * 0.99]), env_steps=1) is None
    message = check(np.array([0.0, -1e9]), env_steps=7)
    assert "MyEnv-v0 gave a reward of magnitude 1e+09 at env step 7" in message
    assert "model.value_support=300" in message and "model.reward_support=20" in message
    assert f"h(1e+09) = {int(np.ceil(1e9**0.5 - 1 + 1e6))}" in message
    assert capsys.readouterr().err.strip() == message  # one line, on stderr
    assert check(np.array([1e12]), env_steps=8) is None  # only once
