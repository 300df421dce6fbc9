"""Prioritised sequence replay that stores every frame once.

Storage is one ring per parallel environment, ``[E, C, ...]`` with ``C = capacity // E``, so
each environment's stream stays contiguous and a sequence is a slice of it. Only the newest
frame of each (stacked) observation is stored; a stack ``o_{t-S+1..t}`` is rebuilt from the
ring, with frames before an episode's start replaced by the episode's first frame (the same
padding the environments use at reset). Memory is allocated once and stays flat.

Sampling returns a ``Batch`` of raw sequences (numpy, host); value, value-prefix and policy
targets are computed from it on device by ``dreamer.targets``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import numpy as np

from dreamer.config import ConfigError, ReplayConfig


class Distribution(NamedTuple):
    """Proportional prioritisation over flattened records (Schaul et al. 2016)."""

    probs: np.ndarray  # [R] P(i) ~ priority ** alpha over eligible records, 0 elsewhere
    cdf: np.ndarray  # [R] cumulative P, ending at exactly 1
    count: int  # eligible records N


def distribution(priorities: np.ndarray, eligible: np.ndarray, alpha: float) -> Distribution:
    """Sampling distribution of ``priorities ** alpha`` over the ``eligible`` records (alpha 0:
    uniform). At least one record must be eligible."""
    p = np.where(eligible, priorities, 0.0) ** alpha
    p = np.where(eligible, p, 0.0).ravel()
    probs = p / p.sum()
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    return Distribution(probs, cdf, int(eligible.sum()))


def sample_proportional(
    dist: Distribution, batch_size: int, rng: np.random.Generator, *, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Flat record indices drawn from ``dist`` (with replacement; the same draws as
    ``rng.choice(p=dist.probs)``), and their importance weights ``(N P(i)) ** -beta``
    normalised by the batch maximum."""
    flat = dist.cdf.searchsorted(rng.random(batch_size), side="right")
    weights = (dist.count * dist.probs[flat]) ** (-beta)
    return flat, (weights / weights.max()).astype(np.float32)


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


@chex.dataclass(frozen=True)
class Batch:
    """A batch of sequences starting at sampled time t (offsets relative to t).

    W = S - 1 + K + n + 1 frames cover observations o_t .. o_{t+K+n} with S-frame stacks.
    """

    frames: np.ndarray  # [B, W, *frame] frames t-S+1 .. t+K+n
    actions: np.ndarray  # [B, K+n] int32 a_t .. a_{t+K+n-1} (random beyond the episode end)
    rewards: np.ndarray  # [B, K+n] float32 r_t .. (0 beyond the episode end)
    policies: np.ndarray  # [B, K+1, A] stored search policies at t .. t+K (0 beyond the end)
    last_offset: np.ndarray  # [B] int32: offset of the episode's last stored step (or newest)
    terminal: np.ndarray  # [B] bool: the episode ended in a terminal state after last_offset
    td_steps: np.ndarray  # [B] int32 n-step horizon per sample (off-policy correction)
    weights: np.ndarray  # [B] float32 importance-sampling weights, max 1


class Replay(ArrayState):
    """Host-side ring buffers; ``add`` one step of all envs, ``sample`` sequences."""

    def __init__(
        self,
        cfg: ReplayConfig,
        *,
        num_envs: int,
        frame_shape: tuple[int, ...],
        frame_dtype: Any,
        num_actions: int,
        frame_stack: int,
    ):
        self.cfg = cfg
        self.num_envs = num_envs
        self.slots = cfg.capacity // num_envs
        self.frame_stack = frame_stack
        self.num_actions = num_actions
        shape = (num_envs, self.slots)
        self.frames = np.zeros(shape + tuple(frame_shape), frame_dtype)
        self.actions = np.zeros(shape, np.int32)
        self.rewards = np.zeros(shape, np.float32)
        self.policies = np.zeros(shape + (num_actions,), np.float32)
        self.priorities = np.zeros(shape, np.float64)
        self.step_id = np.full(shape, -1, np.int64)  # env-local step number held by the slot
        self.episode_start = np.zeros(shape, np.int64)
        self.episode_end = np.full(shape, -1, np.int64)  # last step of the episode; -1 ongoing
        self.terminal = np.zeros(shape, bool)  # the episode ended in a terminal state
        self.inserted_at = np.zeros(shape, np.int64)  # total transitions when added
        self.count = np.zeros(num_envs, np.int64)  # steps written per env
        self.current_start = np.zeros(num_envs, np.int64)
        self.max_priority = np.ones((), np.float64)

    @property
    def size(self) -> int:
        return int(np.minimum(self.count, self.slots).sum())

    @property
    def total_added(self) -> int:
        return int(self.count.sum())

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        policies: np.ndarray,
    ) -> None:
        """One step of every env: observation o_t the action was chosen at, a_t, r_t, and
        whether the episode ended with this step in a terminal state (value 0 afterwards) or
        was cut short (truncated: later targets bootstrap from the last stored observation).
        """
        envs = np.arange(self.num_envs)
        pos = self.count % self.slots
        self.frames[envs, pos] = obs[:, -1] if self.frame_stack > 1 else obs
        self.actions[envs, pos] = actions
        self.rewards[envs, pos] = rewards
        self.policies[envs, pos] = policies
        self.priorities[envs, pos] = self.max_priority
        self.step_id[envs, pos] = self.count
        self.episode_start[envs, pos] = self.current_start
        self.episode_end[envs, pos] = -1
        self.terminal[envs, pos] = False
        self.inserted_at[envs, pos] = self.total_added + envs
        self.count += 1
        for e in np.flatnonzero(terminated | truncated):
            self._close_episode(e, bool(terminated[e]))

    def end_all_episodes(self) -> None:
        """Truncate every running episode (the environments are about to be reset)."""
        for e in range(self.num_envs):
            if self.current_start[e] < self.count[e]:
                self._close_episode(e, terminal=False)

    def _close_episode(self, e: int, terminal: bool) -> None:
        last = self.count[e] - 1
        first = max(self.current_start[e], self.count[e] - self.slots)
        slots = np.arange(first, last + 1) % self.slots
        self.episode_end[e, slots] = last
        self.terminal[e, slots] = terminal
        self.current_start[e] = self.count[e]

    def sample(
        self, rng: np.random.Generator, *, beta: float, age_unit: float | None = None
    ) -> tuple[Batch, tuple[np.ndarray, np.ndarray]]:
        """Sample a batch by priority; returns it with the (env, slot) indices it came from.

        ``age_unit``: with off-policy correction, the n-step horizon shrinks by one for every
        ``age_unit`` transitions the sample is older than the newest data (min 1).
        """
        cfg = self.cfg
        k, n, s = cfg.unroll_steps, cfg.td_steps, self.frame_stack
        newest = (self.count - 1)[:, None]
        last_all = np.where(self.episode_end >= 0, self.episode_end, newest)
        # Past a terminal the state is absorbing (known); past a cut or the newest step it is
        # unknown, so the K unrolled steps must lie inside the stored data.
        eligible = (self.step_id >= 0) & (self.terminal | (self.step_id + k <= last_all))
        if not eligible.any():
            raise ValueError("replay has no complete sequence to sample yet; add more steps.")
        dist = distribution(self.priorities, eligible, cfg.priority_alpha)
        flat, weights = sample_proportional(dist, cfg.batch_size, rng, beta=beta)
        env, pos = np.divmod(flat, self.slots)

        t = self.step_id[env, pos]
        start = self.episode_start[env, pos]
        end = self.episode_end[env, pos]
        terminal = self.terminal[env, pos]
        last = np.where(end >= 0, end, self.count[env] - 1)
        oldest = np.maximum(start, self.count[env] - self.slots)

        frame_offsets = np.arange(-(s - 1), k + n + 1)
        u = np.clip(t[:, None] + frame_offsets, oldest[:, None], last[:, None])
        frames = self.frames[env[:, None], u % self.slots]

        step_offsets = np.arange(k + n)
        u = t[:, None] + step_offsets
        inside = u <= last[:, None]
        slot = np.minimum(u, last[:, None]) % self.slots
        random_actions = rng.integers(0, self.num_actions, size=u.shape)
        actions = np.where(inside, self.actions[env[:, None], slot], random_actions)
        rewards = np.where(inside, self.rewards[env[:, None], slot], 0.0)
        policies = self.policies[env[:, None], slot[:, : k + 1]]
        policies = policies * inside[:, : k + 1, None]

        td = np.full(cfg.batch_size, n, np.int64)
        if cfg.off_policy_correction and age_unit:
            age = self.total_added - self.inserted_at[env, pos]
            td = np.clip(n - (age // max(int(age_unit), 1)), 1, n)
        batch = Batch(
            frames=frames,
            actions=actions.astype(np.int32),
            rewards=rewards.astype(np.float32),
            policies=policies.astype(np.float32),
            last_offset=np.minimum(last - t, np.iinfo(np.int32).max).astype(np.int32),
            terminal=terminal,
            td_steps=td.astype(np.int32),
            weights=weights,
        )
        return batch, (env, pos)

    def update_priorities(self, index: tuple[np.ndarray, np.ndarray], priorities: Any) -> None:
        priorities = np.asarray(priorities, np.float64)
        self.priorities[index] = priorities
        self.max_priority = np.maximum(self.max_priority, priorities.max())

    # -- checkpointing -----------------------------------------------------------------------
    _FIELDS = (
        "frames",
        "actions",
        "rewards",
        "policies",
        "priorities",
        "step_id",
        "episode_start",
        "episode_end",
        "terminal",
        "inserted_at",
        "count",
        "current_start",
        "max_priority",
    )
