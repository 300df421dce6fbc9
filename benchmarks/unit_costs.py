"""What one update, one target-cache refresh chunk and one acting step cost, for a preset on
an env: the numbers that decide a CPU-sized budget before any training run.

    python -m benchmarks.unit_costs --preset default --env gymnax:Breakout-MinAtar \\
        --set 'env.options={"image": true}'

The parts are built as a run builds them (the agent's builder, real networks, real search);
the replay, sized for the config's budget as a new run sizes it (``--set run.env_steps=N``),
is filled with random observations of the env's shape (costs do not depend on the data),
then ``--updates`` updates, one refresh chunk and ``--acts`` acting steps are timed after
their compilation. Prints seconds per unit, the floating-point operations XLA counts in each
compiled unit (the same on every machine, so where a unit's time goes can be told apart from
how fast the machine is), and the machine; nothing is written.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.machine import describe_machine, format_machine


def _seconds(fn, repeats: int) -> float:
    """Mean seconds of ``fn()`` over ``repeats`` calls, after one call that compiles."""
    jax.block_until_ready(fn())
    tick = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - tick) / repeats


def _compile(jitted, *args) -> tuple[Any, float]:
    """``jitted`` compiled for ``args``, and the floating-point operations of one call by
    XLA's cost analysis (0 where the backend gives none)."""
    compiled = jitted.lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return compiled, float((cost or {}).get("flops", 0.0))


def measure(cfg, *, updates: int, acts: int, fill: int = 300) -> dict[str, float]:
    """Seconds per update, per refresh chunk and per acting step of ``cfg`` on its env, and
    the floating-point operations of each (``*_flops``)."""
    import envs
    from dreamer.agents.efficientzero.builder import Parts, Spaces

    if envs.is_jax_env_id(cfg.env.id):
        env = envs.make_jax(cfg.env.id, **cfg.env.options)
        spaces = Spaces(env.observation_space, env.action_space, cfg.env.id)
    else:
        probe = envs.make(cfg.env.id, **cfg.env.options)
        spaces = Spaces(probe.observation_space, probe.action_space, cfg.env.id)
        probe.close()
    parts = Parts(cfg, spaces)
    state, replay = parts.new_learner(), parts.new_replay()
    rng = np.random.default_rng(0)
    e, a = cfg.env.num_envs, spaces.num_actions
    shape, dtype = (e,) + spaces.obs_shape, spaces.obs_dtype
    high = 255 if dtype == np.uint8 else 1
    for _ in range(fill):
        obs = (rng.random(shape) < 0.1).astype(dtype) * high
        replay = parts.add(
            state,
            replay,
            obs,
            rng.integers(0, a, e),
            np.zeros(e, np.float32),
            np.zeros(e, bool),
            np.zeros(e, bool),
            np.full((e, a), 1 / a, np.float32),
        )
    key, obs = jax.random.PRNGKey(0), jnp.asarray(obs)
    # compiled once, before the timed calls (which donate the states), and timed as compiled
    learn_fn, learn_flops = _compile(parts.learn, state, replay, 1)
    refresh_fn, refresh_flops = _compile(parts.refresh, state, replay, 0)
    act_fn, act_flops = _compile(parts.act, state.variables, key, obs, 1.0, 1.0)
    flops = {
        "update_flops": learn_flops,
        "refresh_chunk_flops": refresh_flops,
        "act_step_flops": act_flops,
    }
    holder = {"state": state, "replay": replay}

    def learn():
        holder["state"], holder["replay"], _ = learn_fn(holder["state"], holder["replay"], 1)
        return holder["state"]

    def refresh():
        holder["replay"] = refresh_fn(holder["state"], holder["replay"], 0)
        return holder["replay"]

    act = lambda: act_fn(holder["state"].variables, key, obs, 1.0, 1.0)  # noqa: E731
    return {
        **flops,
        "update": _seconds(learn, updates),
        "refresh_chunk": _seconds(refresh, 2),
        "refresh_chunk_states": parts.learner.chunk_slots * e,
        "act_step": _seconds(act, acts),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from dreamer.config import apply_overrides
    from experiments.presets import get

    parser = argparse.ArgumentParser(prog="python -m benchmarks.unit_costs", description=__doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--env", default="gymnax:CartPole-v1")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--acts", type=int, default=20)
    args = parser.parse_args(argv)
    cfg = apply_overrides(get("efficientzero", args.preset), [f"env.id={args.env}", *args.set])
    cfg = cfg.sized_to_budget()  # the replay a run of this budget allocates
    costs = measure(cfg, updates=args.updates, acts=args.acts)
    gflop = lambda unit: f"{costs[unit + '_flops'] / 1e9:8.3f} GFLOP"  # noqa: E731
    print(f"{args.preset} on {args.env} {' '.join(args.set)}")
    print(f"  update         {costs['update']:.4f} s  {gflop('update')}")
    print(
        f"  refresh chunk  {costs['refresh_chunk']:.4f} s  {gflop('refresh_chunk')}"
        f"  ({costs['refresh_chunk_states']} states)"
    )
    print(
        f"  acting step    {costs['act_step']:.4f} s  {gflop('act_step')}"
        f"  ({cfg.env.num_envs} envs)"
    )
    print(f"  machine        {format_machine(describe_machine())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
