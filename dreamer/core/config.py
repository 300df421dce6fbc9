"""The config sections every agent's run config shares: ``env`` and ``run``.

Each agent's config (``dreamer.agents.efficientzero.config.Config``, the baselines'
``DQNConfig`` and ``PPOConfig``) holds an ``EnvConfig`` and a ``RunConfig`` next to its own
sections, so the shell (run folder, evaluation, checkpoints) reads the same fields whatever
the agent. The machinery over config trees (overrides, JSON, range checks) is in
``dreamer.core.configtree``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from dreamer.core.configtree import non_negative, positive, require

__all__ = ["MAX_SEED", "EnvConfig", "RunConfig"]

MAX_SEED = 2**31 - 1
"""Largest ``run.seed``: JAX keys hold 32 bits, and the loops add small offsets to the seed."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Which environment to make, and its options (passed to ``envs.make``)."""

    id: str = "CartPole-v1"
    """gymnasium id (``CartPole-v1``, ``ALE/Pong-v5``), ``package.module:factory``, or a name
    registered with ``envs.register`` (by a module in ``imports``) or by a package's
    ``dreamer.envs`` entry point."""
    imports: tuple[str, ...] = ()
    """Modules imported before the env is made, e.g. one that registers short env names
    (``--import my_pkg.my_envs``); eval, resume and benchmarks import them again."""
    num_envs: int = 1
    """Environments stepped together; one batched search call serves all of them."""
    num_eval_envs: int = 8
    """Environments stepped together during evaluation."""
    vectorization: Literal["sync", "async"] = "sync"
    """gymnasium vector-env flavour: ``sync`` (one process) or ``async`` (subprocesses)."""
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Keyword arguments of the env: your factory's own (``{"size": 4}``), gymnasium's
    ``make`` kwargs, or the Atari protocol's options (``{"grayscale": true}``)."""

    def __post_init__(self) -> None:
        positive("env.num_envs", self.num_envs)
        positive("env.num_eval_envs", self.num_eval_envs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Budget, seeding and bookkeeping of a run; shared by every algorithm."""

    seed: int = 0
    """Seed of every random stream of the run (networks, search, environments)."""
    env_steps: int = 5_000
    """Real environment steps to collect (summed over parallel environments)."""
    eval_every: int = 500
    """Evaluate every this many env steps (and at the end); 0 disables periodic evaluation."""
    eval_episodes: int = 8
    """Episodes per periodic evaluation."""
    final_eval_episodes: int = 8
    """Episodes of the final evaluation (32 for the Atari 100k protocol)."""
    eval_max_steps: int = 0
    """Periodic evaluations cut each episode after this many agent steps (0: never); the
    final evaluation always plays whole episodes."""
    log_every: int = 250
    """Write a metrics row every this many env steps."""
    checkpoint_every: int = 1_000
    """Save a checkpoint every this many env steps (and at the end); 0 saves only at the end."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk; the newest complete one is used by ``resume``."""
    progress: bool = True
    """Show a progress bar (env steps, return, ETA) on the terminal."""

    def __post_init__(self) -> None:
        require(0 <= self.seed <= MAX_SEED, "run.seed", self.seed, f"an integer in [0, {MAX_SEED}]")
        positive("run.env_steps", self.env_steps)
        non_negative("run.eval_every", self.eval_every)
        positive("run.eval_episodes", self.eval_episodes)
        non_negative("run.final_eval_episodes", self.final_eval_episodes)
        non_negative("run.eval_max_steps", self.eval_max_steps)
        positive("run.log_every", self.log_every)
        non_negative("run.checkpoint_every", self.checkpoint_every)
        require(
            self.keep_checkpoints >= 1,
            "run.keep_checkpoints",
            self.keep_checkpoints,
            "an integer >= 1 (1 keeps only the newest checkpoint, which at the end is the "
            "final one)",
        )
