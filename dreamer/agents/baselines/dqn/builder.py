"""DQN's builder: the learner (network, optimiser, acting), replay and greedy actor of a config
for one observation / action space. The DQN loop (``dreamer.loops.dqn``) builds through here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from dreamer.agents.baselines.dqn.config import DQNConfig
from dreamer.agents.baselines.dqn.learning import Learner, LearnerState, make_learner
from dreamer.agents.baselines.dqn.networks import QNetwork
from dreamer.agents.baselines.dqn.replay import Replay
from dreamer.agents.baselines.networks import torso_kind
from dreamer.agents.baselines.vector import discrete_actions

__all__ = ["Parts", "build", "greedy_actor"]


@dataclasses.dataclass(frozen=True)
class Parts:
    """What a config builds for one observation/action space."""

    learner: Learner
    obs_shape: tuple[int, ...]
    obs_dtype: Any
    num_actions: int
    stacked: bool

    def replay(self, cfg: DQNConfig) -> Replay:
        return Replay(
            capacity=cfg.dqn.buffer_size,
            num_envs=cfg.env.num_envs,
            obs_shape=self.obs_shape,
            obs_dtype=self.obs_dtype,
            stacked=self.stacked,
            n_step=cfg.dqn.n_step,
            gamma=cfg.dqn.gamma,
        )

    def init(self, seed: int) -> tuple[LearnerState, jax.Array]:
        init_key, act_key = jax.random.split(jax.random.PRNGKey(seed))
        example = np.zeros((1, *self.obs_shape), self.obs_dtype)
        return self.learner.init(init_key, example), act_key


def build(cfg: DQNConfig, observation_space: Any, action_space: Any) -> Parts:
    obs_shape = tuple(observation_space.shape)
    num_actions = discrete_actions(action_space)
    stacked = torso_kind(cfg.network, obs_shape) == "conv" and len(obs_shape) == 4
    network = QNetwork(cfg.network, num_actions, cfg.dqn.dueling)
    learner = make_learner(cfg.dqn, network, augment=stacked and cfg.dqn.augment_pad > 0)
    return Parts(learner, obs_shape, observation_space.dtype, num_actions, stacked)


def greedy_actor(learner: Learner, params: Any, epsilon: float, seed: int):
    """``act(obs[N]) -> actions[N]`` for evaluation (epsilon-greedy with ``epsilon``)."""
    key = jax.random.PRNGKey(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        nonlocal key
        actions, key = learner.act(params, obs, key, epsilon)
        return np.asarray(actions)

    return act
