"""Time the hot paths of a preset: one acting search and one learner update.

    python -m benchmarks.timing --preset atari100k --env ALE/Pong-v5 [--updates 3] [--set k=v]

Fills a replay with real environment steps (random actions), then times the jitted acting
search (batch ``env.num_envs``) and ``update`` after compilation, and projects the wall-clock
of a full run of the preset: ``env_steps * act + total_updates * update`` (environment time
and evaluation excluded). Prints the device and versions and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from benchmarks import machine


def measure(cfg, *, updates: int, acts: int = 20) -> dict:
    """Seconds per acting search and per update for ``cfg`` (an EfficientZero config)."""
    from dreamer.agent import _Agent
    from dreamer.evaluation import make_vector_env

    agent = _Agent(cfg)
    state, replay = agent.new_learner(), agent.new_replay()
    n = cfg.env.num_envs
    venv = make_vector_env(cfg.env, num_envs=n, seed=cfg.run.seed, mode="train")
    obs, _ = venv.reset(seed=cfg.run.seed)
    rng = np.random.default_rng(cfg.run.seed)
    uniform = np.full((n, agent.spaces.num_actions), 1.0 / agent.spaces.num_actions)
    fill = max(cfg.replay.unroll_steps + cfg.replay.td_steps + 2, 64)
    for _ in range(fill):
        actions = rng.integers(0, agent.spaces.num_actions, size=n)
        nxt, reward, term, trunc, _ = venv.step(actions)
        replay.add(obs, actions, reward, term, trunc, uniform)
        obs = nxt
    venv.close()

    def timed(fn, repeats: int) -> tuple[float, float]:
        tick = time.perf_counter()
        jax.block_until_ready(fn())
        first = time.perf_counter() - tick
        tick = time.perf_counter()
        for _ in range(repeats):
            jax.block_until_ready(fn())
        return first, (time.perf_counter() - tick) / repeats

    key = jax.random.PRNGKey(0)
    act_first, act = timed(lambda: agent.act(state.variables, key, obs, 1.0, 1.0), acts)
    batch, _ = replay.sample(rng, beta=1.0)
    holder = {"state": state}

    def one_update():
        holder["state"], metrics = agent.update(holder["state"], batch)
        return metrics

    update_first, update = timed(one_update, updates)
    steps, total_updates = cfg.run.env_steps, cfg.total_updates
    return {
        "act_seconds": act,
        "update_seconds": update,
        "compile_seconds": act_first - act + update_first - update,
        "env_steps_per_second_acting": n / act,
        "updates_per_second": 1.0 / update,
        "projected_run_hours": (steps / n * act + total_updates * update) / 3600,
        "env_steps": steps,
        "total_updates": total_updates,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from dreamer.config import apply_overrides, replace_path
    from experiments import presets

    p = argparse.ArgumentParser(prog="python -m benchmarks.timing", description=__doc__)
    p.add_argument("--preset", default="atari100k")
    p.add_argument("--env", default=None)
    p.add_argument("--updates", type=int, default=3, help="timed updates after compilation")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    p.add_argument("--out", type=Path, default=Path("results/timing"))
    args = p.parse_args(argv)
    cfg = presets.get("efficientzero", args.preset)
    if args.env:
        cfg = replace_path(cfg, "env.id", args.env)
    cfg = apply_overrides(cfg, args.overrides)
    info = machine.describe_machine()
    print(machine.format_machine(info), flush=True)
    result = {"preset": args.preset, "env": cfg.env.id, "overrides": args.overrides}
    result.update(measure(cfg, updates=args.updates))
    result["machine"] = info
    for key in ("act_seconds", "update_seconds", "compile_seconds", "projected_run_hours"):
        print(f"{key:>22s}: {result[key]:.4g}")
    print(
        f"acting {result['env_steps_per_second_acting']:.1f} env steps/s, "
        f"{result['updates_per_second']:.3g} updates/s; a full {cfg.run.env_steps}-step run "
        f"({cfg.total_updates} updates) projects to {result['projected_run_hours']:.2f} h"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.preset}__{cfg.env.id.replace('/', '-')}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
