"""EfficientZero's host loop, for gymnasium envs: the imperative shell around the pure core.

Real environments are stepped here; everything else (search, replay, targets, updates) is
jitted and lives on the device. Per env step the observation goes to the device once (search
and replay share it) and the actions come back; metrics come back once per log row. Updates
run ``count`` at a time in one jitted call (``Learner.learn``), dispatched before the host
steps the environments so that both proceed together.

Several seeds of one config can train in one process (``train --seeds 0-2`` on an ALE env,
``train_seeds``): one vector env holds every seed's environments, and acting, the updates,
the target-cache refresh and the replay writes are the same functions ``vmap``ped over a
leading run axis (``RunAxis``), with the learner states and replays stacked. Each seed keeps
its own run folder, keys, environment seeds and evaluation, so its curve is the one it gets
alone (up to float rounding of the batched kernels); a single run uses the functions as built.

Checkpoints are taken every ``run.checkpoint_every`` env steps. At each checkpoint the
environments are reset with a seed derived from (seed, env step) and the replay cuts the
running episodes, so a run resumed from a checkpoint continues exactly as the uninterrupted
run does (same data, same updates, same curve on the same machine).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dreamer.agents.efficientzero import compute
from dreamer.agents.efficientzero.actor import greedy_policy, search_policy
from dreamer.agents.efficientzero.builder import ALGO, Parts, Spaces, validate
from dreamer.agents.efficientzero.config import Config, ConfigError, replace_path
from dreamer.agents.efficientzero.reward_scale import RewardScale
from dreamer.agents.efficientzero.search import temperature_at
from dreamer.core.errors import NonFiniteLossError
from dreamer.shell.checkpoint import Checkpointer
from dreamer.shell.evaluation import Video, evaluate_policy, make_vector_env
from dreamer.shell.runbook import RunBook, crossed, evaluation_seed
from dreamer.shell.signals import RunStopped

__all__ = [
    "HostLoop",
    "RunAxis",
    "evaluate",
    "open_book",
    "probe_spaces",
    "restore_newest",
    "train",
    "train_seeds",
]


@jax.jit
def _accumulate(total: dict[str, jax.Array], more: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return jax.tree.map(jnp.add, total, more)


def _env_seed(seed: int, env_steps: int) -> int:
    return seed * 1_000_003 + env_steps


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
    return train_seeds(cfg, [Path(run_dir)], [cfg.run.seed], resume=resume, profile=profile)[0]


def train_seeds(
    cfg: Config,
    run_dirs: Sequence[Path],
    seeds: Sequence[int],
    *,
    resume: bool = False,
    profile: bool = False,
) -> list[dict[str, Any]]:
    """Train ``seeds`` of ``cfg`` in one process, seed k in ``run_dirs[k]`` (see the module
    docstring); the summaries, in seed order."""
    if len(run_dirs) != len(seeds) or not seeds:
        raise ValueError("one run folder per seed")
    validate(cfg)
    if len(seeds) > 1 and cfg.loop.devices != 1:
        raise ConfigError(
            f"loop.devices={cfg.loop.devices} splits one run's batch over devices; seeds "
            "trained together (--seeds) run on one device. Train one seed per process, or "
            "set loop.devices=1."
        )
    agent = Parts(cfg, probe_spaces(cfg))
    books: list[RunBook] = []
    try:
        for seed, run_dir in zip(seeds, run_dirs, strict=True):
            books.append(
                open_book(replace_path(cfg, "run.seed", int(seed)), run_dir, resume=resume)
            )
        return HostLoop(cfg, agent, books, profile=profile).run(resume=resume)
    finally:
        for book in reversed(books):  # signal handlers are restored in reverse order
            book.close()


class RunAxis:
    """The agent's per-run functions applied to the loop's R runs: as built for one run, and
    ``vmap``ped over a leading run axis for several (learner states, replays and keys then
    stacked, environment arrays ``[R * E, ...]`` split into ``[R, E, ...]``)."""

    def __init__(self, agent: Parts, runs: int):
        self.runs = runs
        if runs == 1:
            self.act, self.learn, self.refresh = agent.act, agent.learn, agent.refresh
            self.add, self.end_episodes = agent.add, agent.end_episodes
            return
        learner = agent.learner
        self.act = jax.jit(jax.vmap(agent.act, in_axes=(0, 0, 0, None, None)))
        self.learn = jax.jit(jax.vmap(learner.learn, in_axes=(0, 0, None)), donate_argnums=(0, 1))
        self.refresh = jax.jit(jax.vmap(learner.refresh, in_axes=(0, 0, None)), donate_argnums=1)
        self.add = jax.jit(jax.vmap(learner.add_step), donate_argnums=1)
        self.end_episodes = jax.jit(jax.vmap(agent.replay.end_episodes), donate_argnums=0)

    def stack(self, trees: Sequence[Any]) -> Any:
        """One tree per run -> the loop's form."""
        if self.runs == 1:
            return trees[0]
        return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)

    def take(self, tree: Any, run: int) -> Any:
        """Run ``run``'s part of a tree in the loop's form."""
        return tree if self.runs == 1 else jax.tree.map(lambda x: x[run], tree)

    def split_key(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.runs == 1:
            key, sub = jax.random.split(key)
            return key, sub
        keys = jax.vmap(jax.random.split)(key)
        return keys[:, 0], keys[:, 1]

    def per_run(self, x: Any) -> Any:
        """``[R * E, ...]`` environment arrays -> ``[R, E, ...]`` (one run: unchanged)."""
        if self.runs == 1:
            return x
        return x.reshape((self.runs, -1) + tuple(x.shape[1:]))

    def envs_of(self, x: np.ndarray, run: int) -> np.ndarray:
        """Run ``run``'s rows of ``[R * E, ...]`` environment arrays (one run: all of them)."""
        if self.runs == 1:
            return x
        per = len(x) // self.runs
        return x[run * per : (run + 1) * per]


class HostLoop:
    """The host loop's state and phases (act, learn, env, add, evaluate, log, save) for the
    runs of ``books`` (one per seed, the seeds of their configs)."""

    def __init__(self, cfg: Config, agent: Parts, books: Sequence[RunBook], *, profile: bool):
        self.cfg, self.agent, self.books, self.profile = cfg, agent, list(books), profile
        self.seeds = [int(book.cfg.run.seed) for book in self.books]
        self.axis = RunAxis(agent, len(self.books))
        self.state = self.axis.stack([agent.new_learner(seed) for seed in self.seeds])
        self.replay = self.axis.stack([agent.new_replay() for _ in self.seeds])
        self.key = self.axis.stack([jax.random.PRNGKey(seed + 1) for seed in self.seeds])
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
            self.state, self.replay, sums = self.axis.learn(self.state, self.replay, n)
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
            self.replay = self.axis.refresh(self.state, self.replay, chunk)
        self.counts["refreshed_states"] += (
            learner.num_chunks(filled) * learner.chunk_slots * self.cfg.env.num_envs
        )
        self._timed("refresh", tick, self.replay)

    def pop_metrics(self) -> list[dict[str, float]]:
        """Each run's means of the learner's metrics since the last row (one device fetch).

        Non-finite updates are skipped by the learner (as mixed-precision loss scaling skips
        them) and counted in ``charts/skipped_updates``; the run stops when they are the
        majority of a row's updates, since it is no longer learning.
        """
        if self.sums is None:
            return [{} for _ in self.books]
        fetched = jax.device_get(self.sums)
        self.sums = None
        rows = []
        for run, book in enumerate(self.books):
            sums = self.axis.take(fetched, run)
            count = float(sums.pop("updates"))
            skipped = count - float(sums.pop("finite_updates"))
            if skipped > count / 2:
                raise NonFiniteLossError(
                    f"{ALGO} seed {book.cfg.run.seed}: loss or gradient became NaN/inf in "
                    f"{skipped:.0f} of the {count:.0f} updates before env step {self.env_steps} "
                    f"(they were not applied); {book.kept_checkpoint()}. Lower the learning "
                    "rate (or set a gradient clip) and start again."
                )
            if skipped and not self.warned_skipped:
                warning = (
                    f"warning: seed {book.cfg.run.seed}: {skipped:.0f} non-finite update(s) "
                    f"skipped before env step {self.env_steps}; see charts/skipped_updates"
                )
                print(warning, flush=True)
                self.warned_skipped = True
            means = {k: float(v) / max(count - skipped, 1.0) for k, v in sums.items()}
            rows.append({**means, "charts/skipped_updates": skipped})
        return rows

    def compute_spent(self) -> dict[str, int]:
        """Model evaluations spent per run so far (``dreamer.agents.efficientzero.compute``)."""
        chunk_slots = self.agent.learner.chunk_slots
        return compute.spent(self.cfg, self.env_steps, self.updates, chunk_slots)

    def write_rows(self, evaluated: bool) -> None:
        spent = compute.as_metrics(self.compute_spent())
        for book, metrics in zip(self.books, self.pop_metrics(), strict=True):
            book.write_row(self.env_steps, self.updates, {**metrics, **spent}, evaluated=evaluated)

    # -- evaluation and checkpoints -------------------------------------------------------------
    def evaluate(self, episodes: int, *, final: bool) -> list[list[float]]:
        tick = time.perf_counter()
        max_steps = 0 if final else self.cfg.run.eval_max_steps
        every: list[list[float]] = []
        for run, book in enumerate(self.books):
            greedy = greedy_policy(
                self.agent.act,
                self.axis.take(self.state.variables, run),
                jax.random.PRNGKey(self.env_steps),
            )

            def policy(obs: np.ndarray, greedy: Any = greedy) -> np.ndarray:
                self.counts["eval_steps"] += 1
                return greedy(obs)

            every.append(book.evaluate(policy, self.env_steps, episodes, max_steps=max_steps))
        self.timing["eval"] += time.perf_counter() - tick
        if every[0]:  # run.final_eval_episodes=0: none
            means = ", ".join(f"{np.mean(r):.1f}" for r in every)
            line = (
                f"[{self.env_steps:>7d} steps {self.updates:>6d} updates "
                f"{self.books[0].wall_seconds():6.0f}s] eval return {means}"
            )
            print(line, flush=True)
        return every

    def checkpoint_items(self) -> dict[str, Any]:
        """What a checkpoint holds, in the loop's form (stacked over runs when several)."""
        return {"learner": self.state, "replay": self.replay, "key": {"key": self.key}}

    def save(self) -> None:
        tick = time.perf_counter()
        self.replay = self.axis.end_episodes(self.replay)
        items = self.checkpoint_items()
        for run, book in enumerate(self.books):
            book.save(self.env_steps, self.updates, self.axis.take(items, run), {})
        self.timing["save"] += time.perf_counter() - tick
        self.counts["saves"] += 1

    def restore(self) -> None:
        like = self.axis.take(self.checkpoint_items(), 0)
        restored, steps = [], set()
        for book in self.books:
            arrays, meta = book.restore(like)
            self.agent.replay.check_restored(arrays["replay"])
            restored.append(arrays)
            steps.add((int(meta["env_steps"]), int(meta["updates"])))
        if len(steps) != 1:
            raise ConfigError(
                f"the seeds' newest checkpoints are at different steps {sorted(steps)}; resume "
                "each seed's folder on its own, or delete the newer checkpoints."
            )
        ((self.env_steps, self.updates),) = steps
        items = self.agent.parallel.replicate(self.axis.stack(restored))
        self.state, self.replay, self.key = items["learner"], items["replay"], items["key"]["key"]
        folders = ", ".join(str(book.run_dir) for book in self.books)
        print(f"resuming {folders} from env step {self.env_steps} ({self.updates} updates)")

    def stop_if_requested(self) -> None:
        """Once SIGTERM or SIGINT has arrived: save every run and raise ``RunStopped``."""
        signum = next((b.stop_requested for b in self.books if b.stop_requested), None)
        if signum is None:
            return
        self.save()
        folder = self.books[0].run_dir.parent if len(self.books) > 1 else self.books[0].run_dir
        raise RunStopped(folder, signum, self.env_steps)

    def reset_seeds(self) -> list[int]:
        """The environments' reset seeds at this env step: run k's E envs get its seed's
        ``_env_seed + i``, as a vector env of its own reset with that seed would."""
        num_envs = self.cfg.env.num_envs
        return [_env_seed(s, self.env_steps) + i for s in self.seeds for i in range(num_envs)]

    # -- the loop -------------------------------------------------------------------------------
    def run(self, *, resume: bool) -> list[dict[str, Any]]:
        cfg, axis = self.cfg, self.axis
        run, num_envs = cfg.run, cfg.env.num_envs
        if resume:
            self.restore()
        budget = run.env_steps
        venv = make_vector_env(cfg.env, num_envs=num_envs * axis.runs, seed=0, mode="train")
        obs, _ = venv.reset(seed=self.reset_seeds())
        for i, book in enumerate(self.books):  # one progress bar for a group
            book.start_progress(self.env_steps, show=i == 0)
        started = time.perf_counter()
        try:
            while self.env_steps < budget:
                self.stop_if_requested()
                temperature = temperature_at(cfg.search, self.env_steps / budget)
                self.key, sub = axis.split_key(self.key)
                tick = time.perf_counter()
                obs_device = axis.per_run(jnp.asarray(obs))
                out = axis.act(self.state.variables, sub, obs_device, temperature, 1.0)
                actions = np.asarray(out.action).reshape(-1)
                self._timed("act", tick)
                before = self.env_steps
                self.env_steps += num_envs
                self.counts["iterations"] += 1
                self.learn(cfg.updates_by(self.env_steps) - self.updates)
                tick = time.perf_counter()
                next_obs, reward, terminated, truncated, _ = venv.step(actions)
                self._timed("env", tick)
                for r, book in enumerate(self.books):
                    book.check_env_output(
                        axis.envs_of(next_obs, r), axis.envs_of(reward, r), self.env_steps
                    )
                tick = time.perf_counter()
                self.replay = axis.add(
                    self.state,
                    self.replay,
                    obs_device,
                    out.action,
                    axis.per_run(reward),
                    axis.per_run(terminated),
                    axis.per_run(truncated),
                    out.policy,
                )
                self._timed("add", tick, self.replay)
                done = terminated | truncated
                for r, book in enumerate(self.books):
                    book.step_rewards(axis.envs_of(reward, r), axis.envs_of(done, r))
                obs = next_obs
                if self.env_steps >= budget:
                    break
                evaluated = crossed(before, self.env_steps, run.eval_every)
                if evaluated:
                    self.evaluate(run.eval_episodes, final=False)
                if evaluated or crossed(before, self.env_steps, run.log_every):
                    self.write_rows(evaluated)
                if crossed(before, self.env_steps, run.checkpoint_every):
                    self.save()
                    obs, _ = venv.reset(seed=self.reset_seeds())
            if self.updates < cfg.total_updates:
                self.learn(cfg.total_updates - self.updates)  # loop.extra_updates at the end
            returns = self.evaluate(run.final_eval_episodes, final=True)
            self.write_rows(evaluated=True)
            self.save()
        finally:
            venv.close()
        # Bookkeeping between the phases (metrics rows, progress, key splits, env resets).
        self.timing["host"] = time.perf_counter() - started - sum(self.timing.values())
        phases = {k: round(v, 3) for k, v in self.timing.items()}
        extra: dict[str, Any] = {
            "seconds_by_phase": phases,
            "counts": dict(self.counts),
            "compute": self.compute_spent(),
        }
        if axis.runs > 1:
            extra["seeds_in_process"] = axis.runs
        return [
            book.finish(self.env_steps, self.updates, r, extra)
            for book, r in zip(self.books, returns, strict=True)
        ]


def restore_newest(cfg: Config, run_dir: str | Path) -> tuple[Parts, Any, int]:
    """The agent of ``cfg``, the network variables of the newest checkpoint in ``run_dir``
    and the env step it was saved at."""
    agent = Parts(cfg, probe_spaces(cfg))
    ckpt = Checkpointer(run_dir, keep=cfg.run.keep_checkpoints)
    arrays, meta = ckpt.restore({"learner": agent.new_learner()})
    ckpt.close()
    return agent, arrays["learner"].variables, int(meta["env_steps"])


def evaluate(
    cfg: Config,
    run_dir: str | Path,
    *,
    episodes: int,
    video: Video | None = None,
    stochastic: bool = False,
) -> list[float]:
    """Greedy evaluation of the newest checkpoint in ``run_dir``, recorded if ``video``; with
    ``stochastic``, the acting search of training at that checkpoint (its exploration noise,
    its temperature)."""
    agent, variables, steps = restore_newest(cfg, run_dir)
    policy = checkpoint_policy(cfg, agent, variables, steps, stochastic=stochastic)
    seed = evaluation_seed(cfg.run.seed, steps)
    return evaluate_policy(cfg.env, policy, episodes=episodes, seed=seed, video=video)


def checkpoint_policy(cfg: Config, agent: Parts, variables: Any, steps: int, *, stochastic: bool):
    """``obs -> actions`` of a checkpoint at env step ``steps``: the greedy search, or with
    ``stochastic`` the acting search of training at that step (its temperature, noise 1)."""
    key = jax.random.PRNGKey(steps)
    if not stochastic:
        return greedy_policy(agent.act, variables, key)
    temperature = temperature_at(cfg.search, steps / cfg.run.env_steps)
    return search_policy(agent.act, variables, key, temperature=temperature, noise=1.0)
