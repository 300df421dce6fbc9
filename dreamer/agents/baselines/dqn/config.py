"""Frozen config of the DQN family: the ``dqn`` section and the whole run's ``DQNConfig``.

A run config has the shared ``env`` and ``run`` sections (``dreamer.core.config``), the
baselines' ``network`` section (``dreamer.agents.baselines.config``) and the ``dqn`` section,
so command-line overrides read ``--set dqn.lr=1e-3`` or ``--set network.hidden=[128,128]``.
Presets are functions in ``experiments/baselines.py``.
"""

from __future__ import annotations

import dataclasses

from dreamer.agents.baselines.config import NetworkConfig
from dreamer.core.config import EnvConfig, RunConfig
from dreamer.core.configtree import require


@dataclasses.dataclass(frozen=True, kw_only=True)
class DQNParams:
    """Double/dueling DQN with n-step returns, prioritised replay and image augmentation."""

    lr: float = 1e-4
    """Adam learning rate (constant)."""
    adam_eps: float = 1.5e-4
    """Adam epsilon."""
    max_grad_norm: float = 0.0
    """Global gradient-norm clip; 0 disables clipping."""
    batch_size: int = 32
    """Transitions per update."""
    buffer_size: int = 100_000
    """Replay capacity in records (one per env step, plus a few per episode boundary)."""
    learning_starts: int = 1_600
    """Env steps of uniformly random actions before the first update."""
    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 1
    """n of the n-step return target (1: one-step Q-learning)."""
    double: bool = True
    """Double DQN: the online network picks the bootstrap action, the target net rates it."""
    dueling: bool = True
    """Dueling heads: Q = V + A - mean(A)."""
    huber_delta: float = 1.0
    """Huber loss threshold on the TD error."""
    prioritized: bool = False
    """Proportional prioritised replay (Schaul et al. 2016); False samples uniformly."""
    priority_alpha: float = 0.5
    """Priority exponent alpha: P(i) ~ p_i^alpha."""
    priority_beta: float = 0.4
    """Importance-weight exponent beta at the start, annealed linearly to 1 at the end."""
    priority_eps: float = 1e-6
    """Added to |TD error| to form a priority."""
    target_update_interval: int = 1
    """Copy the online parameters to the target network every this many env steps
    (1: the target is always the current online network, as in DrQ(eps))."""
    train_freq: int = 1
    """Env steps between training rounds."""
    gradient_steps: int = 1
    """Updates per training round."""
    epsilon_start: float = 1.0
    """Exploration epsilon at ``epsilon_decay_start``."""
    epsilon_final: float = 0.01
    """Exploration epsilon after the decay."""
    epsilon_decay_start: int = 0
    """Env step at which epsilon starts its linear decay."""
    epsilon_decay_steps: int = 5_000
    """Env steps the linear decay lasts."""
    eval_epsilon: float = 0.0
    """Epsilon of the evaluation policy (0: greedy)."""
    augment_pad: int = 0
    """Image observations: random shifts by up to this many pixels (DrQ); 0 disables."""

    def __post_init__(self) -> None:
        require(self.lr > 0, "dqn.lr", self.lr, "a positive number")
        require(self.adam_eps > 0, "dqn.adam_eps", self.adam_eps, "a positive number")
        require(self.max_grad_norm >= 0, "dqn.max_grad_norm", self.max_grad_norm, ">= 0")
        require(self.batch_size > 0, "dqn.batch_size", self.batch_size, "a positive integer")
        require(
            self.buffer_size >= self.batch_size,
            "dqn.buffer_size",
            self.buffer_size,
            f">= dqn.batch_size ({self.batch_size})",
        )
        require(self.learning_starts >= 0, "dqn.learning_starts", self.learning_starts, ">= 0")
        require(0 < self.gamma <= 1, "dqn.gamma", self.gamma, "in (0, 1]")
        require(self.n_step >= 1, "dqn.n_step", self.n_step, "an integer >= 1")
        require(self.huber_delta > 0, "dqn.huber_delta", self.huber_delta, "positive")
        require(self.priority_alpha >= 0, "dqn.priority_alpha", self.priority_alpha, ">= 0")
        require(0 <= self.priority_beta <= 1, "dqn.priority_beta", self.priority_beta, "[0, 1]")
        require(self.priority_eps > 0, "dqn.priority_eps", self.priority_eps, "positive")
        require(
            self.target_update_interval >= 1,
            "dqn.target_update_interval",
            self.target_update_interval,
            "an integer >= 1 (env steps)",
        )
        require(self.train_freq >= 1, "dqn.train_freq", self.train_freq, "an integer >= 1")
        require(self.gradient_steps >= 1, "dqn.gradient_steps", self.gradient_steps, ">= 1")
        for name in ("epsilon_start", "epsilon_final", "eval_epsilon"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"dqn.{name}", value, "a probability in [0, 1]")
        require(
            self.epsilon_decay_start >= 0,
            "dqn.epsilon_decay_start",
            self.epsilon_decay_start,
            ">= 0",
        )
        require(
            self.epsilon_decay_steps >= 1,
            "dqn.epsilon_decay_steps",
            self.epsilon_decay_steps,
            ">= 1",
        )
        require(self.augment_pad >= 0, "dqn.augment_pad", self.augment_pad, ">= 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DQNConfig:
    """A whole DQN-family run."""

    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    dqn: DQNParams = dataclasses.field(default_factory=DQNParams)
