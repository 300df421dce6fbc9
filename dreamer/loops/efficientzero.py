"""EfficientZero's entry for the command line: train and evaluate in the loop its env needs.

A JAX-native environment (``gymnax:<id>``, a factory returning ``envs.JaxEnv``) trains in the
fused loop (``dreamer.loops.fused``), any other in the host loop (``dreamer.loops.host``).
Both loops build the agent with its builder (``dreamer.agents.efficientzero.builder``) and
neither imports the other: the choice is made here, once per command.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamer.agents.efficientzero.builder import ALGO, Parts, Spaces
from dreamer.agents.efficientzero.config import Config, ConfigError
from dreamer.loops import fused, host
from dreamer.shell.checkpoint import Checkpointer, CheckpointError
from dreamer.shell.evaluation import Video

__all__ = ["ALGO", "Agent", "Config", "evaluate", "is_jax_native", "train", "train_seeds"]


def is_jax_native(cfg: Config) -> bool:
    """Whether ``cfg``'s environment is JAX-native (it then trains in the fused loop)."""
    import envs

    return (
        envs.is_jax_env_id(cfg.env.id)
        or envs.try_make_jax(cfg.env.id, **cfg.env.options) is not None
    )


def train(
    cfg: Config, run_dir: str | Path, *, resume: bool = False, profile: bool = False
) -> dict[str, Any]:
    """Train (or continue) an EfficientZero run in ``run_dir``; returns the summary.

    ``profile`` (host loop only) waits for the device after every phase so that
    ``seconds_by_phase`` in the summary attributes time exactly (see ``host.train``).
    """
    run_dir = Path(run_dir)
    if not resume:  # a new run allocates what its budget fills (config.json records it)
        cfg = cfg.sized_to_budget()
    if resume and Checkpointer(run_dir).latest_step() is None:
        raise CheckpointError(
            f"{run_dir} has no complete checkpoint to resume from; start the run again "
            "with `python -m dreamer train`."
        )
    if is_jax_native(cfg):
        return fused.train_seeds(cfg, [run_dir], [cfg.run.seed], resume=resume)[0]
    return host.train(cfg, run_dir, resume=resume, profile=profile)


def train_seeds(
    cfg: Config, run_dirs: Sequence[Path], seeds: Sequence[int], *, resume: bool
) -> list[dict[str, Any]]:
    """Train ``seeds`` of ``cfg`` together in one process, seed k in ``run_dirs[k]``: seeds
    ``vmap``ped in the fused loop for a JAX-native env, in the host loop for any other."""
    if not resume:  # a new run allocates what its budget fills (config.json records it)
        cfg = cfg.sized_to_budget()
    if is_jax_native(cfg):
        return fused.train_seeds(cfg, run_dirs, seeds, resume=resume)
    return host.train_seeds(cfg, run_dirs, seeds, resume=resume)


def evaluate(
    cfg: Config,
    run_dir: str | Path,
    *,
    episodes: int,
    video: Video | None = None,
    stochastic: bool = False,
) -> list[float]:
    """Greedy evaluation of the newest checkpoint in ``run_dir``, recorded if ``video``; with
    ``stochastic``, the acting search as in training (exploration noise, the temperature of
    the checkpoint's step)."""
    if is_jax_native(cfg):
        if video is not None:
            raise ConfigError(f"{cfg.env.id} is a JAX-native env: it renders no video frames.")
        return fused.evaluate_checkpoint(
            cfg, Path(run_dir), episodes=episodes, stochastic=stochastic
        )
    return host.evaluate(cfg, run_dir, episodes=episodes, video=video, stochastic=stochastic)


class Agent(Parts):
    """The builder's ``Parts`` of ``cfg``, for scripts and tests that rebuild a run's learner:
    the spaces are read from the env (a gymnasium probe, ``host.probe_spaces``) unless given."""

    def __init__(self, cfg: Config, spaces: Spaces | None = None):
        super().__init__(cfg, spaces if spaces is not None else host.probe_spaces(cfg))
