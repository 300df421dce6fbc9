"""Helpers shared by the baseline training loops (shell code)."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from dreamer.core.errors import ObservationSpaceError


def final_observations(next_obs: np.ndarray, info: dict, done: np.ndarray) -> np.ndarray:
    """``[N, ...]``: the last observation of each episode that ended (SAME_STEP autoreset keeps
    it in ``info["final_obs"]``), ``next_obs`` for the others."""
    out = np.array(next_obs, copy=True)
    for i in np.flatnonzero(done):
        out[i] = info["final_obs"][i]
    return out


def discrete_actions(space: Any) -> int:
    """Number of actions of a ``Discrete`` action space; an error naming the space otherwise."""
    if not isinstance(space, gymnasium.spaces.Discrete):
        raise ObservationSpaceError(
            f"the baselines need a Discrete action space, this environment has {space}."
        )
    return int(space.n)
