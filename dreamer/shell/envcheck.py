"""Checks of what an environment returns, where it enters the agent (shell code).

A loop calls these right after each ``venv.step`` (through ``RunBook.check_env_output``):
``non_finite`` finds NaN or inf in an observation or a reward, which would otherwise reach
the replay and surface much later as a non-finite loss with the wrong advice. An agent adds
checks of its own through ``RunBook(reward_check=...)``: EfficientZero's
``dreamer.agents.efficientzero.reward_scale.RewardScale`` warns once when a reward lies beyond
what its categorical supports can represent.
"""

from __future__ import annotations

import math

import numpy as np


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
