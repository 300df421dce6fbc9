"""The config section the model-free baselines share: ``network`` (torso and heads).

Each baseline's run config (``dqn.config.DQNConfig``, ``ppo.config.PPOConfig``) has the shared
``env`` and ``run`` sections of ``dreamer.core.config``, this ``network`` section and one
algorithm section (``dqn`` or ``ppo``), so command-line overrides read ``--set dqn.lr=1e-3`` or
``--set network.hidden=[128,128]``. Presets are functions in ``experiments/baselines.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from dreamer.core.configtree import require


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
