"""EfficientZero's host loop, for gymnasium envs: the imperative shell around the pure core.

Real environments are stepped here; everything else (search, replay, targets, updates) is
jitted and lives on the device. Per env step the observation goes to the device once (search
and replay share it) and the actions come back; metrics come back once per log row. Updates
run ``count`` at a time in one jitted call (``Learner.learn``), dispatched before the host
steps the environments so that both proceed together.

Checkpoints are taken every ``run.checkpoint_every`` env steps. At each checkpoint the
environments are reset with a seed derived from (seed, env step) and the replay cuts the
running episodes, so a run resumed from a checkpoint continues exactly as the uninterrupted
run does (same data, same updates, same curve on the same machine).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dreamer.agents.efficientzero import compute
from dreamer.agents.efficientzero.actor import greedy_policy
from dreamer.agents.efficientzero.builder import ALGO, Parts, Spaces, validate
from dreamer.agents.efficientzero.config import Config
from dreamer.agents.efficientzero.reward_scale import RewardScale
from dreamer.agents.efficientzero.search import temperature_at
from dreamer.core.errors import NonFiniteLossError
from dreamer.shell.checkpoint import Checkpointer
from dreamer.shell.evaluation import Video, evaluate_policy, make_vector_env
from dreamer.shell.runbook import EVAL_SEED_OFFSET, RunBook, crossed

__all__ = ["HostLoop", "evaluate", "open_book", "probe_spaces", "train"]


@jax.jit
def _accumulate(total: dict[str, jax.Array], more: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return jax.tree.map(jnp.add, total, more)


def _env_seed(cfg: Config, env_steps: int) -> int:
    return cfg.run.seed * 1_000_003 + env_steps


def probe_spaces(cfg: Config) -> Spaces:
    """The spaces of ``cfg``'s gymnasium env, read from a one-env probe."""
    probe = make_vector_env(cfg.env, num_envs=1, seed=cfg.run.seed, mode="train")
    spaces = Spaces(probe.single_observation_space, probe.single_action_space, cfg.env.id)
    probe.close()
    return spaces


def open_book(cfg: Config, run_dir: str | Path, *, resume: bool) -> RunBook:
    """The run folder's ``RunBook``, which also warns about rewards beyond the supports."""
    reward_check = RewardScale(cfg.env.id, cfg.model)
    return RunBook(ALGO, cfg, run_dir, resume=resume, reward_check=reward_check)


def train(
    cfg: Config, run_dir: str | Path, *, resume: bool = False, profile: bool = False
) -> dict[str, Any]:
    """Train (or continue) an EfficientZero run on a gymnasium env in ``run_dir``; returns the
    summary. ``profile`` waits for the device after every phase of the loop so that
    ``seconds_by_phase`` in the summary attributes time exactly (the benchmarks use it; it
    costs some overlap)."""
    validate(cfg)
    agent = Parts(cfg, probe_spaces(cfg))
    book = open_book(cfg, run_dir, resume=resume)
    try:
        return HostLoop(cfg, agent, book, profile=profile).run(resume=resume)
    finally:
        book.close()


class HostLoop:
    """The host loop's state and phases (act, learn, env, add, evaluate, log, save)."""

    def __init__(self, cfg: Config, agent: Parts, book: RunBook, *, profile: bool):
        self.cfg, self.agent, self.book, self.profile = cfg, agent, book, profile
        self.state = agent.new_learner()
        self.replay = agent.new_replay()
        self.key = jax.random.PRNGKey(cfg.run.seed + 1)
        self.env_steps = self.updates = 0
        self.sums: dict[str, jax.Array] | None = None
        self.warned_skipped = False
        phases = ("act", "env", "add", "learn", "refresh", "eval", "save")
        self.timing = dict.fromkeys(phases, 0.0)
        self.counts = dict.fromkeys(("iterations", "refreshed_states", "eval_steps", "saves"), 0)

    def _timed(self, phase: str, start: float, *outputs: Any) -> None:
        if self.profile:
            jax.block_until_ready(outputs)
        self.timing[phase] += time.perf_counter() - start

    # -- learning -----------------------------------------------------------------------------
    def learn(self, count: int) -> None:
        """``count`` updates, split so that each target-network sync ends a dispatch and is
        followed by the refresh of the target cache."""
        period = self.cfg.optim.target_update_every
        while count > 0:
            n = min(count, period - self.updates % period)
            tick = time.perf_counter()
            self.state, self.replay, sums = self.agent.learn(self.state, self.replay, n)
            self.sums = sums if self.sums is None else _accumulate(self.sums, sums)
            self._timed("learn", tick, self.state)
            self.updates += n
            count -= n
            if self.updates % period == 0 and self.cfg.replay.reanalyze_mode == "cached":
                self.refresh_cache()

    def refresh_cache(self) -> None:
        tick = time.perf_counter()
        learner = self.agent.learner
        filled = min(self.env_steps // self.cfg.env.num_envs, self.agent.replay.slots)
        for chunk in range(learner.num_chunks(filled)):
            self.replay = self.agent.refresh(self.state, self.replay, chunk)
        self.counts["refreshed_states"] += (
            learner.num_chunks(filled) * learner.chunk_slots * self.cfg.env.num_envs
        )
        self._timed("refresh", tick, self.replay)

    def pop_metrics(self) -> dict[str, float]:
        """Means of the learner's metrics since the last row (one device fetch).

        Non-finite updates are skipped by the learner (as mixed-precision loss scaling skips
        them) and counted in ``charts/skipped_updates``; the run stops when they are the
        majority of a row's updates, since it is no longer learning.
        """
        if self.sums is None:
            return {}
        sums = jax.device_get(self.sums)
        self.sums = None
        count = float(sums.pop("updates"))
        skipped = count - float(sums.pop("finite_updates"))
        if skipped > count / 2:
            latest = self.book.checkpointer.latest_step()
            kept = f"the checkpoint at env step {latest} is kept" if latest else "none was saved"
            raise NonFiniteLossError(
                f"{ALGO}: loss or gradient became NaN/inf in {skipped:.0f} of the {count:.0f} "
                f"updates before env step {self.env_steps} (they were not applied); {kept}. "
                "Lower the learning rate (or set a gradient clip) and start again."
            )
        if skipped and not self.warned_skipped:
            print(
                f"warning: {skipped:.0f} non-finite update(s) skipped before env step "
                f"{self.env_steps}; see charts/skipped_updates",
                flush=True,
            )
            self.warned_skipped = True
        means = {k: float(v) / max(count - skipped, 1.0) for k, v in sums.items()}
        return {**means, "charts/skipped_updates": skipped}

    def compute_spent(self) -> dict[str, int]:
        """Model evaluations spent so far (``dreamer.agents.efficientzero.compute``)."""
        chunk_slots = self.agent.learner.chunk_slots
        return compute.spent(self.cfg, self.env_steps, self.updates, chunk_slots)

    def row_metrics(self) -> dict[str, float]:
        return {**self.pop_metrics(), **compute.as_metrics(self.compute_spent())}

    # -- evaluation and checkpoints -------------------------------------------------------------
    def evaluate(self, episodes: int, *, final: bool) -> list[float]:
        tick = time.perf_counter()
        greedy = greedy_policy(
            self.agent.act, self.state.variables, jax.random.PRNGKey(self.env_steps)
        )

        def policy(obs: np.ndarray) -> np.ndarray:
            self.counts["eval_steps"] += 1
            return greedy(obs)

        max_steps = 0 if final else self.cfg.run.eval_max_steps
        returns = self.book.evaluate(policy, self.env_steps, episodes, max_steps=max_steps)
        self.timing["eval"] += time.perf_counter() - tick
        if not returns:  # run.final_eval_episodes=0
            return returns
        print(
            f"[{self.env_steps:>7d} steps {self.updates:>6d} updates "
            f"{self.book.wall_seconds():6.0f}s] eval return {np.mean(returns):.1f}",
            flush=True,
        )
        return returns

    def save(self) -> None:
        tick = time.perf_counter()
        self.replay = self.agent.end_episodes(self.replay)
        items = {"learner": self.state, "replay": self.replay, "key": {"key": self.key}}
        self.book.save(self.env_steps, self.updates, items, {})
        self.timing["save"] += time.perf_counter() - tick
        self.counts["saves"] += 1

    def restore(self) -> None:
        like = {"learner": self.state, "replay": self.replay, "key": {"key": self.key}}
        arrays, meta = self.book.restore(like)
        self.agent.replay.check_restored(arrays["replay"])
        self.state = jax.device_put(arrays["learner"])
        self.replay = jax.device_put(arrays["replay"])
        self.key = jnp.asarray(arrays["key"]["key"])
        self.env_steps, self.updates = meta["env_steps"], meta["updates"]
        print(
            f"resuming {self.book.run_dir} from env step {self.env_steps} ({self.updates} updates)"
        )

    # -- the loop -------------------------------------------------------------------------------
    def run(self, *, resume: bool) -> dict[str, Any]:
        cfg, agent, book = self.cfg, self.agent, self.book
        run, num_envs = cfg.run, cfg.env.num_envs
        if resume:
            self.restore()
        budget = run.env_steps
        venv = make_vector_env(cfg.env, num_envs=num_envs, seed=0, mode="train")
        obs, _ = venv.reset(seed=_env_seed(cfg, self.env_steps))
        book.start_progress(self.env_steps)
        started = time.perf_counter()
        try:
            while self.env_steps < budget:
                book.stop_if_requested(self.env_steps, self.save)  # SIGTERM/SIGINT
                temperature = temperature_at(cfg.search, self.env_steps / budget)
                self.key, sub = jax.random.split(self.key)
                tick = time.perf_counter()
                obs_device = jnp.asarray(obs)
                out = agent.act(self.state.variables, sub, obs_device, temperature, 1.0)
                actions = np.asarray(out.action)
                self._timed("act", tick)
                before = self.env_steps
                self.env_steps += num_envs
                self.counts["iterations"] += 1
                self.learn(cfg.updates_by(self.env_steps) - self.updates)
                tick = time.perf_counter()
                next_obs, reward, terminated, truncated, _ = venv.step(actions)
                self._timed("env", tick)
                book.check_env_output(next_obs, reward, self.env_steps)
                tick = time.perf_counter()
                self.replay = agent.add(
                    self.state,
                    self.replay,
                    obs_device,
                    out.action,
                    reward,
                    terminated,
                    truncated,
                    out.policy,
                )
                self._timed("add", tick, self.replay)
                book.step_rewards(reward, terminated | truncated)
                obs = next_obs
                if self.env_steps >= budget:
                    break
                evaluated = crossed(before, self.env_steps, run.eval_every)
                if evaluated:
                    self.evaluate(run.eval_episodes, final=False)
                if evaluated or crossed(before, self.env_steps, run.log_every):
                    book.write_row(
                        self.env_steps, self.updates, self.row_metrics(), evaluated=evaluated
                    )
                if crossed(before, self.env_steps, run.checkpoint_every):
                    self.save()
                    obs, _ = venv.reset(seed=_env_seed(cfg, self.env_steps))
            if self.updates < cfg.total_updates:
                self.learn(cfg.total_updates - self.updates)  # loop.extra_updates at the end
            returns = self.evaluate(run.final_eval_episodes, final=True)
            book.write_row(self.env_steps, self.updates, self.row_metrics(), evaluated=True)
            self.save()
        finally:
            venv.close()
        # Bookkeeping between the phases (metrics rows, progress, key splits, env resets).
        self.timing["host"] = time.perf_counter() - started - sum(self.timing.values())
        phases = {k: round(v, 3) for k, v in self.timing.items()}
        extra = {
            "seconds_by_phase": phases,
            "counts": dict(self.counts),
            "compute": self.compute_spent(),
        }
        return book.finish(self.env_steps, self.updates, returns, extra)


def evaluate(
    cfg: Config, run_dir: str | Path, *, episodes: int, video: Video | None = None
) -> list[float]:
    """Greedy evaluation of the newest checkpoint in ``run_dir``, recorded if ``video``."""
    agent = Parts(cfg, probe_spaces(cfg))
    ckpt = Checkpointer(run_dir, keep=cfg.run.keep_checkpoints)
    arrays, meta = ckpt.restore({"learner": agent.new_learner()})
    ckpt.close()
    steps = int(meta["env_steps"])
    policy = greedy_policy(agent.act, arrays["learner"].variables, jax.random.PRNGKey(steps))
    seed = cfg.run.seed + EVAL_SEED_OFFSET + steps
    return evaluate_policy(cfg.env, policy, episodes=episodes, seed=seed, video=video)
