"""Frozen configs of the model-free baselines (DQN family, PPO).

Each run config has the shared ``env`` and ``run`` sections of ``dreamer.config`` plus a
``network`` section and one algorithm section (``dqn`` or ``ppo``), so command-line overrides
read ``--set dqn.lr=1e-3`` or ``--set network.hidden=[128,128]``. Presets are functions in
``experiments/baselines.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from dreamer.config import ConfigError, EnvConfig, RunConfig
from dreamer.configtree import require


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """Torso and heads shared by the Q-network and the actor-critic."""

    kind: Literal["auto", "mlp", "conv"] = "auto"
    """Torso: ``conv`` (Nature CNN) for image stacks ``[S, H, W, C]``, ``mlp`` for vectors,
    ``auto`` picks by the observation's rank."""
    hidden: tuple[int, ...] = (64, 64)
    """MLP torso: hidden layer sizes."""
    conv_dense: int = 512
    """Conv torso: units of the dense layer after the three conv layers (0: none)."""
    head_hidden: tuple[int, ...] = ()
    """Hidden layer sizes of each output head (each dueling stream, the policy, the value)."""
    activation: Literal["relu", "tanh"] = "relu"
    """Non-linearity of the hidden layers (conv layers always use ReLU)."""
    init: Literal["lecun", "torch", "orthogonal"] = "lecun"
    """Weight init: flax's LeCun normal, PyTorch's default (uniform +-1/sqrt(fan_in), weights
    and biases), or orthogonal (gain sqrt(2) hidden, heads as the algorithm says; zero bias)."""

    def __post_init__(self) -> None:
        require(all(h > 0 for h in self.hidden), "network.hidden", self.hidden, "positive sizes")
        require(
            all(h > 0 for h in self.head_hidden),
            "network.head_hidden",
            self.head_hidden,
            "positive sizes",
        )
        require(self.conv_dense >= 0, "network.conv_dense", self.conv_dense, ">= 0")


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
