"""PPO's network: policy logits and a state value on baselines torsos (shared or separate)."""

from __future__ import annotations

import chex
import flax.linen as nn

from dreamer.agents.baselines.config import NetworkConfig
from dreamer.agents.baselines.networks import Head, Torso


class ActorCritic(nn.Module):
    """Policy logits ``[B, A]`` and state values ``[B]`` of observations ``[B, ...]``.

    With orthogonal init the policy output has gain 0.01 and the value output gain 1 (as in
    SB3 and cleanrl), so the initial policy is near uniform.
    """

    cfg: NetworkConfig
    num_actions: int
    share_torso: bool

    @nn.compact
    def __call__(self, obs: chex.Array) -> tuple[chex.Array, chex.Array]:
        if self.share_torso:
            policy_features = value_features = Torso(self.cfg, name="torso")(obs)
        else:
            policy_features = Torso(self.cfg, name="policy_torso")(obs)
            value_features = Torso(self.cfg, name="value_torso")(obs)
        logits = Head(self.cfg, self.num_actions, out_scale=0.01, name="policy")(policy_features)
        value = Head(self.cfg, 1, out_scale=1.0, name="value")(value_features)[:, 0]
        return logits, value
