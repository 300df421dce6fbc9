"""DQN family, imperative shell: the training loop, checkpoints and greedy evaluation.

One loop serves every variant the config switches on (double, dueling, n-step, prioritised
replay, DrQ augmentation). Per vector-env step: act epsilon-greedily (uniformly at random
before ``learning_starts``), store the step in the replay, then every ``train_freq`` env steps
run ``gradient_steps`` updates and every ``target_update_interval`` env steps copy the
online network to the target. Evaluation, metric rows and checkpoints happen when their
intervals are crossed; a checkpoint holds the learner, the replay and every RNG. The
learner, replay and actor come from DQN's builder (``dreamer.agents.baselines.dqn.builder``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from dreamer.agents.baselines.dqn.builder import Parts, build, greedy_actor
from dreamer.agents.baselines.dqn.config import DQNConfig
from dreamer.agents.baselines.dqn.learning import (
    Batch,
    Learner,
    LearnerState,
    annealed_beta,
    linear_epsilon,
)
from dreamer.agents.baselines.dqn.replay import Replay
from dreamer.agents.baselines.vector import final_observations
from dreamer.shell.checkpoint import Checkpointer
from dreamer.shell.evaluation import Video, evaluate_policy, make_vector_env
from dreamer.shell.runbook import RunBook, crossed, evaluation_seed
from dreamer.shell.runlog import LEARNING_RATE

__all__ = ["DQNConfig", "evaluate", "train"]

ALGO = "dqn"
METRICS = ("losses/td", "losses/q_values", "charts/grad_norm")
"""Update metrics averaged into each row (``runlog.METRIC_NAMES`` gives the scheme)."""


def train(cfg: DQNConfig, run_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train (or continue from the newest checkpoint) and return the summary record."""
    venv = make_vector_env(cfg.env, num_envs=cfg.env.num_envs, seed=cfg.run.seed, mode="train")
    try:
        parts = build(cfg, venv.single_observation_space, venv.single_action_space)
        replay = parts.replay(cfg)  # config errors surface before the run folder is written
        book = RunBook(ALGO, cfg, run_dir, resume=resume)
        try:
            return _train(cfg, book, venv, parts, replay, resume)
        finally:
            book.close()
    finally:
        venv.close()


def _train(
    cfg: DQNConfig, book: RunBook, venv: Any, parts: Parts, replay: Replay, resume: bool
) -> dict[str, Any]:
    p, run, num_envs = cfg.dqn, cfg.run, cfg.env.num_envs
    learner = parts.learner
    state, act_key = parts.init(run.seed)
    rng = np.random.default_rng(run.seed)
    env_steps = updates = 0
    if resume:
        like = {"learner": state, "replay": replay.state(), "act_key": act_key}
        arrays, meta = book.restore(like)
        state, act_key = arrays["learner"], arrays["act_key"]
        replay.load_state(arrays["replay"])
        rng.bit_generator.state = meta["numpy_rng"]
        env_steps, updates = int(meta["env_steps"]), int(meta["updates"])

    def restart_episodes() -> np.ndarray:
        """Cut the running episodes and reset the envs with a seed derived from the env step;
        done at the start, on resume and after every checkpoint, so that a resumed run
        continues exactly as the uninterrupted one."""
        replay.interrupt()
        return venv.reset(seed=run.seed + env_steps)[0]

    obs = restart_episodes()
    pending: list[dict[str, Any]] = []  # update metrics since the last row (device arrays)
    book.start_progress(env_steps)

    def row(evaluated: bool) -> None:
        metrics: dict[str, Any] = dict.fromkeys(METRICS)
        if pending:
            fetched = jax.device_get(pending)
            book.check_finite(all(bool(m["finite"]) for m in fetched), env_steps)
            metrics = {k: float(np.mean([m[k] for m in fetched])) for k in METRICS}
        pending.clear()
        metrics[LEARNING_RATE] = p.lr
        metrics["charts/epsilon"] = linear_epsilon(p, env_steps)
        metrics["charts/replay_size"] = replay.size
        book.write_row(env_steps, updates, metrics, evaluated=evaluated)

    def save() -> None:
        finite = jax.device_get([m["finite"] for m in pending])
        book.check_finite(all(bool(f) for f in finite), env_steps)
        arrays = {"learner": state, "replay": replay.state(), "act_key": act_key}
        book.save(env_steps, updates, arrays, {"numpy_rng": rng.bit_generator.state})

    def evaluate_now(episodes: int) -> list[float]:
        return book.evaluate(
            _evaluation_actor(cfg, learner, state.params, env_steps, p.eval_epsilon),
            env_steps,
            episodes,
        )

    while env_steps < run.env_steps:
        book.stop_if_requested(env_steps, save)  # SIGTERM/SIGINT: checkpoint, then stop
        if env_steps < p.learning_starts:
            actions = rng.integers(parts.num_actions, size=num_envs)
        else:
            epsilon = linear_epsilon(p, env_steps)
            actions, act_key = learner.act(state.params, obs, act_key, epsilon)
            actions = np.asarray(actions)
        next_obs, reward, terminated, truncated, info = venv.step(actions)
        book.check_env_output(next_obs, reward, env_steps + num_envs)
        done = terminated | truncated
        final = final_observations(next_obs, info, done) if done.any() else next_obs
        replay.add(obs, actions, reward, terminated, truncated, final)
        book.step_rewards(reward, done)
        obs = next_obs
        before, env_steps = env_steps, env_steps + num_envs

        if env_steps > p.learning_starts and crossed(before, env_steps, p.train_freq):
            for _ in range(p.gradient_steps):
                state, metrics = _update(cfg, learner, replay, state, rng, env_steps)
                pending.append(metrics)
                updates += 1
        if crossed(before, env_steps, p.target_update_interval):
            state = Learner.sync_target(state)
        if env_steps >= run.env_steps:
            break
        evaluated = crossed(before, env_steps, run.eval_every)
        if evaluated:
            evaluate_now(run.eval_episodes)
        if evaluated or crossed(before, env_steps, run.log_every):
            row(evaluated)
        if crossed(before, env_steps, run.checkpoint_every):
            save()
            obs = restart_episodes()

    final_returns = evaluate_now(run.final_eval_episodes)
    row(evaluated=True)
    save()
    return book.finish(env_steps, updates, final_returns)


def _update(
    cfg: DQNConfig,
    learner: Learner,
    replay: Replay,
    state: LearnerState,
    rng: np.random.Generator,
    env_steps: int,
) -> tuple[LearnerState, dict[str, Any]]:
    """Sample one batch, update, and write back the new priorities."""
    p = cfg.dqn
    alpha = p.priority_alpha if p.prioritized else 0.0
    beta = annealed_beta(p, env_steps, cfg.run.env_steps) if p.prioritized else 1.0
    sample = replay.sample(p.batch_size, rng, alpha=alpha, beta=beta)
    batch = Batch(
        obs=sample["obs"],
        action=sample["action"],
        reward=sample["reward"],
        discount=sample["discount"],
        next_obs=sample["next_obs"],
        weight=sample["weight"],
    )
    state, metrics = learner.update(state, batch)
    td_abs = metrics.pop("td_abs")
    if p.prioritized:
        replay.update_priorities(sample["index"], np.asarray(td_abs) + p.priority_eps)
    return state, metrics


def evaluate(
    cfg: DQNConfig,
    run_dir: str | Path,
    *,
    episodes: int,
    video: Video | None = None,
    stochastic: bool = False,
) -> list[float]:
    """Greedy (``dqn.eval_epsilon``) returns of the newest checkpoint, recorded if ``video``;
    with ``stochastic``, epsilon-greedy at training's exploration epsilon of that step."""
    venv = make_vector_env(cfg.env, num_envs=1, seed=cfg.run.seed, mode="eval")
    try:
        parts = build(cfg, venv.single_observation_space, venv.single_action_space)
    finally:
        venv.close()
    state, act_key = parts.init(cfg.run.seed)
    like = {"learner": state, "replay": parts.replay(cfg).state(), "act_key": act_key}
    checkpointer = Checkpointer(run_dir, keep=cfg.run.keep_checkpoints)
    try:
        arrays, meta = checkpointer.restore(like)
    finally:
        checkpointer.close()
    steps = int(meta["env_steps"])  # the episodes and actions of training's evaluation here
    epsilon = linear_epsilon(cfg.dqn, steps) if stochastic else cfg.dqn.eval_epsilon
    actor = _evaluation_actor(cfg, parts.learner, arrays["learner"].params, steps, epsilon)
    seed = evaluation_seed(cfg.run.seed, steps)
    return evaluate_policy(cfg.env, actor, episodes=episodes, seed=seed, video=video)


def _evaluation_actor(cfg: DQNConfig, learner: Any, params: Any, env_steps: int, epsilon: float):
    """The actor of the evaluation at ``env_steps`` (epsilon-greedy with ``epsilon``:
    ``dqn.eval_epsilon``, or training's exploration epsilon in a stochastic evaluation), keyed
    by the evaluation's seed: the same in training and in a checkpoint's ``evaluate``."""
    seed = evaluation_seed(cfg.run.seed, env_steps)
    return greedy_actor(learner, params, epsilon, seed)
