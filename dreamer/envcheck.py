"""Checks of what an environment returns, where it enters the agent (shell code).

A loop calls these right after each ``venv.step`` (through ``RunBook.check_env_output``):

- ``non_finite`` finds NaN or inf in an observation or a reward, which would otherwise reach
  the replay and surface much later as a non-finite loss with the wrong advice;
- ``RewardScale`` warns once when a reward lies beyond what EfficientZero's categorical
  supports can represent: values and value prefixes are predicted over the integers
  ``[-S, S]`` of ``h(x) = sign(x)(sqrt(|x|+1)-1) + 0.001x`` (``dreamer.transforms``), so larger
  targets are clipped silently while evaluation returns stay unclipped.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from dreamer.config import ModelConfig
from dreamer.transforms import h, h_inv


def non_finite(obs: np.ndarray, reward: np.ndarray) -> str | None:
    """Where ``obs [N, ...]`` or ``reward [N]`` of one vector-env step hold NaN or inf, in
    words (``"NaN in the observation of sub-env 1"``); None when all values are finite."""
    for name, values in (("reward", reward), ("observation", obs)):
        values = np.asarray(values)
        if not np.issubdtype(values.dtype, np.floating):  # uint8 frames, int rewards
            continue
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            env = int(np.flatnonzero(bad)[0])
            first = values[env].ravel()[~np.isfinite(values[env].ravel())][0]
            kind = "NaN" if math.isnan(first) else "inf"
            return f"{kind} in the {name} of sub-env {env}"
    return None


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
