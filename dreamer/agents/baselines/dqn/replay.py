"""A small numpy replay for the DQN family: n-step returns, proportional prioritisation.

Each environment writes its own stream of *records* into a ring of ``capacity // num_envs``
slots. A record holds one frame, and, for *step records*, the action taken from that frame
with the reward and end flags that followed. Around the steps of an episode sit frame-only
records, so every observation is rebuilt from the frames it consists of and stored once:

    padding (S-1 older frames of the first stacked obs) | step 0 | step 1 | ... | step T | final

``final`` holds the last frame of the episode's last observation (the one a truncated episode
bootstraps from). For non-stacked observations (vectors) S = 1 and a record holds the whole
observation. A step record becomes sampleable ("ready") once its n-step window and its
bootstrap observation are written; overwriting a slot un-readies the records whose stacks
reach back into it.

Sampling is proportional to ``priority ** alpha`` over ready records (alpha = 0: uniform),
with importance weights ``(N P(i)) ** -beta`` normalised by their batch maximum
(Schaul et al. 2016; ``dreamer.core.priorities``, the same functions as the EfficientZero replay).
Cost is O(capacity) per batch, small next to a network update at the sizes used here.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from dreamer.core import priorities as P
from dreamer.core.configtree import ConfigError


class ArrayState:
    """Checkpointing of a replay whose contents are the numpy arrays named in ``_FIELDS``."""

    _FIELDS: tuple[str, ...] = ()

    def state(self) -> dict[str, np.ndarray]:
        """The arrays to checkpoint (shared, not copied)."""
        return {name: getattr(self, name) for name in self._FIELDS}

    def load_state(self, state: dict[str, Any]) -> None:
        for name in self._FIELDS:
            current = getattr(self, name)
            value = np.array(state[name], dtype=current.dtype)
            if value.shape != current.shape:
                raise ConfigError(
                    f"checkpointed replay field {name} has shape {value.shape}, this config "
                    f"needs {current.shape}: resume with the run's own config.json."
                )
            setattr(self, name, value)


@functools.partial(jax.jit, static_argnames="batch_size")
def _draw(key, priority, ready, alpha, beta, *, batch_size: int):
    probs, count = P.probabilities(priority, ready, alpha)
    return P.sample(key, probs, count, batch_size, beta=beta)


def n_step_return(
    rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discounted n-step returns of windows that stop at the first episode end.

    Args:
      rewards, terminated, truncated: ``[B, n]``, step k of each window (k = 0 is the
        sampled step; entries after the first end of episode are ignored).
      gamma: discount factor.

    Returns:
      ``(returns [B], discounts [B], steps [B])``: sum_k gamma^k r_k over the ``steps``
      included steps, and the bootstrap discount gamma^steps, zero if the last included step
      terminated (a truncation still bootstraps).
    """
    done = terminated | truncated
    ends_before = np.cumsum(done, axis=1) - done
    included = ends_before == 0
    steps = included.sum(axis=1)
    powers = gamma ** np.arange(rewards.shape[1])
    returns = (rewards * included * powers).sum(axis=1)
    last_terminated = terminated[np.arange(len(steps)), steps - 1]
    discounts = np.where(last_terminated, 0.0, gamma**steps)
    return returns.astype(np.float32), discounts.astype(np.float32), steps


class Replay(ArrayState):
    """Per-env ring buffers of frames and transitions; see the module docstring."""

    def __init__(
        self,
        *,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: Any,
        stacked: bool,
        n_step: int,
        gamma: float,
    ):
        self.num_envs = num_envs
        self.slots = capacity // num_envs
        self.stack = obs_shape[0] if stacked else 1
        self.stacked = stacked
        self.n_step = n_step
        self.gamma = gamma
        if self.slots <= n_step + self.stack + 1:
            raise ConfigError(
                f"dqn.buffer_size={capacity} leaves {self.slots} slots per environment, too few "
                f"for n_step={n_step} and frame stack {self.stack}: raise dqn.buffer_size."
            )
        frame_shape = tuple(obs_shape[1:]) if stacked else tuple(obs_shape)
        shape = (num_envs, self.slots)
        self.frames = np.zeros(shape + frame_shape, dtype=obs_dtype)
        self.action = np.zeros(shape, dtype=np.int32)
        self.reward = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.truncated = np.zeros(shape, dtype=bool)
        self.is_step = np.zeros(shape, dtype=bool)
        self.ready = np.zeros(shape, dtype=bool)
        self.priority = np.zeros(shape, dtype=np.float64)
        self.head = np.zeros(num_envs, dtype=np.int64)  # records written per stream
        self.open = np.zeros(num_envs, dtype=bool)  # last record is a step awaiting successor
        self.max_priority = np.ones((), dtype=np.float64)

    # -- writing ---------------------------------------------------------------------------
    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_obs: np.ndarray,
    ) -> None:
        """Store one vector-env step.

        Args:
          obs: ``[N, *obs_shape]`` observations the actions were chosen from.
          action, reward, terminated, truncated: ``[N]`` the step's results.
          final_obs: ``[N, *obs_shape]`` last observation of episodes that ended at this step
            (``info["final_obs"]``); rows of running episodes are ignored.
        """
        for e in range(self.num_envs):
            if not self.open[e] and self.stacked:
                for frame in obs[e][:-1]:
                    self._write(e, frame)
            last = obs[e][-1] if self.stacked else obs[e]
            self._write(e, last, (action[e], reward[e], terminated[e], truncated[e]))
            self.open[e] = True
            if terminated[e] or truncated[e]:
                final = final_obs[e][-1] if self.stacked else final_obs[e]
                self._write(e, final)
                self._ready_window(e, self.head[e] - 1)
                self.open[e] = False

    def interrupt(self) -> None:
        """End every running episode by truncation at its last complete step (the envs are
        about to be reset: on resume and after each checkpoint).

        The newest step record of a running episode has no next observation yet; it becomes
        that episode's final frame, and the step before it is marked truncated.
        """
        for e in np.flatnonzero(self.open):
            last = (self.head[e] - 1) % self.slots
            prev = (self.head[e] - 2) % self.slots
            self.is_step[e, last] = False
            self.ready[e, last] = False
            self.priority[e, last] = 0.0
            if self.head[e] >= 2 and self.is_step[e, prev]:
                self.truncated[e, prev] = True
                self._ready_window(e, self.head[e] - 1)
            self.open[e] = False

    def _write(self, e: int, frame: np.ndarray, step: tuple | None = None) -> None:
        """Write one record; ``step`` is ``(action, reward, terminated, truncated)`` or None."""
        m = int(self.head[e])
        pos = m % self.slots
        action, reward, term, trunc = step if step is not None else (0, 0.0, False, False)
        self.frames[e, pos] = frame
        self.action[e, pos] = action
        self.reward[e, pos] = reward
        self.terminated[e, pos] = term
        self.truncated[e, pos] = trunc
        self.is_step[e, pos] = step is not None
        # This slot and the next S-1 (the oldest records) lose their frame history.
        for k in range(self.stack):
            self.ready[e, (pos + k) % self.slots] = False
            self.priority[e, (pos + k) % self.slots] = 0.0
        self.head[e] = m + 1
        self._ready(e, m - self.n_step)

    def _ready(self, e: int, m: int) -> None:
        if m < max(0, int(self.head[e]) - self.slots + self.stack - 1):
            return
        pos = m % self.slots
        if self.is_step[e, pos] and not self.ready[e, pos]:
            self.ready[e, pos] = True
            self.priority[e, pos] = self.max_priority

    def _ready_window(self, e: int, final: int) -> None:
        """Make the steps whose window ends at the record before ``final`` sampleable."""
        for m in range(final - self.n_step, final):
            self._ready(e, m)

    # -- reading ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Records that can be sampled."""
        return int(self.ready.sum())

    def sample(
        self, batch_size: int, rng: np.random.Generator, *, alpha: float, beta: float
    ) -> dict[str, np.ndarray]:
        """A batch of n-step transitions and their importance weights.

        Returns a dict of ``obs [B, *obs_shape]``, ``action [B]``, ``reward [B]`` (n-step
        return), ``discount [B]``, ``next_obs [B, *obs_shape]`` (observation n steps later),
        ``weight [B]`` and ``index [B]`` (for ``update_priorities``).
        """
        if not self.ready.any():
            raise RuntimeError("replay has no sampleable records yet")
        key = jax.random.PRNGKey(int(rng.integers(2**31 - 1)))
        index, weight = _draw(key, self.priority, self.ready, alpha, beta, batch_size=batch_size)
        index, weight = np.asarray(index), np.asarray(weight)
        env, pos = np.divmod(index, self.slots)
        window = (pos[:, None] + np.arange(self.n_step)) % self.slots
        returns, discounts, steps = n_step_return(
            self.reward[env[:, None], window],
            self.terminated[env[:, None], window],
            self.truncated[env[:, None], window],
            self.gamma,
        )
        return {
            "obs": self._observation(env, pos),
            "action": self.action[env, pos],
            "reward": returns,
            "discount": discounts,
            "next_obs": self._observation(env, (pos + steps) % self.slots),
            "weight": weight,
            "index": index,
        }

    def _observation(self, env: np.ndarray, pos: np.ndarray) -> np.ndarray:
        if not self.stacked:
            return self.frames[env, pos]
        history = (pos[:, None] + np.arange(1 - self.stack, 1)) % self.slots
        return self.frames[env[:, None], history]

    def update_priorities(self, index: np.ndarray, priorities: np.ndarray) -> None:
        """Set the raw priorities (|TD error| + eps) of sampled records."""
        priorities = np.asarray(priorities, dtype=np.float64)
        env, pos = np.divmod(index, self.slots)
        live = self.ready[env, pos]
        self.priority[env[live], pos[live]] = priorities[live]
        if priorities.size:
            self.max_priority = np.maximum(self.max_priority, priorities.max())

    # -- checkpointing ---------------------------------------------------------------------
    _FIELDS = (
        "frames",
        "action",
        "reward",
        "terminated",
        "truncated",
        "is_step",
        "ready",
        "priority",
        "head",
        "open",
        "max_priority",
    )
