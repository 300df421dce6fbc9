"""Greedy evaluation and the env-construction glue shared by every algorithm (shell code)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dreamer.config import ConfigError, EnvConfig
from dreamer.imports import import_modules, project_package


def make_vector_env(env: EnvConfig, *, num_envs: int, seed: int, mode: str):
    """``envs.make_vector`` with configuration errors turned into one clear message.

    The modules of ``env.imports`` are imported first; single images ``[H, W, C]`` become
    one-frame stacks ``[1, H, W, C]``, the shape every algorithm's networks take.
    """
    import_modules(env.imports)
    envs = project_package("envs")
    try:
        return envs.make_vector(
            env.id,
            num_envs,
            seed=seed,
            mode=mode,
            vectorization=env.vectorization,
            stack_images=True,
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
) -> list[float]:
    """Run ``episodes`` full evaluation episodes of ``act(obs[N]) -> actions[N]``.

    Each of the ``num_eval_envs`` environments plays a fixed quota of episodes, so the result
    does not favour short episodes. Returns the undiscounted, unclipped episode returns.
    """
    num_envs = min(env.num_eval_envs, episodes)
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    venv = make_vector_env(env, num_envs=num_envs, seed=seed, mode="eval")
    try:
        obs, _ = venv.reset(seed=seed)
        running = np.zeros(num_envs)
        done_count = np.zeros(num_envs, dtype=int)
        returns: list[float] = []
        while (done_count < quota).any():
            obs, reward, terminated, truncated, _ = venv.step(act(obs))
            running += reward
            for i in np.flatnonzero(terminated | truncated):
                if done_count[i] < quota[i]:
                    returns.append(float(running[i]))
                    done_count[i] += 1
                running[i] = 0.0
        return returns
    finally:
        venv.close()
