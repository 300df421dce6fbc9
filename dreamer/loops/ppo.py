"""PPO, imperative shell: rollouts in vector envs, the per-rollout update, evaluation.

Each iteration steps ``env.num_envs`` environments ``ppo.num_steps`` times with the current
policy, then makes one jitted ``update`` call (GAE + all epochs and minibatches). Episodes cut
by a time limit bootstrap from the value of their final observation, as in SB3. Evaluation,
metric rows and checkpoints happen when their intervals are crossed at iteration ends. The
learner and actor come from PPO's builder (``dreamer.agents.baselines.ppo.builder``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from dreamer.agents.baselines.ppo.builder import (
    build,
    greedy_actor,
    initial_state,
    sampling_actor,
)
from dreamer.agents.baselines.ppo.config import PPOConfig
from dreamer.agents.baselines.ppo.learning import Learner, LearnerState, Rollout
from dreamer.agents.baselines.vector import final_observations
from dreamer.shell.checkpoint import Checkpointer
from dreamer.shell.evaluation import Video, evaluate_policy, make_vector_env
from dreamer.shell.runbook import RunBook, crossed, evaluation_seed

__all__ = ["PPOConfig", "evaluate", "train"]

ALGO = "ppo"
METRICS = (
    "losses/policy",
    "losses/value",
    "losses/entropy",
    "losses/approx_kl",
    "losses/clipfrac",
    "losses/explained_variance",
    "charts/grad_norm",
    "charts/learning_rate",
    "charts/clip_range",
)
"""Update metrics averaged into each row (``runlog.METRIC_NAMES`` gives the scheme)."""


def train(cfg: PPOConfig, run_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train (or continue from the newest checkpoint) and return the summary record."""
    venv = make_vector_env(cfg.env, num_envs=cfg.env.num_envs, seed=cfg.run.seed, mode="train")
    try:
        learner = build(cfg, venv.single_observation_space, venv.single_action_space)
        book = RunBook(ALGO, cfg, run_dir, resume=resume)  # after the config checks
        try:
            return _train(cfg, book, venv, learner, resume)
        finally:
            book.close()
    finally:
        venv.close()


def _train(
    cfg: PPOConfig, book: RunBook, venv: Any, learner: Learner, resume: bool
) -> dict[str, Any]:
    p, run, num_envs = cfg.ppo, cfg.run, cfg.env.num_envs
    space = venv.single_observation_space
    state, act_key = initial_state(learner, space, run.seed)
    env_steps = updates = 0
    if resume:
        arrays, meta = book.restore({"learner": state, "act_key": act_key})
        state, act_key = arrays["learner"], arrays["act_key"]
        env_steps, updates = int(meta["env_steps"]), int(meta["updates"])

    obs, _ = venv.reset(seed=run.seed + env_steps)
    shape = (p.num_steps, num_envs)
    buffers = {
        "obs": np.zeros(shape + space.shape, space.dtype),
        "action": np.zeros(shape, np.int32),
        "logp": np.zeros(shape, np.float32),
        "value": np.zeros(shape, np.float32),
        "reward": np.zeros(shape, np.float32),
        "done": np.zeros(shape, np.float32),
    }
    pending: list[dict[str, Any]] = []
    book.start_progress(env_steps)

    def row(evaluated: bool) -> None:
        metrics: dict[str, Any] = dict.fromkeys(METRICS)
        if pending:
            metrics = {k: float(np.mean([m[k] for m in pending])) for k in METRICS}
        pending.clear()
        book.write_row(env_steps, updates, metrics, evaluated=evaluated)

    def save() -> None:
        book.save(env_steps, updates, {"learner": state, "act_key": act_key}, {})

    while env_steps < run.env_steps:
        book.stop_if_requested(env_steps, save)  # SIGTERM/SIGINT: checkpoint, then stop
        obs, act_key = _collect(
            cfg, venv, learner, state.params, obs, act_key, buffers, book, env_steps
        )
        state, metrics = learner.update(state, Rollout(last_obs=obs, **buffers))
        metrics = jax.device_get(metrics)
        book.check_finite(bool(metrics["finite"]), env_steps + cfg.rollout_size)
        pending.append(metrics)
        updates += p.epochs * cfg.num_minibatches
        before, env_steps = env_steps, env_steps + cfg.rollout_size

        if env_steps >= run.env_steps:
            break
        evaluated = crossed(before, env_steps, run.eval_every)
        if evaluated:
            book.evaluate(greedy_actor(learner, state.params), env_steps, run.eval_episodes)
        if evaluated or crossed(before, env_steps, run.log_every):
            row(evaluated)
        if crossed(before, env_steps, run.checkpoint_every):
            save()
            obs, _ = venv.reset(seed=run.seed + env_steps)  # as on resume: exact continuation

    actor = greedy_actor(learner, state.params)
    final_returns = book.evaluate(actor, env_steps, run.final_eval_episodes)
    row(evaluated=True)
    save()
    return book.finish(env_steps, updates, final_returns)


def _collect(
    cfg: PPOConfig,
    venv: Any,
    learner: Learner,
    params: Any,
    obs: np.ndarray,
    act_key: jax.Array,
    buffers: dict[str, np.ndarray],
    book: RunBook,
    env_steps: int,
) -> tuple[np.ndarray, jax.Array]:
    """Fill ``buffers`` (``[T, N, ...]``) with one rollout from ``env_steps`` on; returns the
    next obs and key.

    Where a time limit cut an episode, the reward gains gamma V(final obs) (SB3's bootstrap).
    """
    gamma = cfg.ppo.gamma
    for t in range(cfg.ppo.num_steps):
        action, logp, value, act_key = learner.act(params, obs, act_key)
        action, logp, value = jax.device_get((action, logp, value))
        next_obs, reward, terminated, truncated, info = venv.step(action)
        book.check_env_output(next_obs, reward, env_steps + (t + 1) * venv.num_envs)
        book.step_rewards(reward, terminated | truncated)
        reward = reward.astype(np.float32)
        cut = truncated & ~terminated
        if cut.any():
            bootstrap = np.asarray(learner.value(params, final_observations(next_obs, info, cut)))
            reward = reward + np.where(cut, gamma * bootstrap, 0.0)
        buffers["obs"][t] = obs
        buffers["action"][t] = action
        buffers["logp"][t] = logp
        buffers["value"][t] = value
        buffers["reward"][t] = reward
        buffers["done"][t] = terminated | truncated
        obs = next_obs
    return obs, act_key


def evaluate(
    cfg: PPOConfig,
    run_dir: str | Path,
    *,
    episodes: int,
    video: Video | None = None,
    stochastic: bool = False,
) -> list[float]:
    """Greedy returns of the newest checkpoint, recorded if ``video``; with ``stochastic``,
    actions sampled from the policy as in training."""
    venv = make_vector_env(cfg.env, num_envs=1, seed=cfg.run.seed, mode="eval")
    try:
        space = venv.single_observation_space
        learner = build(cfg, space, venv.single_action_space)
    finally:
        venv.close()
    state, act_key = initial_state(learner, space, cfg.run.seed)
    checkpointer = Checkpointer(run_dir, keep=cfg.run.keep_checkpoints)
    try:
        arrays, meta = checkpointer.restore({"learner": state, "act_key": act_key})
    finally:
        checkpointer.close()
    state: LearnerState = arrays["learner"]
    seed = evaluation_seed(cfg.run.seed, int(meta["env_steps"]))
    if stochastic:
        actor = sampling_actor(learner, state.params, seed)
    else:
        actor = greedy_actor(learner, state.params)
    return evaluate_policy(cfg.env, actor, episodes=episodes, seed=seed, video=video)
