"""The fused loop's pure functions: a whole run inside ``jit`` for a JAX-native env.

One iteration does what the host loop (``dreamer.loops.host.HostLoop``) does, in the same
order and with the same functions (the actor, ``Replay.add``, ``Learner.learn`` and ``refresh``):

    act on the E observations -> the updates due (split at target syncs, each sync followed by
    the refresh of the target cache) -> step the E envs -> add the step to the replay.

``chunk`` runs up to ``chunk_length`` iterations in one ``lax.scan``; seeds are a leading axis
of ``RunState`` and every per-seed function is ``vmap``ped, while the schedule (env steps,
updates, temperature, when to refresh) is one unbatched counter shared by all seeds, so
``lax.cond`` skips work for real rather than computing both branches. ``evaluate`` plays
greedy episodes on fresh envs inside ``jit`` too. The shell (``dreamer.loops.fused``) calls
``chunk`` between log rows, evaluations and checkpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import chex
import flax
import jax
import jax.numpy as jnp

from dreamer.agents.efficientzero.config import Config
from dreamer.agents.efficientzero.learner import LearnerState, metric_names
from dreamer.agents.efficientzero.replay import ReplayState

EPISODE_FIELDS = ("return_sum", "length_sum", "count")


@flax.struct.dataclass
class RunState:
    """One seed's whole run; with a leading seed axis ``[N, ...]`` when vmapped."""

    learner: LearnerState
    replay: ReplayState
    env: Any  # [E] environment states
    obs: chex.Array  # [E, *obs] observations to act on
    key: chex.PRNGKey  # acting stream (the host loop's ``key``)
    env_key: chex.PRNGKey  # environment stream
    running_return: chex.Array  # [E] return of each running episode
    running_length: chex.Array  # [E] its length so far
    episodes: dict[str, chex.Array]  # finished training episodes since the last row (sums)
    sums: dict[str, chex.Array]  # learner metric sums since the last row


@dataclasses.dataclass(frozen=True)
class Fused:
    """The fused loop of one config and env (see the module docstring).

    - ``init(seed) -> RunState`` (one seed; vmap it over a seed vector);
    - ``chunk(states, env_steps, updates, iterations) -> (states, env_steps, updates)``;
    - ``finish(states, updates, count, env_steps) -> (states, updates)``: the updates after
      the last env step (``loop.extra_updates``);
    - ``evaluate(states, keys [N], episodes, max_steps) -> returns [N, episodes]``.
    """

    init: Callable[[chex.Array], RunState]
    chunk: Callable[..., tuple[RunState, chex.Array, chex.Array]]
    finish: Callable[..., tuple[RunState, chex.Array]]
    evaluate: Callable[..., chex.Array]
    chunk_slots: int


def temperature_schedule(cfg: Config) -> Callable[[chex.Array], chex.Array]:
    """``search.temperatures`` by ``env_steps / budget`` as a traced function."""
    temperatures = jnp.asarray(cfg.search.temperatures, jnp.float32)
    milestones = jnp.asarray(cfg.search.temperature_milestones, jnp.float32)

    def temperature(env_steps: chex.Array) -> chex.Array:
        progress = env_steps / cfg.run.env_steps
        return temperatures[jnp.sum(progress >= milestones)]

    return temperature


def make_fused(cfg: Config, agent: Any, env: Any, *, chunk_length: int) -> Fused:
    """The fused loop over ``agent`` (the builder's ``Parts``) and JAX-native ``env``."""
    learner, replay, act = agent.learner, agent.replay, agent.act
    num_envs, period = cfg.env.num_envs, cfg.optim.target_update_every
    cached = cfg.replay.reanalyze_mode == "cached"
    temperature_at = temperature_schedule(cfg)
    example_obs = jnp.zeros((1,) + agent.spaces.obs_shape, agent.spaces.obs_dtype)

    def init(seed: chex.Array) -> RunState:
        env_key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED)
        env_key, reset_key = jax.random.split(env_key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))
        zeros = lambda names: {k: jnp.zeros((), jnp.float32) for k in names}  # noqa: E731
        return RunState(
            learner=learner.init(jax.random.PRNGKey(seed), example_obs),
            replay=replay.init(),
            env=env_state,
            obs=obs.astype(agent.spaces.obs_dtype),
            key=jax.random.PRNGKey(seed + 1),
            env_key=env_key,
            running_return=jnp.zeros(num_envs, jnp.float32),
            running_length=jnp.zeros(num_envs, jnp.int32),
            episodes=zeros(EPISODE_FIELDS),
            sums=zeros(metric_names(cfg)),
        )

    # -- one seed -----------------------------------------------------------------------------
    def refresh_all(s: RunState, filled: chex.Array) -> RunState:
        count = (filled + learner.chunk_slots - 1) // learner.chunk_slots
        body = lambda j, r: learner.refresh(s.learner, r, j)  # noqa: E731
        return s.replace(replay=jax.lax.fori_loop(0, count, body, s.replay))

    def learn(s: RunState, count: chex.Array) -> RunState:
        state, rstate, sums = learner.learn(s.learner, s.replay, count)
        sums = jax.tree.map(jnp.add, s.sums, sums)
        return s.replace(learner=state, replay=rstate, sums=sums)

    def act_one(s: RunState, temperature: chex.Array) -> tuple[RunState, Any]:
        key, sub = jax.random.split(s.key)
        out = act(s.learner.variables, sub, s.obs, temperature, 1.0)
        return s.replace(key=key), out

    def step_one(s: RunState, out: Any) -> RunState:
        env_key, sub = jax.random.split(s.env_key)
        keys = jax.random.split(sub, num_envs)
        obs, env_state, reward, terminated, truncated = jax.vmap(env.step)(keys, s.env, out.action)
        rstate = learner.add_step(
            s.learner, s.replay, s.obs, out.action, reward, terminated, truncated, out.policy
        )
        done = terminated | truncated
        running_return = s.running_return + reward
        running_length = s.running_length + 1
        episodes = {
            "return_sum": s.episodes["return_sum"] + jnp.sum(jnp.where(done, running_return, 0)),
            "length_sum": s.episodes["length_sum"] + jnp.sum(jnp.where(done, running_length, 0)),
            "count": s.episodes["count"] + jnp.sum(done),
        }
        return s.replace(
            replay=rstate,
            env=env_state,
            obs=obs.astype(s.obs.dtype),
            env_key=env_key,
            running_return=jnp.where(done, 0.0, running_return),
            running_length=jnp.where(done, 0, running_length),
            episodes=jax.tree.map(lambda x: x.astype(jnp.float32), episodes),
        )

    # -- all seeds, one schedule ------------------------------------------------------------
    def learn_span(states: RunState, updates: chex.Array, count: chex.Array, filled: chex.Array):
        """``count`` updates from ``updates`` on, a refresh after each target sync."""

        def body(carry: tuple) -> tuple:
            states, updates, count = carry
            n = jnp.minimum(count, period - updates % period)
            states = jax.vmap(learn, in_axes=(0, None))(states, n)
            updates = updates + n
            sync = cached & (updates % period == 0)
            refresh = jax.vmap(refresh_all, in_axes=(0, None))
            states = jax.lax.cond(sync, refresh, lambda s, f: s, states, filled)
            return states, updates, count - n

        states, updates, _ = jax.lax.while_loop(
            lambda c: c[2] > 0, body, (states, updates, jnp.maximum(count, 0))
        )
        return states, updates

    def iteration(states: RunState, env_steps: chex.Array, updates: chex.Array) -> tuple:
        states, out = jax.vmap(act_one, in_axes=(0, None))(states, temperature_at(env_steps))
        after = env_steps + num_envs
        due = updates_by(after) - updates
        filled = jnp.minimum(after // num_envs, replay.slots)
        states, updates = learn_span(states, updates, due, filled)
        states = jax.vmap(step_one)(states, out)
        return states, after, updates

    def updates_by(env_steps: chex.Array) -> chex.Array:
        """``Config.updates_by`` in int32: floor(learning * p / q) without overflow."""
        p, q = cfg.replay_ratio_fraction
        learning = jnp.maximum(env_steps - cfg.warmup_steps, 0)
        return (learning // q) * p + (learning % q) * p // q

    def chunk(states: RunState, env_steps: chex.Array, updates: chex.Array, iterations):
        def one(carry: tuple, i: chex.Array) -> tuple:
            live = lambda c: iteration(*c)  # noqa: E731
            return jax.lax.cond(i < iterations, live, lambda c: c, carry), None

        carry = (states, jnp.asarray(env_steps, jnp.int32), jnp.asarray(updates, jnp.int32))
        carry, _ = jax.lax.scan(one, carry, jnp.arange(chunk_length))
        return carry

    def finish(states: RunState, updates: chex.Array, count: chex.Array, env_steps: chex.Array):
        filled = jnp.minimum(env_steps // num_envs, replay.slots)
        return learn_span(states, jnp.asarray(updates, jnp.int32), count, filled)

    def evaluate(
        states: RunState,
        keys: chex.PRNGKey,
        episodes: int,
        max_steps: int,
        temperature: chex.Numeric = 0.0,
        noise: chex.Numeric = 0.0,
    ):
        def one(s: RunState, key: chex.PRNGKey) -> chex.Array:
            key, reset_key = jax.random.split(key)
            obs, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, episodes))
            limit = max_steps if max_steps > 0 else 1_000_000
            zeros = jnp.zeros(episodes)

            def body(c: tuple) -> tuple:
                key, obs, env_state, ret, done, t = c
                key, act_key, env_key = jax.random.split(key, 3)
                out = act(s.learner.variables, act_key, obs.astype(s.obs.dtype), temperature, noise)
                keys = jax.random.split(env_key, episodes)
                obs, env_state, reward, term, trunc = jax.vmap(env.step)(
                    keys, env_state, out.action
                )
                ret = ret + jnp.where(done, 0.0, reward)
                return key, obs, env_state, ret, done | term | trunc, t + 1

            def cond(c: tuple) -> chex.Array:
                return ~jnp.all(c[4]) & (c[5] < limit)

            init = (key, obs, env_state, zeros, zeros.astype(bool), jnp.zeros((), jnp.int32))
            return jax.lax.while_loop(cond, body, init)[3]

        return jax.vmap(one)(states, keys)

    return Fused(init, chunk, finish, evaluate, learner.chunk_slots)
