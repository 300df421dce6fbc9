"""Time the real training loop of a preset and project a whole run from it.

    python -m benchmarks.timing --preset atari100k --env ALE/MsPacman-v5 --steps 10000
    python -m benchmarks.timing --preset debug            # CPU-sized, seconds

Runs the real host loop (``dreamer.loops.host.HostLoop``) for ``--steps`` env steps, the preset's
warm-up, replay ratio, target refreshes and a final evaluation included, waiting for the
device after each phase so that time is attributed exactly. Compilation is timed first and
apart. From the loop it reports env steps/s with updates and each phase's share (act, env,
replay add, learn = sampling + updates, target refresh, evaluation, checkpoint, and host
bookkeeping in between), and the unit costs:

    act/env/add/host per vector-env iteration, learn per update, refresh per refreshed state,
    evaluation per evaluation step, save per checkpoint.

The projection of a whole run multiplies these by the preset's own counts: iterations =
env_steps / num_envs, total_updates, refreshed states (each target period refreshes the
filled part of the replay), evaluation steps (this run's final evaluation taken as the size
of one round, times the rounds of the preset), checkpoints, plus compilation. ``host`` is the
loop's time outside the named phases, so the phases add up to the loop's wall-clock; the
acting search and the updates alone (``hot_path_hours``) are reported for comparison, since
they leave out everything else. Prints the device and versions; writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import machine


def precompile(agent: Any) -> float:
    """Compile every jitted function the loop calls, at the loop's shapes; returns seconds."""
    cfg, sp = agent.cfg, agent.spaces
    tick = time.perf_counter()
    state, replay = agent.new_learner(), agent.new_replay()
    key = jax.random.PRNGKey(0)
    sizes = {cfg.env.num_envs, min(cfg.env.num_eval_envs, cfg.run.final_eval_episodes)}
    sizes.add(min(cfg.env.num_eval_envs, cfg.run.eval_episodes))
    for n in sorted(sizes):
        obs = np.zeros((n,) + sp.obs_shape, sp.obs_dtype)
        out = agent.act(state.variables, key, jnp.asarray(obs), 1.0, 1.0)
    n = cfg.env.num_envs
    obs = jnp.zeros((n,) + sp.obs_shape, sp.obs_dtype)
    out = agent.act(state.variables, key, obs, 1.0, 1.0)
    none = np.zeros(n, bool)
    replay = agent.add(state, replay, obs, out.action, np.zeros(n), none, none, out.policy)
    state, replay, _ = agent.learn(state, replay, 0)
    replay = agent.refresh(state, replay, 0)
    replay = agent.end_episodes(replay)
    jax.block_until_ready((state, replay))
    return time.perf_counter() - tick


def unit_costs(summary: dict[str, Any]) -> dict[str, float]:
    """Seconds per iteration (act, env, add), per update, per refreshed state, per eval step."""
    phases, counts = summary["seconds_by_phase"], summary["counts"]
    per = lambda total, count: total / count if count else 0.0  # noqa: E731
    return {
        "act_per_iteration": per(phases["act"], counts["iterations"]),
        "env_per_iteration": per(phases["env"], counts["iterations"]),
        "add_per_iteration": per(phases["add"], counts["iterations"]),
        "learn_per_update": per(phases["learn"], summary["updates"]),
        "refresh_per_state": per(phases["refresh"], counts["refreshed_states"]),
        "eval_per_step": per(phases["eval"], counts["eval_steps"]),
        "save_per_checkpoint": per(phases["save"], counts["saves"]),
        "host_per_iteration": per(phases["host"], counts["iterations"]),
    }


def full_run_counts(cfg: Any, eval_steps_per_round: float, chunk_states: int) -> dict[str, float]:
    """Iterations, updates, refreshed states and evaluation steps of a whole run of ``cfg``."""
    num_envs, budget = cfg.env.num_envs, cfg.run.env_steps
    iterations = budget / num_envs
    period = cfg.optim.target_update_every
    refreshed = 0
    if cfg.replay.reanalyze_mode == "cached":
        slots = cfg.replay.capacity // num_envs
        learning = max(budget - cfg.warmup_steps, 1)
        for k in range(1, cfg.total_updates // period + 1):  # refresh k after update k*period
            steps = min(budget, cfg.warmup_steps + k * period / cfg.total_updates * learning)
            filled = min(steps / num_envs, slots)
            refreshed += -(-filled * num_envs // chunk_states) * chunk_states
    rounds = (budget - 1) // cfg.run.eval_every + 1 if cfg.run.eval_every else 1
    every = cfg.run.checkpoint_every
    saves = (budget - 1) // every + 1 if every else 1
    return {
        "iterations": iterations,
        "updates": cfg.total_updates,
        "refreshed_states": refreshed,
        "eval_steps": eval_steps_per_round * rounds,
        "saves": saves,
    }


def project(costs: dict[str, float], counts: dict[str, float]) -> float:
    """Seconds of a run with ``counts``, from unit ``costs`` (compilation excluded)."""
    per_iteration = costs["act_per_iteration"] + costs["env_per_iteration"]
    per_iteration += costs["add_per_iteration"] + costs["host_per_iteration"]
    return (
        counts["iterations"] * per_iteration
        + counts["updates"] * costs["learn_per_update"]
        + counts["refreshed_states"] * costs["refresh_per_state"]
        + counts["eval_steps"] * costs["eval_per_step"]
        + counts["saves"] * costs["save_per_checkpoint"]
    )


def measure(cfg: Any, run_dir: Path, *, full: Any) -> dict[str, Any]:
    """Time ``cfg``'s real loop in ``run_dir``; project a whole run of ``full``."""
    from dreamer.agents.efficientzero.builder import Parts
    from dreamer.loops.host import HostLoop, open_book, probe_spaces

    agent = Parts(cfg, probe_spaces(cfg))
    compile_seconds = precompile(agent)
    book = open_book(cfg, run_dir, resume=False)
    try:
        loop = HostLoop(cfg, agent, [book], profile=True)
        tick = time.perf_counter()
        (summary,) = loop.run(resume=False)
    finally:
        book.close()
    wall = time.perf_counter() - tick
    costs = unit_costs(summary)
    counts = summary["counts"]
    own = {
        "iterations": counts["iterations"],
        "updates": summary["updates"],
        "refreshed_states": counts["refreshed_states"],
        "eval_steps": counts["eval_steps"],
        "saves": counts["saves"],
    }
    chunk_states = agent.learner.chunk_slots * cfg.env.num_envs
    full_counts = full_run_counts(full, counts["eval_steps"], chunk_states)
    projected = project(costs, full_counts) + compile_seconds
    phases = summary["seconds_by_phase"]
    learning_seconds = wall - phases["eval"] - phases["save"]
    return {
        "env_steps": summary["env_steps"],
        "updates": summary["updates"],
        "loop_seconds": wall,
        "compile_seconds": compile_seconds,
        "env_steps_per_second": summary["env_steps"] / max(learning_seconds, 1e-9),
        "seconds_by_phase": phases,
        "share_by_phase": {k: v / max(wall, 1e-9) for k, v in phases.items()},
        "counts": own,
        "unit_costs": costs,
        "hot_path_hours": (
            full_counts["iterations"] * costs["act_per_iteration"]
            + full_counts["updates"] * costs["learn_per_update"]
        )
        / 3600,
        "full_run": {
            "env_steps": full.run.env_steps,
            "counts": full_counts,
            "projected_seconds": projected,
            "projected_hours": projected / 3600,
        },
        "final_eval_return": summary["final_eval_return"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    from dreamer.core.configtree import apply_overrides, replace_path
    from experiments import presets

    p = argparse.ArgumentParser(prog="python -m benchmarks.timing", description=__doc__)
    p.add_argument("--preset", default="atari100k")
    p.add_argument("--env", default=None)
    p.add_argument("--steps", type=int, default=None, help="env steps of the timed loop")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    p.add_argument("--out", type=Path, default=Path("results/timing"))
    args = p.parse_args(argv)
    full = presets.get("efficientzero", args.preset)
    if args.env:
        full = replace_path(full, "env.id", args.env)
    full = apply_overrides(full, args.overrides)
    steps = args.steps or full.run.env_steps
    cfg = apply_overrides(
        full,
        [
            f"run.env_steps={steps}",
            "run.eval_every=0",
            "loop.extra_updates=0",
            "run.checkpoint_every=0",
            "run.progress=false",
        ],
    )
    info = machine.describe_machine()
    print(machine.format_machine(info), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(cfg, Path(tmp) / "run", full=full)
    result = {"preset": args.preset, "env": full.env.id, "overrides": args.overrides, **result}
    result["machine"] = info
    result["versions"] = _versions()
    shares = ", ".join(f"{k} {v:.0%}" for k, v in result["share_by_phase"].items())
    print(
        f"{result['env_steps']} env steps, {result['updates']} updates in "
        f"{result['loop_seconds']:.1f} s (+{result['compile_seconds']:.1f} s compile): "
        f"{result['env_steps_per_second']:.1f} env steps/s with updates\n"
        f"phases: {shares}\n"
        f"a full {full.run.env_steps}-step run ({full.total_updates} updates) projects to "
        f"{result['full_run']['projected_hours']:.2f} h (acting search and updates alone: "
        f"{result['hot_path_hours']:.2f} h)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.preset}__{full.env.id.replace('/', '-')}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0


def _versions() -> dict[str, str]:
    from dreamer.shell.runlog import versions

    return versions()


if __name__ == "__main__":
    raise SystemExit(main())
