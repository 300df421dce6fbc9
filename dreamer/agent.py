"""EfficientZero training loop: the imperative shell around the pure core.

Real environments are stepped here; everything else (search, targets, update) is jitted.
Checkpoints are taken every ``run.checkpoint_every`` env steps. At each checkpoint the
environments are reset with a seed derived from (seed, env step) and the replay closes the
running episodes, so a run resumed from a checkpoint continues exactly as the uninterrupted
run does (same data, same updates, same curve on the same machine).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from dreamer.actor import greedy_policy, make_actor
from dreamer.checkpoint import Checkpointer, CheckpointError
from dreamer.config import Config, ConfigError
from dreamer.errors import ObservationSpaceError
from dreamer.evaluation import Video, evaluate_policy, make_vector_env
from dreamer.learner import LearnerState, make_learner
from dreamer.networks import make_network
from dreamer.replay import Replay
from dreamer.runbook import EVAL_SEED_OFFSET, RunBook, crossed
from dreamer.search import temperature_at

ALGO = "efficientzero"

__all__ = ["ALGO", "Config", "evaluate", "train"]


class Spaces:
    """What the agent needs to know about an environment, read once from its spaces."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, env_id: str):
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ObservationSpaceError(
                f"{env_id} has action space {action_space}; EfficientZero needs a Discrete "
                "one. Wrap the environment to discretise its actions."
            )
        if not isinstance(observation_space, gym.spaces.Box):
            raise ObservationSpaceError(
                f"{env_id} has observation space {observation_space}; the networks take a Box "
                "of shape [D] or uint8 frame stacks [S, H, W, C]."
            )
        self.obs_shape = tuple(observation_space.shape)
        self.obs_dtype = observation_space.dtype
        self.num_actions = int(action_space.n)
        self.image = len(self.obs_shape) == 4
        if self.image and self.obs_dtype != np.uint8:
            raise ObservationSpaceError(f"{env_id}: frame stacks must be uint8.")
        # A one-frame stack [1, H, W, C] (a single-image env) is stored whole, as vectors are.
        self.frame_stack = self.obs_shape[0] if self.image else 1
        self.frame_shape = self.obs_shape[1:] if self.frame_stack > 1 else self.obs_shape
        self.frame_dtype = np.uint8 if self.image else np.float32


class _Agent:
    """Builds every part of a run from its config (networks, learner, actor, replay)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        probe = make_vector_env(cfg.env, num_envs=1, seed=cfg.run.seed, mode="train")
        self.spaces = Spaces(probe.single_observation_space, probe.single_action_space, cfg.env.id)
        probe.close()
        sp = self.spaces
        self.net = make_network(cfg.model, sp.obs_shape, sp.num_actions)
        self.init, self.update = make_learner(cfg, self.net, frame_stack=sp.frame_stack)
        self.act = make_actor(cfg, self.net)
        self.example_obs = np.zeros((1,) + sp.obs_shape, sp.obs_dtype)

    def new_learner(self) -> LearnerState:
        return self.init(jax.random.PRNGKey(self.cfg.run.seed), self.example_obs)

    def new_replay(self) -> Replay:
        sp = self.spaces
        return Replay(
            self.cfg.replay,
            num_envs=self.cfg.env.num_envs,
            frame_shape=sp.frame_shape,
            frame_dtype=sp.frame_dtype,
            num_actions=sp.num_actions,
            frame_stack=sp.frame_stack,
        )


def _env_seed(cfg: Config, env_steps: int) -> int:
    return cfg.run.seed * 1_000_003 + env_steps


class _Averages:
    """Means of scalar metrics since the last log row."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def pop(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return out


def train(cfg: Config, run_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train (or continue) an EfficientZero run in ``run_dir``; returns the summary."""
    run_dir = Path(run_dir)
    if resume and Checkpointer(run_dir).latest_step() is None:
        raise CheckpointError(
            f"{run_dir} has no complete checkpoint to resume from; start the run again "
            "with `python -m dreamer train`."
        )
    _validate(cfg)
    agent = _Agent(cfg)
    book = RunBook(ALGO, cfg, run_dir, resume=resume)
    try:
        return _train(cfg, agent, book, resume=resume)
    finally:
        book.close()


def _train(cfg: Config, agent: _Agent, book: RunBook, *, resume: bool) -> dict[str, Any]:
    run, loop = cfg.run, cfg.loop
    state, replay = agent.new_learner(), agent.new_replay()
    rng = np.random.default_rng(run.seed)
    key = jax.random.PRNGKey(run.seed + 1)
    env_steps = updates = 0
    updates_due = 0.0
    if resume:
        like = {"learner": state, "replay": replay.state(), "key": {"key": key}}
        arrays, meta = book.restore(like)
        state, key = arrays["learner"], arrays["key"]["key"]
        replay.load_state(arrays["replay"])
        rng.bit_generator.state = meta["numpy_rng"]
        env_steps, updates = meta["env_steps"], meta["updates"]
        updates_due = meta["updates_due"]
        print(f"resuming {book.run_dir} from env step {env_steps} ({updates} updates)")

    budget = run.env_steps
    age_unit = cfg.replay.off_policy_age_ratio * budget
    timing = {"act": 0.0, "env": 0.0, "learn": 0.0}  # seconds, reported in the summary
    averages = _Averages()
    venv = make_vector_env(cfg.env, num_envs=cfg.env.num_envs, seed=0, mode="train")
    obs, _ = venv.reset(seed=_env_seed(cfg, env_steps))
    book.start_progress(env_steps)

    def learn(count: int) -> None:
        nonlocal state, updates
        for _ in range(count):
            progress = min(1.0, updates / max(cfg.total_updates, 1))
            beta = cfg.replay.priority_beta + (1 - cfg.replay.priority_beta) * progress
            batch, index = replay.sample(rng, beta=beta, age_unit=age_unit)
            state, metrics = agent.update(state, batch)
            metrics = jax.device_get(metrics)
            book.check_finite(bool(metrics.pop("finite")), env_steps)
            replay.update_priorities(index, metrics.pop("priorities"))
            averages.add(metrics)
            updates += 1

    def evaluate(episodes: int) -> list[float]:
        policy = greedy_policy(agent.act, state.variables, jax.random.PRNGKey(env_steps))
        returns = book.evaluate(policy, env_steps, episodes)
        print(
            f"[{env_steps:>7d} steps {updates:>6d} updates {book.wall_seconds():6.0f}s] "
            f"eval return {np.mean(returns):.1f}",
            flush=True,
        )
        return returns

    def save() -> None:
        replay.end_all_episodes()
        items = {"learner": state, "replay": replay.state(), "key": {"key": key}}
        extra = {"updates_due": updates_due, "numpy_rng": rng.bit_generator.state}
        book.save(env_steps, updates, items, extra)

    try:
        while env_steps < budget:
            temperature = temperature_at(cfg.search, env_steps / budget)
            key, sub = jax.random.split(key)
            tick = time.perf_counter()
            out = jax.device_get(agent.act(state.variables, sub, obs, temperature, 1.0))
            timing["act"] += time.perf_counter() - tick
            tick = time.perf_counter()
            next_obs, reward, terminated, truncated, _ = venv.step(out.action)
            timing["env"] += time.perf_counter() - tick
            replay.add(obs, out.action, reward, terminated, truncated, out.policy)
            book.step_rewards(reward, terminated | truncated)
            obs = next_obs
            before, env_steps = env_steps, env_steps + cfg.env.num_envs
            if env_steps > loop.warmup_steps:
                updates_due += cfg.env.num_envs * loop.replay_ratio
                tick = time.perf_counter()
                learn(int(updates_due))
                timing["learn"] += time.perf_counter() - tick
                updates_due -= int(updates_due)
            if env_steps >= budget:
                break
            evaluated = crossed(before, env_steps, run.eval_every)
            if evaluated:
                evaluate(run.eval_episodes)
            if evaluated or crossed(before, env_steps, run.log_every):
                book.write_row(env_steps, updates, averages.pop(), evaluated=evaluated)
            if crossed(before, env_steps, run.checkpoint_every):
                save()
                obs, _ = venv.reset(seed=_env_seed(cfg, env_steps))
        if updates < cfg.total_updates:
            learn(cfg.total_updates - updates)  # loop.extra_updates after the last env step
        returns = evaluate(run.final_eval_episodes)
        book.write_row(env_steps, updates, averages.pop(), evaluated=True)
        save()
    finally:
        venv.close()
    phases = {k: round(v, 2) for k, v in timing.items()}
    return book.finish(env_steps, updates, returns, {"seconds_by_phase": phases})


def evaluate(
    cfg: Config, run_dir: str | Path, *, episodes: int, video: Video | None = None
) -> list[float]:
    """Greedy evaluation of the newest checkpoint in ``run_dir``, recorded if ``video``."""
    agent = _Agent(cfg)
    ckpt = Checkpointer(run_dir, keep=cfg.run.keep_checkpoints)
    arrays, meta = ckpt.restore({"learner": agent.new_learner()})
    ckpt.close()
    steps = int(meta["env_steps"])
    policy = greedy_policy(agent.act, arrays["learner"].variables, jax.random.PRNGKey(steps))
    seed = cfg.run.seed + EVAL_SEED_OFFSET + steps
    return evaluate_policy(cfg.env, policy, episodes=episodes, seed=seed, video=video)


def _validate(cfg: Config) -> None:
    if cfg.loop.warmup_steps >= cfg.run.env_steps and cfg.loop.extra_updates == 0:
        raise ConfigError(
            f"loop.warmup_steps={cfg.loop.warmup_steps} >= run.env_steps={cfg.run.env_steps}: "
            "the agent would never learn. Lower loop.warmup_steps or raise --steps."
        )
