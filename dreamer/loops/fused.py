"""The fused loop's shell: several seeds of one config trained in one process, one ``jit``.

For a JAX-native environment (``gymnax:<id>``, or a ``module:factory`` returning an
``envs.JaxEnv``) the whole run is ``dreamer.loops.fused_scan``'s ``chunk`` calls, with seeds
``vmap``ped. The shell only decides where chunks end (log rows, evaluations, checkpoints, the
budget), fetches metrics there, and writes one run folder per seed with the usual contract
(``config.json``, ``metrics.csv``, TensorBoard, ``checkpoints/``, ``summary.json``) through
one ``RunBook`` each. The agent's parts come from its builder, as the host loop's do.

A checkpoint holds each seed's whole ``RunState`` (learner, replay, environment states,
keys, running returns), so ``resume`` continues exactly where the run was, without cutting
episodes or resetting environments.
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
from dreamer.agents.efficientzero.builder import ALGO, Parts, Spaces, validate
from dreamer.agents.efficientzero.config import Config, ConfigError, replace_path
from dreamer.core.errors import NonFiniteLossError
from dreamer.core.sharding import split_seeds
from dreamer.loops.fused_scan import Fused, RunState, make_fused, temperature_schedule
from dreamer.shell.runbook import RunBook, crossed, evaluation_seed
from dreamer.shell.signals import RunStopped


def build(cfg: Config) -> tuple[Parts, Fused]:
    """The agent's parts (from its builder) and the fused loop of ``cfg`` (its env must be
    JAX-native)."""
    import envs

    if cfg.loop.devices != 1:
        raise ConfigError(
            f"loop.devices={cfg.loop.devices}: the fused loop ({cfg.env.id} is JAX-native) runs "
            "on one device; its seeds are the batch axis. Set loop.devices=1."
        )
    env = envs.make_jax(cfg.env.id, **cfg.env.options)
    agent = Parts(cfg, Spaces(env.observation_space, env.action_space, cfg.env.id))
    period = cfg.optim.target_update_every
    if cfg.env.num_envs * cfg.loop.replay_ratio > period:
        raise ConfigError(
            f"env.num_envs x loop.replay_ratio = {cfg.env.num_envs * cfg.loop.replay_ratio:g} "
            f"updates per iteration exceed optim.target_update_every={period}; lower one."
        )
    chunk_length = -(-cfg.run.log_every // cfg.env.num_envs)
    return agent, make_fused(cfg, agent, env, chunk_length=chunk_length)


def train_seeds(
    cfg: Config, run_dirs: Sequence[Path], seeds: Sequence[int], *, resume: bool
) -> list[dict[str, Any]]:
    """Train ``seeds`` of ``cfg`` together, seed k in ``run_dirs[k]``; the summaries."""
    if len(run_dirs) != len(seeds) or not seeds:
        raise ValueError("one run folder per seed")
    validate(cfg)
    agent, fused = build(cfg)
    books: list[RunBook] = []
    try:
        for seed, run_dir in zip(seeds, run_dirs, strict=True):
            seed_cfg = replace_path(cfg, "run.seed", int(seed))
            books.append(RunBook(ALGO, seed_cfg, run_dir, resume=resume))
        return _Runner(cfg, fused, books, np.asarray(seeds)).run(resume=resume)
    finally:
        for book in reversed(books):  # signal handlers are restored in reverse order
            book.close()


def init_seeds(fused: Fused, seeds: Any) -> RunState:
    """The seeds' initial states stacked on a leading axis, each from its own ``init`` call.

    One ``init`` per seed rather than ``vmap(init)``: the vmapped network initialisation
    never returned on XLA's CPU backend (jaxlib 0.10.2) for two seeds or more.
    """
    init = jax.jit(fused.init)
    states = [init(jnp.asarray(k, jnp.int32)) for k in np.asarray(seeds).tolist()]
    return split_seeds(jax.tree.map(lambda *xs: jnp.stack(xs), *states))


class _Runner:
    """One fused run of several seeds (see the module docstring)."""

    def __init__(self, cfg: Config, fused: Fused, books: list[RunBook], seeds: np.ndarray):
        self.cfg, self.fused, self.books, self.seeds = cfg, fused, books, seeds
        self.chunk = jax.jit(fused.chunk, donate_argnums=0)
        self.finish = jax.jit(fused.finish, donate_argnums=0)
        self.evaluate_fn = jax.jit(fused.evaluate, static_argnames=("episodes", "max_steps"))
        self.states: RunState = init_seeds(fused, seeds)
        self.env_steps = self.updates = 0
        self.timing = dict.fromkeys(("chunks", "eval", "save"), 0.0)
        self.warned_skipped = False

    # -- checkpoints --------------------------------------------------------------------------
    def save(self) -> None:
        tick = time.perf_counter()
        host = jax.device_get(self.states)
        for i, book in enumerate(self.books):
            one = jax.tree.map(lambda x: x[i], host)  # noqa: B023
            items = {"learner": one.learner, "run": one.replace(learner=None)}
            book.save(self.env_steps, self.updates, items, {})
        self.timing["save"] += time.perf_counter() - tick

    def restore(self) -> None:
        template = jax.tree.map(lambda x: x[0], self.states)
        like = {"learner": template.learner, "run": template.replace(learner=None)}
        restored, steps = [], set()
        for book in self.books:
            arrays, meta = book.restore(like)
            restored.append(arrays["run"].replace(learner=arrays["learner"]))
            steps.add((int(meta["env_steps"]), int(meta["updates"])))
        if len(steps) != 1:
            raise ConfigError(
                f"the seeds' newest checkpoints are at different steps {sorted(steps)}; resume "
                "each seed's folder on its own, or delete the newer checkpoints."
            )
        ((self.env_steps, self.updates),) = steps
        stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *restored)
        self.states = split_seeds(stacked)
        print(f"resuming {len(self.books)} seed(s) from env step {self.env_steps}")

    # -- rows and evaluation --------------------------------------------------------------------
    def write_rows(self, evaluated: bool) -> None:
        sums, episodes = jax.device_get((self.states.sums, self.states.episodes))
        zeros = jax.tree.map(jnp.zeros_like, (self.states.sums, self.states.episodes))
        self.states = self.states.replace(sums=zeros[0], episodes=zeros[1])
        spent = compute.as_metrics(self.compute_spent())  # the same for every seed
        for i, book in enumerate(self.books):
            count = float(sums["updates"][i])
            skipped = count - float(sums["finite_updates"][i])
            if skipped > count / 2:
                raise NonFiniteLossError(
                    f"seed {book.cfg.run.seed}: loss or gradient became NaN/inf in "
                    f"{skipped:.0f} of the {count:.0f} updates before env step "
                    f"{self.env_steps} (not applied). Lower the learning rate and start again."
                )
            metrics = {}
            if count:
                done = max(count - skipped, 1.0)
                metrics = {
                    k: float(v[i]) / done
                    for k, v in sums.items()
                    if k not in ("updates", "finite_updates")
                }
                metrics["charts/skipped_updates"] = skipped
            book.add_episodes(
                float(episodes["return_sum"][i]),
                float(episodes["length_sum"][i]),
                int(episodes["count"][i]),
            )
            metrics.update(spent)
            book.write_row(self.env_steps, self.updates, metrics, evaluated=evaluated)

    def compute_spent(self) -> dict[str, int]:
        """Model evaluations spent per seed so far (``dreamer.agents.efficientzero.compute``)."""
        chunk_slots = self.fused.chunk_slots
        return compute.spent(self.cfg, self.env_steps, self.updates, chunk_slots)

    def evaluate(self, episodes: int, *, final: bool) -> np.ndarray:
        tick = time.perf_counter()
        max_steps = 0 if final else self.cfg.run.eval_max_steps
        keys = jnp.stack([evaluation_key(int(s), self.env_steps) for s in self.seeds])
        returns = np.asarray(
            self.evaluate_fn(self.states, keys, episodes=episodes, max_steps=max_steps)
        )
        for book, r in zip(self.books, returns, strict=True):
            book.add_eval(self.env_steps, [float(x) for x in r])
        self.timing["eval"] += time.perf_counter() - tick
        means = ", ".join(f"{m:.1f}" for m in returns.mean(axis=1))
        print(f"[{self.env_steps:>7d} steps {self.updates:>6d} updates] eval return {means}")
        return returns

    def check_stop(self) -> None:
        signum = next((b.stop_requested for b in self.books if b.stop_requested), None)
        if signum is not None:
            self.save()
            folder = self.books[0].run_dir.parent if len(self.books) > 1 else None
            raise RunStopped(folder or self.books[0].run_dir, signum, self.env_steps)

    # -- the loop -------------------------------------------------------------------------------
    def run(self, *, resume: bool) -> list[dict[str, Any]]:
        cfg, run = self.cfg, self.cfg.run
        num_envs, budget = cfg.env.num_envs, run.env_steps
        if resume:
            self.restore()
        for i, book in enumerate(self.books):  # one progress bar for the group
            book.start_progress(self.env_steps, show=i == 0)
        started = time.perf_counter()
        while self.env_steps < budget:
            self.check_stop()
            before = self.env_steps
            events = [budget] + [
                (before // every + 1) * every
                for every in (run.log_every, run.eval_every, run.checkpoint_every)
                if every > 0
            ]
            iterations = -(-(min(events) - before) // num_envs)
            tick = time.perf_counter()
            self.states, env_steps, updates = self.chunk(
                self.states, before, self.updates, iterations
            )
            self.env_steps, self.updates = int(env_steps), int(updates)
            self.timing["chunks"] += time.perf_counter() - tick
            self.books[0].advance(self.env_steps - before)
            if self.env_steps >= budget:
                break
            evaluated = crossed(before, self.env_steps, run.eval_every)
            if evaluated:
                self.evaluate(run.eval_episodes, final=False)
            if evaluated or crossed(before, self.env_steps, run.log_every):
                self.write_rows(evaluated)
            if crossed(before, self.env_steps, run.checkpoint_every):
                self.save()
        if self.updates < cfg.total_updates:
            tick = time.perf_counter()
            self.states, updates = self.finish(
                self.states, self.updates, cfg.total_updates - self.updates, self.env_steps
            )
            self.updates = int(updates)
            self.timing["chunks"] += time.perf_counter() - tick
        final = run.final_eval_episodes
        returns = self.evaluate(final, final=True) if final else np.zeros((len(self.books), 0))
        self.write_rows(evaluated=bool(final))
        self.save()
        self.timing["host"] = time.perf_counter() - started - sum(self.timing.values())
        phases = {k: round(v, 3) for k, v in self.timing.items()}
        extra = {
            "seconds_by_phase": phases,
            "loop": "fused",
            "seeds_in_process": len(self.books),
            "compute": self.compute_spent(),
        }
        return [
            book.finish(self.env_steps, self.updates, [float(x) for x in r], extra)
            for book, r in zip(self.books, returns, strict=True)
        ]


def evaluate_checkpoint(
    cfg: Config, run_dir: Path, *, episodes: int, stochastic: bool = False
) -> list[float]:
    """Greedy episodes of the newest checkpoint in ``run_dir`` (a fused run's folder); with
    ``stochastic``, the acting search of training at that checkpoint (noise, temperature)."""
    from dreamer.shell.checkpoint import Checkpointer

    agent, fused = build(cfg)
    states = init_seeds(fused, [cfg.run.seed])
    ckpt = Checkpointer(run_dir, keep=cfg.run.keep_checkpoints)
    template = jax.tree.map(lambda x: x[0], states)
    arrays, meta = ckpt.restore({"learner": template.learner})
    ckpt.close()
    states = states.replace(learner=jax.tree.map(lambda x: jnp.asarray(x)[None], arrays["learner"]))
    steps = int(meta["env_steps"])
    key = evaluation_key(cfg.run.seed, steps)
    evaluate = jax.jit(fused.evaluate, static_argnames=("episodes", "max_steps"))
    temperature, noise = (temperature_schedule(cfg)(steps), 1.0) if stochastic else (0.0, 0.0)
    returns = evaluate(states, key[None], episodes, 0, temperature, noise)
    return [float(x) for x in np.asarray(returns)[0]]


def evaluation_key(seed: int, env_steps: int) -> jax.Array:
    """The key of the evaluation at ``env_steps`` of run seed ``seed``: the same in training
    and in a checkpoint's evaluation."""
    return jax.random.fold_in(jax.random.PRNGKey(evaluation_seed(seed, 0)), env_steps)


def seed_folders(out: Path, seeds: Sequence[int]) -> list[Path]:
    """The run folder of each seed of a group: ``out/seed<k>``."""
    return [Path(out) / f"seed{int(k)}" for k in seeds]


__all__ = ["build", "evaluate_checkpoint", "seed_folders", "train_seeds"]
