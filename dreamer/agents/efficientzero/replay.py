"""Prioritised sequence replay on the device, as pure functions of a ``ReplayState``.

Storage is one ring per parallel environment, ``[E, C, ...]`` with ``C = capacity // E``, so
each environment's stream stays contiguous and a sequence is a slice of it. Only the newest
frame of each (stacked) observation is stored; a stack ``o_{t-S+1..t}`` is rebuilt from the
ring, with frames before an episode's start replaced by the episode's first frame (the same
padding the environments use at reset). Memory is allocated once and stays flat.

Every function here is pure and jittable (``add``, ``end_episodes``, ``sample``,
``set_priorities``, ``observations``): the host loop jits them one by one, the learner samples
inside its scanned update, and the fused loop runs them inside one ``jit`` with seeds
``vmap``ped. Per env step only the new step crosses from host to device.

The state also holds the *target cache* (``values``, ``searched_values``, ``reanalysed``):
the target network's value, the root value of its search and its reanalysed search policy of
every stored observation, filled by the learner (``dreamer.agents.efficientzero.learner``) and
gathered into each sampled batch.
"""

from __future__ import annotations

from typing import Any

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np

from dreamer.agents.efficientzero.config import ConfigError, ReplayConfig
from dreamer.core import priorities as P


@flax.struct.dataclass
class ReplayState:
    """Ring buffers ``[E, C, ...]`` (E envs, C slots each) and per-env counters."""

    frames: chex.Array  # [E, C, *frame] newest frame of each observation
    actions: chex.Array  # [E, C] int32 a_t
    rewards: chex.Array  # [E, C] float32 r_t
    policies: chex.Array  # [E, C, A] float32 acting search policy at o_t
    priorities: chex.Array  # [E, C] float32
    step_id: chex.Array  # [E, C] int32 env-local step number held by the slot (-1: empty)
    episode_start: chex.Array  # [E, C] int32 first step of the slot's episode
    done: chex.Array  # [E, C] bool: the episode ended with this step
    terminal: chex.Array  # [E, C] bool: ... in a terminal state (else it was cut short)
    inserted_at: chex.Array  # [E, C] int32 transitions in the replay when added
    values: chex.Array  # [E, C] float32 target cache: target network's value v'(o_t)
    searched_values: chex.Array  # [E, C] float32 target cache: its search's root value at o_t
    reanalysed: chex.Array  # [E, C, A] float32 target cache: reanalysed policy at o_t
    count: chex.Array  # [E] int32 steps written per env
    current_start: chex.Array  # [E] int32 first step of each env's running episode

    @property
    def total_added(self) -> chex.Array:
        return self.count.sum()


@chex.dataclass(frozen=True)
class Batch:
    """A batch of sequences starting at sampled time t (offsets relative to t).

    W = S - 1 + K + n + 1 frames cover observations o_t .. o_{t+K+n} with S-frame stacks.
    ``sample`` fills every field; a hand-made batch may leave out the last two (None), which
    only the search and mixed value targets read.
    """

    frames: chex.Array  # [B, W, *frame] frames t-S+1 .. t+K+n
    actions: chex.Array  # [B, K+n] int32 a_t .. a_{t+K+n-1} (random beyond the episode end)
    rewards: chex.Array  # [B, K+n] float32 r_t .. (0 beyond the episode end)
    policies: chex.Array  # [B, K+1, A] stored search policies at t .. t+K (0 beyond the end)
    reanalysed: chex.Array  # [B, K+1, A] cached reanalysed policies at t .. t+K (0 beyond)
    values: chex.Array  # [B, K+n+1] cached target values at t .. t+K+n (clipped to the end)
    last_offset: chex.Array  # [B] int32 offset of the episode's last step in the window
    terminal: chex.Array  # [B] bool: the episode ended in a terminal state after last_offset
    td_steps: chex.Array  # [B] int32 n-step horizon per sample (off-policy correction)
    weights: chex.Array  # [B] float32 importance-sampling weights, max 1
    searched_values: chex.Array | None = None  # [B, K+1] cached root values at t .. t+K (clipped)
    age: chex.Array | None = None  # [B] int32 transitions added to the replay since the sample


Index = tuple[chex.Array, chex.Array]  # (env [B], slot [B]) of sampled records


class Replay:
    """The static shape of a replay and its pure functions (see the module docstring).

    ``age_unit``: with off-policy correction the n-step horizon shrinks by one for every
    ``age_unit`` transitions a sample is older than the newest data (EfficientZero: 30% of the
    env-step budget); 0 turns the correction off.
    """

    def __init__(
        self,
        cfg: ReplayConfig,
        *,
        num_envs: int,
        frame_shape: tuple[int, ...],
        frame_dtype: Any,
        num_actions: int,
        frame_stack: int,
        age_unit: float = 0.0,
    ):
        self.cfg = cfg
        self.num_envs = num_envs
        self.slots = cfg.capacity // num_envs
        self.frame_shape = tuple(frame_shape)
        self.frame_dtype = np.dtype(frame_dtype)
        self.num_actions = num_actions
        self.frame_stack = frame_stack
        self.age_unit = float(age_unit) if cfg.off_policy_correction else 0.0
        needed = cfg.unroll_steps + cfg.td_steps + frame_stack + 1
        if self.slots < needed:
            raise ConfigError(
                f"replay.capacity={cfg.capacity} gives {self.slots} slots per environment "
                f"({num_envs} envs); a sequence needs {needed}. Raise replay.capacity to at "
                f"least {needed * num_envs}."
            )

    # -- construction -------------------------------------------------------------------------
    def init(self) -> ReplayState:
        shape = (self.num_envs, self.slots)
        a = self.num_actions
        return ReplayState(
            frames=jnp.zeros(shape + self.frame_shape, self.frame_dtype),
            actions=jnp.zeros(shape, jnp.int32),
            rewards=jnp.zeros(shape, jnp.float32),
            policies=jnp.zeros(shape + (a,), jnp.float32),
            priorities=jnp.zeros(shape, jnp.float32),
            step_id=jnp.full(shape, -1, jnp.int32),
            episode_start=jnp.zeros(shape, jnp.int32),
            done=jnp.zeros(shape, bool),
            terminal=jnp.zeros(shape, bool),
            inserted_at=jnp.zeros(shape, jnp.int32),
            values=jnp.zeros(shape, jnp.float32),
            searched_values=jnp.zeros(shape, jnp.float32),
            reanalysed=jnp.zeros(shape + (a,), jnp.float32),
            count=jnp.zeros(self.num_envs, jnp.int32),
            current_start=jnp.zeros(self.num_envs, jnp.int32),
        )

    def size(self, state: ReplayState) -> chex.Array:
        return jnp.minimum(state.count, self.slots).sum()

    # -- writing ------------------------------------------------------------------------------
    def add(
        self,
        state: ReplayState,
        obs: chex.Array,
        actions: chex.Array,
        rewards: chex.Array,
        terminated: chex.Array,
        truncated: chex.Array,
        policies: chex.Array,
        values: chex.Array,
        searched_values: chex.Array | None = None,
    ) -> ReplayState:
        """One step of every env: the observation o_t the action was chosen at ``[E, *obs]``,
        a_t, r_t, and whether the episode ended with this step in a terminal state (value 0
        afterwards) or was cut short (later targets bootstrap from the last stored
        observation). ``policies`` ``[E, A]`` is the acting search's policy and ``values``
        ``[E]`` the target network's value of o_t; they fill the target cache until the next
        refresh, with ``searched_values`` ``[E]`` the root value of a search at o_t (``values``
        when None: a new step is not searched until then). New steps get the largest
        priority in the replay now (1 while it is empty), as EfficientZero's buffer does."""
        envs = jnp.arange(self.num_envs)
        pos = state.count % self.slots
        frame = obs[:, -1] if self.frame_stack > 1 else obs
        ended = jnp.asarray(terminated) | jnp.asarray(truncated)
        at = lambda field, value: field.at[envs, pos].set(value)  # noqa: E731
        count = state.count + 1
        return state.replace(
            frames=at(state.frames, frame.astype(self.frame_dtype)),
            actions=at(state.actions, jnp.asarray(actions, jnp.int32)),
            rewards=at(state.rewards, jnp.asarray(rewards, jnp.float32)),
            policies=at(state.policies, jnp.asarray(policies, jnp.float32)),
            priorities=at(state.priorities, self.max_priority(state)),
            step_id=at(state.step_id, state.count),
            episode_start=at(state.episode_start, state.current_start),
            done=at(state.done, ended),
            terminal=at(state.terminal, jnp.asarray(terminated)),
            inserted_at=at(state.inserted_at, state.total_added + envs),
            values=at(state.values, jnp.asarray(values, jnp.float32)),
            searched_values=at(
                state.searched_values,
                jnp.asarray(values if searched_values is None else searched_values, jnp.float32),
            ),
            reanalysed=at(state.reanalysed, jnp.asarray(policies, jnp.float32)),
            count=count,
            current_start=jnp.where(ended, count, state.current_start),
        )

    def end_episodes(self, state: ReplayState) -> ReplayState:
        """Cut every running episode at its newest step (the environments are about to be
        reset): its targets bootstrap there, it is not treated as terminal."""
        envs = jnp.arange(self.num_envs)
        running = state.current_start < state.count
        newest = (state.count - 1) % self.slots
        done = state.done.at[envs, newest].set(state.done[envs, newest] | running)
        return state.replace(done=done, current_start=state.count)

    def set_priorities(
        self, state: ReplayState, index: Index, priorities: chex.Array
    ) -> ReplayState:
        priorities = jnp.asarray(priorities, jnp.float32)
        return state.replace(priorities=state.priorities.at[index].set(priorities))

    def max_priority(self, state: ReplayState) -> chex.Array:
        """``[]`` the largest priority of a stored step, 1 while the replay is empty."""
        stored = state.step_id >= 0
        return jnp.where(stored.any(), jnp.max(jnp.where(stored, state.priorities, 0.0)), 1.0)

    # -- reading ------------------------------------------------------------------------------
    def eligible(self, state: ReplayState) -> chex.Array:
        """``[E, C]`` bool: the K unrolled steps from the slot lie inside stored data of one
        episode, or the episode ends in a terminal state within them (absorbing, known)."""
        k = self.cfg.unroll_steps
        newest = (state.count - 1)[:, None]
        step = state.step_id
        found = jnp.zeros_like(state.done)
        ends_terminal = jnp.zeros_like(state.done)
        for j in range(k):
            shifted = lambda x: jnp.roll(x, -j, axis=1)  # noqa: B023, E731 slot of step + j
            end_here = shifted(state.done) & (step + j <= newest) & ~found
            ends_terminal = ends_terminal | (end_here & shifted(state.terminal))
            found = found | end_here
        inside = ~found & (step + k <= newest)
        return (step >= 0) & (ends_terminal | inside)

    def sample(
        self, state: ReplayState, key: chex.PRNGKey, *, beta: chex.Numeric
    ) -> tuple[Batch, Index]:
        """A batch by priority, with the (env, slot) index it came from. Needs at least one
        eligible record (``eligible``); the shell starts learning only after warm-up."""
        cfg = self.cfg
        k, n, s = cfg.unroll_steps, cfg.td_steps, self.frame_stack
        key_draw, key_actions = jax.random.split(key)
        probs, count = P.probabilities(state.priorities, self.eligible(state), cfg.priority_alpha)
        flat, weights = P.sample(key_draw, probs, count, cfg.batch_size, beta=beta)
        env, pos = jnp.divmod(flat, self.slots)
        t = state.step_id[env, pos]
        newest = state.count[env] - 1
        ring = lambda field, steps: field[env[:, None], steps % self.slots]  # noqa: E731

        # The episode's end inside the window t .. t+K+n: the first stored step marked done.
        window = t[:, None] + jnp.arange(k + n + 1)
        ends = ring(state.done, window) & (window <= newest[:, None])
        has_end = ends.any(axis=1)
        first_end = jnp.argmax(ends, axis=1)
        last_offset = jnp.where(has_end, first_end, newest - t)
        last = t + last_offset
        terminal = has_end & state.terminal[env, (t + first_end) % self.slots]

        oldest = jnp.maximum(state.episode_start[env, pos], state.count[env] - self.slots)
        frame_steps = jnp.clip(
            t[:, None] + jnp.arange(-(s - 1), k + n + 1), oldest[:, None], last[:, None]
        )
        steps = t[:, None] + jnp.arange(k + n)
        inside = steps <= last[:, None]
        clipped = jnp.minimum(steps, last[:, None])
        random_actions = jax.random.randint(key_actions, steps.shape, 0, self.num_actions)
        inside_k = inside[:, : k + 1, None]
        td = jnp.full(cfg.batch_size, n, jnp.int32)
        age = (state.total_added - state.inserted_at[env, pos]).astype(jnp.int32)
        if self.age_unit > 0:
            td = jnp.clip(n - age // max(int(self.age_unit), 1), 1, n).astype(jnp.int32)
        batch = Batch(
            frames=ring(state.frames, frame_steps),
            actions=jnp.where(inside, ring(state.actions, clipped), random_actions),
            rewards=jnp.where(inside, ring(state.rewards, clipped), 0.0),
            policies=ring(state.policies, clipped[:, : k + 1]) * inside_k,
            reanalysed=ring(state.reanalysed, clipped[:, : k + 1]) * inside_k,
            values=ring(state.values, jnp.minimum(window, last[:, None])),
            searched_values=ring(state.searched_values, clipped[:, : k + 1]),
            last_offset=last_offset.astype(jnp.int32),
            terminal=terminal,
            td_steps=td,
            weights=weights,
            age=age,
        )
        return batch, (env, pos)

    def observations(self, state: ReplayState, env: chex.Array, pos: chex.Array) -> chex.Array:
        """Observations stored at slots ``(env, pos)`` ``[N]``: stacks rebuilt from the ring
        ``[N, S, *frame]`` (``[N, *frame]`` without stacking), padded at episode starts."""
        t = state.step_id[env, pos]
        if self.frame_stack == 1:
            return state.frames[env, pos]
        oldest = jnp.maximum(state.episode_start[env, pos], state.count[env] - self.slots)
        steps = jnp.maximum(t[:, None] + jnp.arange(-(self.frame_stack - 1), 1), oldest[:, None])
        return state.frames[env[:, None], steps % self.slots]

    def check_restored(self, state: ReplayState) -> None:
        """Raise a ``ConfigError`` if a restored state does not fit this replay's shapes."""
        like = jax.eval_shape(self.init)
        for name, want in zip(ReplayState.__dataclass_fields__, jax.tree.leaves(like), strict=True):
            got = getattr(state, name)
            if tuple(got.shape) != tuple(want.shape):
                raise ConfigError(
                    f"checkpointed replay field {name} has shape {tuple(got.shape)}, this "
                    f"config needs {tuple(want.shape)}: resume with the run's own config.json."
                )
