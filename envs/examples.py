"""A tiny custom environment, to show how to plug your own env in.

Use it as ``envs.make("envs.examples:make_corridor", length=5)`` (or ``--env
envs.examples:make_corridor`` on the command line), or give it a short name with
``envs.register("corridor", make_corridor)``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from envs.jax_envs import JaxEnv, jax_native


class Corridor(gymnasium.Env):
    """A 1-D corridor of ``length`` cells: start in cell 0, reach the last cell.

    Observation: float32 one-hot of the position, shape ``[length]``. Actions: 0 = left,
    1 = right. Reward 1 on reaching the end (terminated), else 0; truncated after
    ``max_steps`` steps. The start is deterministic, so seeding changes nothing.
    """

    def __init__(self, length: int = 8, max_steps: int = 32):
        if length < 2:
            raise ValueError(f"length must be >= 2, got {length}")
        self.length, self.max_steps = length, max_steps
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)
        self._position = self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._position = self._steps = 0
        return self._observation(), {}

    def step(self, action: int):
        self._position = int(np.clip(self._position + (1 if action else -1), 0, self.length - 1))
        self._steps += 1
        terminated = self._position == self.length - 1
        truncated = not terminated and self._steps >= self.max_steps
        return self._observation(), float(terminated), terminated, truncated, {}

    def _observation(self) -> np.ndarray:
        observation = np.zeros(self.length, np.float32)
        observation[self._position] = 1.0
        return observation


def make_corridor(*, length: int = 8, max_steps: int = 32, mode: str = "train") -> Corridor:
    """Factory for ``envs.make("envs.examples:make_corridor", length=..., max_steps=...)``.

    A factory that names a ``mode`` parameter is also given the mode ("train" or "eval");
    the corridor is the same in both.
    """
    del mode
    return Corridor(length=length, max_steps=max_steps)


@jax_native
def make_jax_corridor(*, length: int = 8, max_steps: int = 32) -> JaxEnv:
    """The corridor as a JAX-native env (``--env envs.examples:make_jax_corridor`` runs the
    fused loop): the same dynamics as ``Corridor``, reset and step as pure functions."""
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")

    def observe(position: jax.Array) -> jax.Array:
        return jax.nn.one_hot(position, length, dtype=jnp.float32)

    def reset(key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        del key  # a deterministic start
        state = {"position": jnp.zeros((), jnp.int32), "steps": jnp.zeros((), jnp.int32)}
        return observe(state["position"]), state

    def step(key: jax.Array, state: dict[str, jax.Array], action: jax.Array) -> tuple:
        move = jnp.where(action > 0, 1, -1)
        position = jnp.clip(state["position"] + move, 0, length - 1)
        steps = state["steps"] + 1
        terminated = position == length - 1
        truncated = ~terminated & (steps >= max_steps)
        done = terminated | truncated
        fresh_obs, fresh = reset(key)
        nxt = {"position": position, "steps": steps}
        state = jax.tree.map(lambda f, n: jnp.where(done, f, n), fresh, nxt)
        obs = jnp.where(done, fresh_obs, observe(position))
        return obs, state, terminated.astype(jnp.float32), terminated, truncated

    return JaxEnv(
        reset=reset,
        step=step,
        observation_space=gymnasium.spaces.Box(0.0, 1.0, (length,), np.float32),
        action_space=gymnasium.spaces.Discrete(2),
        id="envs.examples:make_jax_corridor",
    )


@jax_native
def make_catch(*, rows: int = 10, columns: int = 5) -> JaxEnv:
    """Catch (as in bsuite): a ball falls from a random column of the top row, one row per
    step; the paddle on the bottom row moves left (0), stays (1) or moves right (2). Reward
    +1 for a catch and -1 for a miss when the ball reaches the bottom row (terminated, after
    ``rows - 1`` steps), else 0. Observation: the ``[rows * columns]`` float32 grid with 1 at
    the ball and the paddle. Random play returns about -0.6. JAX-native (the fused loop runs
    it; ``envs.make`` gives a gymnasium view for the host loops)."""
    if rows < 2 or columns < 1:
        raise ValueError(f"catch needs rows >= 2 and columns >= 1, got {rows} x {columns}")

    def observe(state: dict[str, jax.Array]) -> jax.Array:
        grid = jnp.zeros((rows, columns), jnp.float32)
        grid = grid.at[state["ball_row"], state["ball_column"]].set(1.0)
        return grid.at[rows - 1, state["paddle"]].set(1.0).ravel()

    def reset(key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        state = {
            "ball_row": jnp.zeros((), jnp.int32),
            "ball_column": jax.random.randint(key, (), 0, columns),
            "paddle": jnp.asarray(columns // 2, jnp.int32),
        }
        return observe(state), state

    def step(key: jax.Array, state: dict[str, jax.Array], action: jax.Array) -> tuple:
        paddle = jnp.clip(state["paddle"] + jnp.asarray(action, jnp.int32) - 1, 0, columns - 1)
        nxt = dict(state, ball_row=state["ball_row"] + 1, paddle=paddle)
        terminated = nxt["ball_row"] == rows - 1
        reward = jnp.where(terminated, jnp.where(nxt["ball_column"] == paddle, 1.0, -1.0), 0.0)
        fresh_obs, fresh = reset(key)
        state = jax.tree.map(lambda f, n: jnp.where(terminated, f, n), fresh, nxt)
        obs = jnp.where(terminated, fresh_obs, observe(nxt))
        return obs, state, reward.astype(jnp.float32), terminated, jnp.zeros((), bool)

    size = rows * columns
    return JaxEnv(
        reset=reset,
        step=step,
        observation_space=gymnasium.spaces.Box(0.0, 1.0, (size,), np.float32),
        action_space=gymnasium.spaces.Discrete(3),
        id="envs.examples:make_catch",
    )
