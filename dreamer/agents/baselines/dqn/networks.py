"""DQN's network: action values on a baselines torso, optionally dueling (Wang et al. 2016)."""

from __future__ import annotations

import chex
import flax.linen as nn

from dreamer.agents.baselines.config import NetworkConfig
from dreamer.agents.baselines.networks import Head, Torso


def dueling_aggregate(value: chex.Array, advantages: chex.Array) -> chex.Array:
    """Q = V + A - mean_a A  (Wang et al. 2016, eq. 9): ``[B]``, ``[B, A]`` -> ``[B, A]``."""
    chex.assert_rank([value, advantages], [1, 2])
    return value[:, None] + advantages - advantages.mean(axis=-1, keepdims=True)


class QNetwork(nn.Module):
    """Action values ``[B, A]`` of observations ``[B, ...]``."""

    cfg: NetworkConfig
    num_actions: int
    dueling: bool

    @nn.compact
    def __call__(self, obs: chex.Array) -> chex.Array:
        features = Torso(self.cfg)(obs)
        if not self.dueling:
            return Head(self.cfg, self.num_actions, name="q")(features)
        value = Head(self.cfg, 1, name="value")(features)[:, 0]
        advantages = Head(self.cfg, self.num_actions, name="advantage")(features)
        return dueling_aggregate(value, advantages)
