"""Greedy evaluation and the env-construction glue shared by every algorithm (shell code)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dreamer.config import ConfigError, EnvConfig
from dreamer.envcheck import non_finite
from dreamer.errors import EnvOutputError


def make_vector_env(env: EnvConfig, *, num_envs: int, seed: int, mode: str):
    """``envs.make_vector`` with configuration errors turned into one clear message."""
    import envs

    try:
        return envs.make_vector(
            env.id,
            num_envs,
            seed=seed,
            mode=mode,
            vectorization=env.vectorization,
            **env.options,
        )
    except (ValueError, TypeError, ImportError, AttributeError) as e:
        raise ConfigError(f"cannot make environment {env.id!r}: {e}") from e


def evaluate_policy(
    env: EnvConfig,
    act: Callable[[np.ndarray], np.ndarray],
    *,
    episodes: int,
    seed: int,
    max_steps: int = 0,
) -> list[float]:
    """Run ``episodes`` evaluation episodes of ``act(obs[N]) -> actions[N]``.

    Each of the ``num_eval_envs`` environments plays a fixed quota of episodes, so the result
    does not favour short episodes. ``max_steps`` > 0 cuts an episode after that many steps
    (its return so far counts). Returns the undiscounted, unclipped episode returns.
    """
    num_envs = min(env.num_eval_envs, episodes)
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    venv = make_vector_env(env, num_envs=num_envs, seed=seed, mode="eval")
    try:
        obs, _ = venv.reset(seed=seed)
        running = np.zeros(num_envs)
        length = np.zeros(num_envs, dtype=int)
        done_count = np.zeros(num_envs, dtype=int)
        returns: list[float] = []
        while (done_count < quota).any():
            obs, reward, terminated, truncated, _ = venv.step(act(obs))
            problem = non_finite(obs, reward)
            if problem is not None:
                raise EnvOutputError(
                    f"environment {env.id} returned {problem} during an evaluation; fix the "
                    "environment (or wrap it to replace non-finite values)."
                )
            if max_steps > 0:  # cut episodes at max_steps: those envs start over
                cut = (length + 1 >= max_steps) & ~(terminated | truncated)
                truncated = truncated | cut
                obs = _reset_some(venv, obs, np.flatnonzero(cut))
            running += reward
            length += 1
            for i in np.flatnonzero(terminated | truncated):
                if done_count[i] < quota[i]:
                    returns.append(float(running[i]))
                    done_count[i] += 1
                running[i] = 0.0
                length[i] = 0
        return returns
    finally:
        venv.close()


def _reset_some(venv, obs: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Reset the sub-environments ``which`` (their RNGs continue); returns the new batch."""
    if len(which) == 0:
        return obs
    mask = np.zeros(venv.num_envs, bool)
    mask[which] = True
    fresh, _ = venv.reset(options={"reset_mask": mask})  # the others keep their observation
    return fresh
