"""PPO's builder: the learner (actor-critic network, optimiser, update), its initial state
and the greedy actor of a config for one observation / action space. The PPO loop
(``dreamer.loops.ppo``) builds through here.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from dreamer.agents.baselines.networks import torso_kind
from dreamer.agents.baselines.ppo.config import PPOConfig
from dreamer.agents.baselines.ppo.learning import Learner, make_learner
from dreamer.agents.baselines.ppo.networks import ActorCritic
from dreamer.agents.baselines.vector import discrete_actions

__all__ = ["build", "greedy_actor", "initial_state", "sampling_actor"]


def build(cfg: PPOConfig, observation_space: Any, action_space: Any) -> Learner:
    cfg.check()
    torso_kind(cfg.network, tuple(observation_space.shape))  # fails early on a bad space
    network = ActorCritic(cfg.network, discrete_actions(action_space), cfg.ppo.share_torso)
    return make_learner(cfg, network)


def initial_state(learner: Learner, observation_space: Any, seed: int):
    init_key, act_key = jax.random.split(jax.random.PRNGKey(seed))
    example = np.zeros((1, *observation_space.shape), observation_space.dtype)
    return learner.init(init_key, example), act_key


def greedy_actor(learner: Learner, params: Any):
    """``act(obs[N]) -> actions[N]``: the most probable action."""
    return lambda obs: np.asarray(learner.greedy(params, obs))


def sampling_actor(learner: Learner, params: Any, seed: int):
    """``act(obs[N]) -> actions[N]``: actions sampled from the policy, as in training."""
    key = jax.random.PRNGKey(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        nonlocal key
        actions, _, _, key = learner.act(params, obs, key)
        return np.asarray(actions)

    return act
