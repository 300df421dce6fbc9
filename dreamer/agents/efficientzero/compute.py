"""Compute accounting: model evaluations spent on acting, reanalysis, dreaming and gradients.

The unit is one **model evaluation**: one state through the representation or the dynamics
together with the prediction heads (what one search simulation costs). The counts are exact
functions of the config and of the run's position (env steps, updates), so they are the same
in the host loop and the fused loop and survive a resume:

- ``acting``: ``num_envs * (1 + search.num_simulations)`` per vector-env iteration (the root,
  then one evaluation per simulation);
- ``reanalysis``: the targets. Every new step's observation is evaluated once by the target
  network (``num_envs`` per iteration: its value for the target cache). With
  ``reanalyze_mode="cached"``, every target sync refreshes the filled part of the replay (in
  whole chunks), ``1 + replay.reanalyze_simulations`` per state (1 when nothing is searched:
  no fraction reanalysed and n-step value targets); with ``"per_batch"``, every update
  evaluates its ``B * (K + 1)`` bootstrap states (none for ``value_target="search"``, which
  needs no bootstrap) and searches ``replay.searched_rows * (K + 1)`` states: the reanalysed
  fraction of the batch, or all of it when value targets come from search (``"search"``,
  ``"mixed"``);
- ``gradient``: ``3 * B * (1 + 2K)`` per update: the unroll (``1 + K``) and the consistency
  targets (``K``) forward, and the backward pass counted as two forwards;
- ``dreaming``: per dreaming update, with ``M`` starts and horizon ``H``: the target network's
  rollout ``M (1 + H)``, the searches ``M H (1 + dream.simulations)``, the online replay
  ``M (1 + H)`` and the prediction head's backward ``2 M H``.

Evaluation episodes are not counted: they measure the agent, they do not train it.
"""

from __future__ import annotations

from dreamer.agents.efficientzero.config import Config
from dreamer.agents.efficientzero.dreaming import dream_starts

PARTS = ("acting", "reanalysis", "dreaming", "gradient")


def per_update(cfg: Config) -> dict[str, int]:
    """Model evaluations of one update: gradient step, per-batch targets, dreaming."""
    r, k = cfg.replay, cfg.replay.unroll_steps
    b = r.batch_size
    per_batch = 0
    if r.reanalyze_mode == "per_batch":
        bootstrap = b * (k + 1) if r.value_target != "search" else 0
        per_batch = bootstrap + r.searched_rows * (k + 1) * (1 + _reanalysis_sims(cfg))
    m, h = dream_starts(cfg), cfg.dream.horizon
    dream = m * (2 * (1 + h) + h * (1 + cfg.dream.simulations) + 2 * h) if m else 0
    return {"gradient": 3 * b * (1 + 2 * k), "reanalysis": per_batch, "dreaming": dream}


def _reanalysis_sims(cfg: Config) -> int:
    return cfg.replay.reanalyze_simulations or cfg.search.num_simulations


def refreshed_states(cfg: Config, env_steps: int, updates: int, chunk_slots: int) -> int:
    """States the cached-target refreshes have evaluated once ``updates`` are made, the last
    of them at ``env_steps`` (the loops refresh after every ``target_update_every``-th
    update, over the replay filled at that moment, in chunks of ``chunk_slots`` slots)."""
    if cfg.replay.reanalyze_mode != "cached":
        return 0
    period, num_envs = cfg.optim.target_update_every, cfg.env.num_envs
    slots = cfg.replay.capacity // num_envs
    total = 0
    for u in range(period, updates + 1, period):
        steps = min(_steps_at_update(cfg, u), env_steps)
        filled = min(steps // num_envs, slots)
        total += -(-filled // chunk_slots) * chunk_slots * num_envs
    return total


def _steps_at_update(cfg: Config, u: int) -> int:
    """Env steps collected when update ``u`` (1-based) is made: the first iteration whose
    step count brings ``updates_by`` to ``u`` (the budget for the final extra updates)."""
    num_envs = cfg.env.num_envs
    p, q = cfg.replay_ratio_fraction
    if p == 0 or u > cfg.updates_by(cfg.run.env_steps):
        return cfg.run.env_steps
    learning = -(-u * q // p)  # smallest learning steps with floor(learning * p / q) >= u
    steps = cfg.warmup_steps + learning
    return min(-(-steps // num_envs) * num_envs, cfg.run.env_steps)


def spent(cfg: Config, env_steps: int, updates: int, chunk_slots: int) -> dict[str, int]:
    """Model evaluations spent by a run at ``env_steps`` and ``updates``, by part and total."""
    unit = per_update(cfg)
    iterations = env_steps // cfg.env.num_envs
    dream_updates = max(0, updates - cfg.dream_start_update) if unit["dreaming"] else 0
    refresh = refreshed_states(cfg, env_steps, updates, chunk_slots)
    refresh_sims = _reanalysis_sims(cfg) if cfg.replay.searched_rows > 0 else 0
    parts = {
        "acting": iterations * cfg.env.num_envs * (1 + cfg.search.num_simulations),
        "reanalysis": iterations * cfg.env.num_envs
        + refresh * (1 + refresh_sims)
        + updates * unit["reanalysis"],
        "dreaming": dream_updates * unit["dreaming"],
        "gradient": updates * unit["gradient"],
    }
    return {**parts, "total": sum(parts.values())}


def as_metrics(counts: dict[str, int]) -> dict[str, float]:
    """The counts as ``metrics.csv`` columns ``compute/<part>`` (cumulative)."""
    return {f"compute/{k}": float(v) for k, v in counts.items()}
