"""Run-folder bookkeeping shared by every training loop (shell code).

``RunBook`` owns what every loop (EfficientZero and the baselines) does the same way:
``config.json``, the lines printed at start, metric rows (named as in ``runlog.METRIC_NAMES``),
the evaluation curve, orbax checkpoints with their JSON counters, the wall clock across
resumes, the progress bar and ``summary.json``. The loops only decide *when* (``crossed``)
and supply the numbers.

While it is open a ``RunBook`` holds the folder's lock (``dreamer.shell.runlock``: one writer per
folder) and turns SIGTERM and SIGINT into a stop request that the loops poll at each step
boundary with ``stop_if_requested`` (``dreamer.shell.signals``). The loops hand it each env step's
outputs (``check_env_output``: NaN/inf stop the run, see ``dreamer.shell.envcheck``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dreamer.core.configtree import to_dict
from dreamer.core.errors import EnvOutputError, NonFiniteLossError, RunFolderError
from dreamer.shell import runlock
from dreamer.shell.checkpoint import Checkpointer, latest_checkpoint
from dreamer.shell.envcheck import non_finite
from dreamer.shell.evaluation import evaluate_policy
from dreamer.shell.progress import Progress
from dreamer.shell.runlog import (
    EPISODIC_LENGTH,
    EPISODIC_RETURN,
    EVAL_RETURN,
    SPS,
    RunLog,
    device_description,
    remove_run_files,
    resume_command,
    summarize,
)
from dreamer.shell.signals import RunStopped, StopRequest

EVAL_SEED_OFFSET = 1_000_000
"""Evaluation envs are seeded with ``run.seed + EVAL_SEED_OFFSET + env_steps``."""


def evaluation_seed(seed: int, env_steps: int) -> int:
    """The seed of the evaluation envs of run seed ``seed`` at ``env_steps``: a checkpoint's
    ``dreamer evaluate`` plays the episodes of the evaluation training made at its step."""
    return seed + EVAL_SEED_OFFSET + env_steps


def metric_name(key: str) -> str:
    """The metrics.csv / TensorBoard name of an algorithm's metric ``key``.

    Names that already hold a ``/`` (``losses/value``, ``charts/epsilon``) are kept as they
    are; a bare name becomes a chart (``grad_norm`` -> ``charts/grad_norm``).
    """
    return key if "/" in key else f"charts/{key}"


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, after]`` (never when every <= 0)."""
    return every > 0 and after // every > before // every


def check_can_start(run_dir: str | Path) -> None:
    """A new run may start in ``run_dir`` unless it holds a complete checkpoint (the files of
    an attempt that stopped before its first checkpoint are replaced)."""
    latest = latest_checkpoint(run_dir)
    if latest is not None:
        raise RunFolderError(
            f"{run_dir} already holds a run (its newest checkpoint is at env step {latest}). "
            f"Continue it with `{resume_command(run_dir)}`, or choose another run folder "
            "(--out)."
        )


class RunBook:
    """Bookkeeping of one run folder; see the module docstring."""

    def __init__(
        self,
        algo: str,
        cfg: Any,
        run_dir: str | Path,
        *,
        resume: bool,
        reward_check: Callable[[np.ndarray, int], Any] | None = None,
    ):
        """``reward_check(reward, env_steps)``, if given, sees every training step's rewards
        after the NaN/inf check (EfficientZero's ``RewardScale``: rewards beyond its supports)."""
        self.algo = algo
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        runlock.acquire(self.run_dir)
        try:
            if not resume:
                check_can_start(self.run_dir)
                remove_run_files(self.run_dir)
            announce(algo, cfg, self.run_dir, resume=resume)
            keep = cfg.run.keep_checkpoints
            self.checkpointer = Checkpointer(self.run_dir, keep=keep, writer=True)
            self.log = RunLog(self.run_dir)
            if not resume:
                self.log.write_config(algo, to_dict(cfg))
        except BaseException:
            runlock.release(self.run_dir)
            raise
        self._stop = StopRequest().__enter__()
        self.eval_curve: list[tuple[int, float]] = []
        self.episode_returns: list[float] = []  # training episodes finished since the last row
        self.episode_lengths: list[int] = []  # and their lengths
        self.last_return: float | None = None
        self._wall_before = 0.0
        self._start = time.perf_counter()
        self._sps_mark = (time.perf_counter(), 0)
        self.progress: Progress | None = None
        self._episode_totals = (0.0, 0.0, 0)  # (return sum, length sum, count) from add_episodes
        self._running: np.ndarray | None = None  # returns of the running training episodes
        self._lengths: np.ndarray | None = None  # and their lengths so far
        self._reward_check = reward_check

    # -- time and progress -------------------------------------------------------------------
    def wall_seconds(self) -> float:
        return self._wall_before + time.perf_counter() - self._start

    def start_progress(self, env_steps: int, *, show: bool = True) -> None:
        self._sps_mark = (time.perf_counter(), env_steps)
        enabled = show and self.cfg.run.progress
        self.progress = Progress(self.cfg.run.env_steps, env_steps, enabled=enabled, desc=self.algo)

    def advance(self, steps: int) -> None:
        if self.progress is not None:
            latest_eval = self.eval_curve[-1][1] if self.eval_curve else None
            self.progress.update(steps, ret=self.last_return, eval=latest_eval)

    def step_rewards(self, reward: np.ndarray, done: np.ndarray) -> None:
        """Account one vector-env step: running training returns, progress bar."""
        if self._running is None or len(self._running) != len(reward):
            self._running = np.zeros(len(reward))
            self._lengths = np.zeros(len(reward), np.int64)
        self._running += reward
        self._lengths += 1
        for value, length in zip(self._running[done], self._lengths[done], strict=True):
            self.episode_returns.append(float(value))
            self.episode_lengths.append(int(length))
            self.last_return = float(value)
        self._running[done] = 0.0
        self._lengths[done] = 0
        self.advance(len(reward))

    def add_episodes(self, return_sum: float, length_sum: float, count: int) -> None:
        """Training episodes counted elsewhere (the fused loop sums them on the device)."""
        r, n, c = self._episode_totals
        self._episode_totals = (r + return_sum, n + length_sum, c + int(count))

    @property
    def stop_requested(self) -> int | None:
        """The signal that asked the run to stop, if one did (see ``stop_if_requested``)."""
        return self._stop.signum

    # -- evaluation and metrics --------------------------------------------------------------
    def evaluate(
        self,
        act: Callable[[np.ndarray], np.ndarray],
        env_steps: int,
        episodes: int,
        *,
        max_steps: int = 0,
    ) -> list[float]:
        """Run the greedy evaluation and add its mean to the eval curve (0 episodes: none)."""
        if episodes == 0:  # run.final_eval_episodes=0: no final evaluation
            return []
        returns = evaluate_policy(
            self.cfg.env,
            act,
            episodes=episodes,
            seed=evaluation_seed(self.cfg.run.seed, env_steps),
            max_steps=max_steps,
        )
        self.add_eval(env_steps, returns)
        return returns

    def add_eval(self, env_steps: int, returns: list[float]) -> None:
        """An evaluation's returns at ``env_steps`` (its mean joins the eval curve)."""
        self.eval_curve.append((env_steps, float(np.mean(returns))))

    def write_row(
        self,
        env_steps: int,
        updates: int,
        metrics: Mapping[str, Any],
        *,
        evaluated: bool,
    ) -> None:
        """One metrics.csv row; ``evaluated`` says whether the newest eval belongs to it (it
        does only if it was made at ``env_steps``).

        ``metrics`` are the algorithm's own (losses, diagnostics), named by ``metric_name``.
        """
        now = time.perf_counter()
        mark_time, mark_steps = self._sps_mark
        sps = (env_steps - mark_steps) / max(now - mark_time, 1e-9)
        self._sps_mark = (now, env_steps)
        returns, lengths = self.episode_returns, self.episode_lengths
        self.episode_returns, self.episode_lengths = [], []
        return_sum, length_sum, count = self._episode_totals
        self._episode_totals = (0.0, 0.0, 0)
        count += len(returns)
        row = {
            "env_steps": env_steps,
            "updates": updates,
            "wall_seconds": round(self.wall_seconds(), 3),
            EPISODIC_RETURN: (return_sum + float(np.sum(returns))) / count if count else None,
            EPISODIC_LENGTH: (length_sum + float(np.sum(lengths))) / count if count else None,
            EVAL_RETURN: self._eval_at(env_steps) if evaluated else None,
            SPS: sps,
        }
        row.update({metric_name(k): _scalar(v) for k, v in metrics.items()})
        self.log.log(row)

    def _eval_at(self, env_steps: int) -> float | None:
        if self.eval_curve and self.eval_curve[-1][0] == env_steps:
            return self.eval_curve[-1][1]
        return None

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self, env_steps: int, updates: int, arrays: Any, extra: Mapping[str, Any]) -> None:
        """Checkpoint ``arrays`` with the counters and this book's own state.

        A checkpoint ends the running training episodes: every loop resets its environments
        right after one (which is what lets a resumed run continue exactly), so their partial
        returns are dropped here, as a resumed run never sees them.
        """
        meta = {
            "env_steps": int(env_steps),
            "updates": int(updates),
            "wall_seconds": self.wall_seconds(),
            "eval_curve": [[int(s), float(r)] for s, r in self.eval_curve],
            "episode_returns": [float(r) for r in self.episode_returns],  # not yet in a row
            "episode_lengths": [int(n) for n in self.episode_lengths],
            "last_return": self.last_return,
            **extra,
        }
        self.checkpointer.save(env_steps, arrays, meta)
        self._running = None

    def restore(self, like: Any) -> tuple[Any, dict[str, Any]]:
        """Newest checkpoint into the structure of ``like``; rewinds metrics and counters."""
        arrays, meta = self.checkpointer.restore(like, set_aside=True)
        step = int(meta["env_steps"])
        # The final checkpoint is saved after the final evaluation, which will be redone.
        keep_upto = step - 1 if step >= self.cfg.run.env_steps else step
        self.log.truncate_after(keep_upto)
        self.eval_curve = [(int(s), float(r)) for s, r in meta["eval_curve"] if s <= keep_upto]
        self._wall_before = float(meta["wall_seconds"])
        self._start = time.perf_counter()
        self.episode_returns = [float(r) for r in meta.get("episode_returns", [])]
        self.episode_lengths = [int(n) for n in meta.get("episode_lengths", [])]
        self.last_return = meta.get("last_return")
        return arrays, meta

    def stop_if_requested(self, env_steps: int, save: Callable[[], None]) -> None:
        """Call at each step boundary: once SIGTERM or SIGINT has arrived, ``save()`` a
        checkpoint at ``env_steps`` and raise ``RunStopped`` (see ``dreamer.shell.signals``)."""
        if self._stop.signum is not None:
            save()
            raise RunStopped(self.run_dir, self._stop.signum, env_steps)

    def check_finite(self, finite: bool, env_steps: int) -> None:
        if not finite:
            raise NonFiniteLossError(
                f"{self.algo}: loss or gradient became NaN/inf before env step {env_steps}; "
                f"{self.kept_checkpoint()}. Lower the learning rate (or set a gradient clip) "
                "and start again."
            )

    def check_env_output(self, obs: np.ndarray, reward: np.ndarray, env_steps: int) -> None:
        """Call right after each ``venv.step`` (``env_steps`` counts that step): NaN or inf
        stops the run before it reaches the replay; then the agent's own ``reward_check``
        runs, if it gave one (see ``dreamer.shell.envcheck``)."""
        problem = non_finite(obs, reward)
        if problem is not None:
            raise EnvOutputError(
                f"environment {self.cfg.env.id} returned {problem} at env step {env_steps}; "
                f"the run stopped and {self.kept_checkpoint()}. Fix the environment (or wrap it to "
                f"replace non-finite values), then continue with `{resume_command(self.run_dir)}`."
            )
        if self._reward_check is not None:
            self._reward_check(reward, env_steps)

    def kept_checkpoint(self) -> str:
        """What an error says survives the run: its newest checkpoint, or that none was saved."""
        latest = self.checkpointer.latest_step()
        return (
            "no checkpoint was saved yet"
            if latest is None
            else (f"the checkpoint at env step {latest} is kept")
        )

    # -- the end ---------------------------------------------------------------------------------
    def finish(
        self,
        env_steps: int,
        updates: int,
        final_returns: list[float],
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        if self.progress is not None:
            self.progress.close()
        summary = summarize(
            algo=self.algo,
            env_id=self.cfg.env.id,
            seed=self.cfg.run.seed,
            env_steps=env_steps,
            updates=updates,
            wall_seconds=self.wall_seconds(),
            eval_curve=self.eval_curve,
            final_eval_returns=final_returns,
            config=to_dict(self.cfg),
        )
        summary.update(extra or {})
        self.log.write_summary(summary)
        return summary

    def close(self) -> None:
        self._stop.__exit__()
        if self.progress is not None:
            self.progress.close()
        self.log.close()
        self.checkpointer.close()
        runlock.release(self.run_dir)


def announce(algo: str, cfg: Any, run_dir: Path, *, resume: bool) -> None:
    """Prints, before anything is compiled, where the run goes and what it runs on."""
    env = cfg.env
    options = f", options {env.options}" if env.options else ""
    print(
        f"{'resuming' if resume else 'training'} {algo}\n"
        f"  run folder  {run_dir}\n"
        f"  device      {device_description()}\n"
        f"  env         {env.id} ({env.num_envs} env(s){options}), "
        f"budget {cfg.run.env_steps:,} env steps\n"
        "compiling… (XLA compiles the networks before the first steps: from seconds to a few "
        "minutes)",
        flush=True,
    )


def _scalar(value: Any) -> float | None:
    if value is None:
        return None
    return float(np.asarray(value))
