"""EfficientZero training loop: the imperative shell around the pure core.

Real environments are stepped here; everything else (search, targets, update) is jitted.
Checkpoints are taken every ``run.checkpoint_every`` env steps. At each checkpoint the
environments are reset with a seed derived from (seed, env step) and the replay closes the
running episodes, so a run resumed from a checkpoint continues exactly as the uninterrupted
run does (same data, same updates, same curve on the same machine).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from dreamer.actor import greedy_policy, make_actor
from dreamer.checkpoint import Checkpointer, CheckpointError
from dreamer.config import Config, ConfigError, to_dict
from dreamer.errors import NonFiniteLossError, ObservationSpaceError
from dreamer.evaluation import evaluate_policy, make_vector_env
from dreamer.learner import LearnerState, make_learner
from dreamer.networks import make_network
from dreamer.progress import Progress
from dreamer.replay import Replay
from dreamer.runlog import RunLog, summarize
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
        self.frame_stack = self.obs_shape[0] if self.image else 1
        self.frame_shape = self.obs_shape[1:] if self.image else self.obs_shape
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

    def evaluate(self, variables: Any, *, episodes: int, seed: int) -> list[float]:
        policy = greedy_policy(self.act, variables, jax.random.PRNGKey(seed))
        return evaluate_policy(self.cfg.env, policy, episodes=episodes, seed=seed)


def _crossed(before: int, after: int, every: int) -> bool:
    return every > 0 and after // every > before // every


def _env_seed(cfg: Config, env_steps: int) -> int:
    return cfg.run.seed * 1_000_003 + env_steps


def _eval_seed(cfg: Config, env_steps: int) -> int:
    return 10_000_019 + cfg.run.seed * 1_000_003 + env_steps


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
    ckpt = Checkpointer(run_dir, keep=cfg.run.keep_checkpoints)
    if resume and ckpt.latest_step() is None:
        raise CheckpointError(
            f"{run_dir} has no complete checkpoint to resume from; start the run again "
            "with `python -m dreamer train`."
        )
    _validate(cfg)
    agent = _Agent(cfg)
    log = RunLog(run_dir)
    state, replay = agent.new_learner(), agent.new_replay()
    rng = np.random.default_rng(cfg.run.seed)
    key = jax.random.PRNGKey(cfg.run.seed + 1)
    env_steps = updates = 0
    wall_offset, updates_due = 0.0, 0.0
    eval_curve: list[tuple[int, float]] = []
    if resume:
        step = ckpt.latest_step()
        arrays, meta = ckpt.restore(
            {"learner": state, "replay": replay.state(), "key": {"key": key}}, step=step
        )
        state, key = arrays["learner"], arrays["key"]["key"]
        replay.load_state(arrays["replay"])
        rng.bit_generator.state = meta["numpy_rng"]
        env_steps, updates = meta["env_steps"], meta["updates"]
        wall_offset, updates_due = meta["wall_seconds"], meta["updates_due"]
        eval_curve = [tuple(x) for x in meta["eval_curve"]]
        log.truncate_after(env_steps)
        print(f"resuming {run_dir} from env step {env_steps} ({updates} updates)")
    else:
        log.write_config(ALGO, to_dict(cfg))

    run, loop = cfg.run, cfg.loop
    budget = run.env_steps
    start = time.time() - wall_offset
    age_unit = cfg.replay.off_policy_age_ratio * budget
    venv = make_vector_env(cfg.env, num_envs=cfg.env.num_envs, seed=0, mode="train")
    obs, _ = venv.reset(seed=_env_seed(cfg, env_steps))
    running = np.zeros(cfg.env.num_envs)
    finished: list[float] = []
    averages = _Averages()
    progress = Progress(budget, env_steps, enabled=run.progress, desc=f"{ALGO} {cfg.env.id}")
    last_eval: float | None = eval_curve[-1][1] if eval_curve else None
    timing = {"act": 0.0, "env": 0.0, "learn": 0.0}  # seconds, reported in the summary

    def learn(count: int) -> None:
        nonlocal state, updates
        for _ in range(count):
            beta = cfg.replay.priority_beta + (1 - cfg.replay.priority_beta) * min(
                1.0, updates / max(cfg.total_updates, 1)
            )
            batch, index = replay.sample(rng, beta=beta, age_unit=age_unit)
            state, metrics = agent.update(state, batch)
            metrics = jax.device_get(metrics)
            if not metrics["finite"]:
                raise NonFiniteLossError(
                    f"loss became non-finite at update {updates + 1} (env step {env_steps}); "
                    "that update was not applied and the last good checkpoint is kept. Lower "
                    "optim.learning_rate or optim.max_grad_norm, then resume or restart."
                )
            replay.update_priorities(index, metrics.pop("priorities"))
            metrics.pop("finite")
            averages.add(metrics)
            updates += 1

    def save() -> None:
        replay.end_all_episodes()
        meta = {
            "env_steps": env_steps,
            "updates": updates,
            "wall_seconds": time.time() - start,
            "updates_due": updates_due,
            "numpy_rng": rng.bit_generator.state,
            "eval_curve": eval_curve,
        }
        items = {"learner": state, "replay": replay.state(), "key": {"key": key}}
        ckpt.save(env_steps, items, meta)

    try:
        for _ in _steps(env_steps, budget, cfg.env.num_envs):
            temperature = temperature_at(cfg.search, env_steps / budget)
            key, sub = jax.random.split(key)
            tick = time.time()
            out = jax.device_get(agent.act(state.variables, sub, obs, temperature, 1.0))
            timing["act"] += time.time() - tick
            tick = time.time()
            next_obs, reward, terminated, truncated, _ = venv.step(out.action)
            timing["env"] += time.time() - tick
            ended = terminated | truncated
            replay.add(obs, out.action, reward, terminated, truncated, out.policy)
            running += reward
            for i in np.flatnonzero(ended):
                finished.append(float(running[i]))
                running[i] = 0.0
            obs = next_obs
            before, env_steps = env_steps, env_steps + cfg.env.num_envs
            if env_steps > loop.warmup_steps:
                updates_due += cfg.env.num_envs * loop.replay_ratio
                tick = time.time()
                learn(int(updates_due))
                timing["learn"] += time.time() - tick
                updates_due -= int(updates_due)

            row_eval = None
            if _crossed(before, env_steps, run.eval_every) and env_steps < budget:
                variables = state.variables
                returns = agent.evaluate(
                    variables, episodes=run.eval_episodes, seed=_eval_seed(cfg, env_steps)
                )
                row_eval = last_eval = float(np.mean(returns))
                eval_curve.append((env_steps, row_eval))
            if env_steps < budget and (
                _crossed(before, env_steps, run.log_every) or row_eval is not None
            ):
                _log_row(log, env_steps, updates, time.time() - start, finished, row_eval, averages)
                finished = []
            progress.update(cfg.env.num_envs, eval=last_eval)
            if _crossed(before, env_steps, run.checkpoint_every) and env_steps < budget:
                save()
                obs, _ = venv.reset(seed=_env_seed(cfg, env_steps))
                running[:] = 0.0
        learn(loop.extra_updates if updates < cfg.total_updates else 0)
        returns = agent.evaluate(
            state.variables, episodes=run.final_eval_episodes, seed=_eval_seed(cfg, env_steps)
        )
        eval_curve.append((env_steps, float(np.mean(returns))))
        wall = time.time() - start
        _log_row(log, env_steps, updates, wall, finished, eval_curve[-1][1], averages)
        save()
    finally:
        progress.close()
        venv.close()
        log.close()
        ckpt.close()
    summary = summarize(
        algo=ALGO,
        env_id=cfg.env.id,
        seed=run.seed,
        env_steps=env_steps,
        updates=updates,
        wall_seconds=wall,
        eval_curve=eval_curve,
        final_eval_returns=returns,
        config=to_dict(cfg),
    )
    summary["seconds_by_phase"] = {k: round(v, 2) for k, v in timing.items()}
    RunLog(run_dir, tensorboard=False).write_summary(summary)
    return summary


def _steps(env_steps: int, budget: int, num_envs: int) -> Iterator[int]:
    while env_steps < budget:
        yield env_steps
        env_steps += num_envs


def _log_row(
    log: RunLog,
    env_steps: int,
    updates: int,
    wall: float,
    finished: list[float],
    eval_return: float | None,
    averages: _Averages,
) -> None:
    row = {
        "env_steps": env_steps,
        "updates": updates,
        "wall_seconds": round(wall, 2),
        "episode_return_mean": float(np.mean(finished)) if finished else None,
        "eval_return_mean": eval_return,
        "SPS": env_steps / max(wall, 1e-9),
        **averages.pop(),
    }
    log.log(row)
    if eval_return is not None:
        print(
            f"[{env_steps:>7d} steps {updates:>6d} updates {wall:6.0f}s] "
            f"eval return {eval_return:.1f}",
            flush=True,
        )


def evaluate(cfg: Config, run_dir: str | Path, *, episodes: int) -> list[float]:
    """Greedy evaluation of the newest checkpoint in ``run_dir``."""
    agent = _Agent(cfg)
    ckpt = Checkpointer(run_dir, keep=cfg.run.keep_checkpoints)
    arrays, meta = ckpt.restore({"learner": agent.new_learner()})
    ckpt.close()
    return agent.evaluate(
        arrays["learner"].variables, episodes=episodes, seed=_eval_seed(cfg, meta["env_steps"])
    )


def _validate(cfg: Config) -> None:
    if cfg.loop.warmup_steps >= cfg.run.env_steps and cfg.loop.extra_updates == 0:
        raise ConfigError(
            f"loop.warmup_steps={cfg.loop.warmup_steps} >= run.env_steps={cfg.run.env_steps}: "
            "the agent would never learn. Lower loop.warmup_steps or raise --steps."
        )
