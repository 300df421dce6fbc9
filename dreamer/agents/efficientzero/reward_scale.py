"""A check of the rewards an environment gives against what the categorical supports hold.

Values and value prefixes are predicted over the integers ``[-S, S]`` of
``h(x) = sign(x)(sqrt(|x|+1)-1) + 0.001x`` (``transforms``), so larger targets are clipped
silently while evaluation returns stay unclipped. ``RewardScale`` warns once when a reward lies
beyond that; the host loop hands it to the run shell, which calls it after each env step
(``RunBook(reward_check=...)``, next to the shell's own NaN/inf check).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from dreamer.agents.efficientzero.config import ModelConfig
from dreamer.agents.efficientzero.transforms import h, h_inv


class RewardScale:
    """Warns once (on stderr) when a reward is beyond the value or value-prefix support."""

    def __init__(self, env_id: str, model: ModelConfig):
        self.env_id = env_id
        self.model = model
        self.value_limit = float(h_inv(float(model.value_support)))
        self.prefix_limit = float(h_inv(float(model.reward_support)))
        self.limit = min(self.value_limit, self.prefix_limit)
        self.warned = False

    def __call__(self, reward: np.ndarray, env_steps: int) -> str | None:
        """Check one step's rewards; returns the warning when it is given (once)."""
        if self.warned:
            return None
        largest = float(np.max(np.abs(reward), initial=0.0))
        if not largest > self.limit:  # also false for NaN, which non_finite reports
            return None
        self.warned = True
        m = self.model
        needed = math.ceil(float(h(largest)))
        message = (
            f"dreamer: warning: {self.env_id} gave a reward of magnitude {largest:.4g} at env "
            f"step {env_steps}, beyond what the model's supports represent (|value| <= "
            f"{self.value_limit:.4g} with model.value_support={m.value_support}, |value prefix| "
            f"<= {self.prefix_limit:.4g} with model.reward_support={m.reward_support}, over h(x) "
            "= sign(x)(sqrt(|x|+1)-1)+0.001x): their targets are clipped there. Scale the "
            f"rewards down (e.g. gymnasium's TransformReward), or raise model.value_support and "
            f"model.reward_support to at least h({largest:.4g}) = {needed}."
        )
        print(message, file=sys.stderr)
        return message
