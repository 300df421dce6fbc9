"""Frozen config of PPO: the ``ppo`` section and the whole run's ``PPOConfig``.

A run config has the shared ``env`` and ``run`` sections (``dreamer.core.config``), the
baselines' ``network`` section (``dreamer.agents.baselines.config``) and the ``ppo`` section,
so command-line overrides read ``--set ppo.lr=1e-3``. Presets are functions in
``experiments/baselines.py``.
"""

from __future__ import annotations

import dataclasses

from dreamer.agents.baselines.config import NetworkConfig
from dreamer.core.config import EnvConfig, RunConfig
from dreamer.core.configtree import ConfigError, require


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOParams:
    """PPO (Schulman et al. 2017) with GAE, clipped policy and value objectives."""

    lr: float = 2.5e-4
    """Adam learning rate at the start."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the env-step budget."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip; 0 disables clipping."""
    num_steps: int = 128
    """Env steps per environment in one rollout (rollout = num_steps x env.num_envs)."""
    minibatch_size: int = 256
    """Transitions per minibatch; must divide num_steps x env.num_envs."""
    epochs: int = 4
    """Passes over each rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip: float = 0.1
    """Policy ratio clip epsilon (also the value clip when ``clip_value``)."""
    anneal_clip: bool = False
    """Anneal the clip epsilon linearly to 0 over the env-step budget (SB3's ``lin_0.2``)."""
    clip_value: bool = True
    """Clip the value update around the rollout's values (PPO2 / cleanrl)."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss 0.5 * E[(V - R)^2] (SB3's vf_coef c is 2c here)."""
    normalize_advantage: bool = True
    """Normalise advantages per minibatch to zero mean, unit std."""
    share_torso: bool = True
    """One torso for policy and value (Atari) or two separate ones (SB3's MLP policy)."""

    def __post_init__(self) -> None:
        require(self.lr > 0, "ppo.lr", self.lr, "a positive number")
        require(self.adam_eps > 0, "ppo.adam_eps", self.adam_eps, "a positive number")
        require(self.max_grad_norm >= 0, "ppo.max_grad_norm", self.max_grad_norm, ">= 0")
        require(self.num_steps > 0, "ppo.num_steps", self.num_steps, "a positive integer")
        require(self.minibatch_size > 0, "ppo.minibatch_size", self.minibatch_size, "positive")
        require(self.epochs > 0, "ppo.epochs", self.epochs, "a positive integer")
        require(0 < self.gamma <= 1, "ppo.gamma", self.gamma, "in (0, 1]")
        require(0 <= self.gae_lambda <= 1, "ppo.gae_lambda", self.gae_lambda, "in [0, 1]")
        require(self.clip > 0, "ppo.clip", self.clip, "a positive number")
        require(self.ent_coef >= 0, "ppo.ent_coef", self.ent_coef, ">= 0")
        require(self.vf_coef >= 0, "ppo.vf_coef", self.vf_coef, ">= 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """A whole PPO run."""

    env: EnvConfig = dataclasses.field(default_factory=lambda: EnvConfig(num_envs=8))
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    ppo: PPOParams = dataclasses.field(default_factory=PPOParams)

    def check(self) -> None:
        """Cross-section checks, run when training starts (so that ``--set`` overrides can
        change several fields one after another)."""
        if self.rollout_size % self.ppo.minibatch_size:
            divisor = max(
                d for d in range(1, self.ppo.minibatch_size + 1) if self.rollout_size % d == 0
            )
            raise ConfigError(
                f"ppo.minibatch_size={self.ppo.minibatch_size} does not divide the rollout of "
                f"ppo.num_steps x env.num_envs = {self.rollout_size} transitions: choose a "
                f"divisor, e.g. ppo.minibatch_size={divisor}."
            )

    @property
    def rollout_size(self) -> int:
        """Transitions per rollout (all environments)."""
        return self.ppo.num_steps * self.env.num_envs

    @property
    def num_minibatches(self) -> int:
        """Minibatches per epoch."""
        return self.rollout_size // self.ppo.minibatch_size
