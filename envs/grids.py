"""Grid worlds of the benchmark suites that no registered id gives as the agents need them.

- ``envs.grids:make_deep_sea`` (option ``size``, default 10): bsuite's DeepSea from gymnax at
  a chosen size, JAX-native (the fused loop runs it). gymnax registers only its default size
  8 (``gymnax:DeepSea-bsuite``); the size is a constructor argument.
- ``envs.grids:make_minigrid`` (option ``name``, default ``MiniGrid-DoorKey-5x5-v0``): a
  MiniGrid env through its image wrapper, the agent's partial view as a uint8 ``[7, 7, 3]``
  array (``envs.make`` turns it into a one-frame stack for the conv trunk). Needs the
  ``minigrid`` package (the ``classic`` extra).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium

from envs.jax_envs import JaxEnv, jax_native, make_jax

DEEP_SEA_SIZE = 10
"""The DeepSea size of the suites (bsuite's sweep runs sizes 10 to 50)."""

MINIGRID_DEFAULT = "MiniGrid-DoorKey-5x5-v0"


@jax_native
def make_deep_sea(*, size: int = DEEP_SEA_SIZE) -> JaxEnv:
    """bsuite DeepSea of ``size`` x ``size`` cells (gymnax, deterministic, fixed action map).

    The agent starts top left and moves one row down per step, left or right; an episode
    lasts ``size`` steps. Reaching the bottom-right cell pays 1, every move right costs
    0.01 / size: the best return is 0.99, every other return is at most 0. Observation: the
    one-hot position, flattened to ``[size * size]`` float32.
    """
    if size < 2:
        raise ValueError(f"DeepSea needs size >= 2, got {size}")
    env = make_jax("gymnax:DeepSea-bsuite", size=size)
    return dataclasses.replace(env, id="envs.grids:make_deep_sea")


def make_minigrid(
    *, name: str = MINIGRID_DEFAULT, render_mode: str | None = None, **options: Any
) -> gymnasium.Env:
    """The MiniGrid env ``name`` with image observations only (``ImgObsWrapper``).

    Observation: uint8 ``[7, 7, 3]``, per cell of the agent's view the object, colour and
    state codes (small integers, not pixels). ``options`` go to ``gymnasium.make``.
    """
    try:
        import minigrid  # noqa: F401  (registers the MiniGrid ids with gymnasium)
        from minigrid.wrappers import ImgObsWrapper
    except ImportError as e:
        raise ImportError(
            f"{name} needs the minigrid package: pip install minigrid (or the project's "
            "'classic' extra)."
        ) from e
    return ImgObsWrapper(gymnasium.make(name, render_mode=render_mode, **options))
