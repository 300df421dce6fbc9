"""Greedy against acting: does a run's greedy policy lose what its acting policy finds?

    python -m benchmarks.greedy_loops RUN_DIR [--episodes 8]

Every evaluation of an EfficientZero run plays the greedy search (temperature 0, no noise);
training acts with the search's exploration noise. Where a run's training episodes reach a
reward its evaluations never show, this plays the newest checkpoint of ``RUN_DIR`` both ways
on the same evaluation seeds and reports, per way, the returns, how often each action was
taken, and the share of an episode's steps spent on its most frequent observation. In a
deterministic env a greedy policy that meets an observation again takes the same action
again: a share near 1 is a policy caught in a loop (an action that changes nothing, or a
cycle of turns), which the acting noise leaves.

The acting way is training's at the checkpoint's step (``host.checkpoint_policy``: that
step's temperature, noise 1), as ``python -m dreamer eval RUN --stochastic`` plays it.
Then, at the observation the greedy policy repeats most, what its search weighs:
the prior, each action's value one step ahead in the model (``r + discount * V``) and the
search's improved policy, which tells a loop the model's values argue for from one the prior
keeps against them. EfficientZero runs of host-loop envs only (a JAX-native env's evaluation
runs inside the fused loop). Prints two tables; writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from benchmarks.machine import describe_machine, format_machine


@dataclasses.dataclass(frozen=True)
class Episode:
    episode_return: float
    length: int
    most_repeated: int
    """Steps at which the most frequent observation of the episode was the one acted on."""
    actions: Counter
    repeated: np.ndarray | None = None
    """That observation."""

    @property
    def repeat_share(self) -> float:
        return self.most_repeated / self.length


def most_repeated(observations: Iterable[np.ndarray]) -> int:
    """How many of ``observations`` equal the most frequent one (0 for none)."""
    return most_frequent(observations)[1]


def most_frequent(observations: Iterable[np.ndarray]) -> tuple[np.ndarray | None, int]:
    """The most frequent of ``observations`` (the first met among equals) and its count."""
    counts: Counter = Counter()
    first: dict[bytes, np.ndarray] = {}
    for o in observations:
        key = np.ascontiguousarray(o).tobytes()
        counts[key] += 1
        first.setdefault(key, o)
    if not counts:
        return None, 0
    key, count = counts.most_common(1)[0]
    return first[key], count


def play(
    env: Any, policy: Callable[[np.ndarray], np.ndarray], *, episodes: int, seed: int
) -> list[Episode]:
    """``episodes`` episodes of ``policy`` (``obs[1, ...] -> actions[1]``) on one env of the
    env config ``env``, one after another from ``seed``."""
    from dreamer.shell.evaluation import make_vector_env

    venv = make_vector_env(env, num_envs=1, seed=seed, mode="eval")
    played: list[Episode] = []
    try:
        obs, _ = venv.reset(seed=seed)
        seen, actions, total = [], Counter(), 0.0
        while len(played) < episodes:
            seen.append(obs[0].copy())
            action = policy(obs)
            actions[int(action[0])] += 1
            obs, reward, terminated, truncated, _ = venv.step(action)
            total += float(reward[0])
            if terminated[0] or truncated[0]:  # SAME_STEP autoreset: obs starts the next one
                repeated, count = most_frequent(seen)
                played.append(Episode(total, len(seen), count, actions, repeated))
                seen, actions, total = [], Counter(), 0.0
    finally:
        venv.close()
    return played


def summary_row(way: str, played: Sequence[Episode]) -> str:
    returns = [e.episode_return for e in played]
    actions = sum((e.actions for e in played), Counter())
    taken = sum(actions.values())
    spread = ", ".join(f"{a}: {actions[a] / taken:.0%}" for a in sorted(actions))
    shares = ", ".join(f"{e.repeat_share:.2f}" for e in played)
    return (
        f"| {way} | {np.mean(returns):.3f} | {sum(r > 0 for r in returns)}/{len(returns)} "
        f"| {np.median([e.length for e in played]):.0f} | {shares} | {spread} |"
    )


def what_the_search_weighs(
    agent: Any, variables: Any, cfg: Any, obs: np.ndarray
) -> dict[str, np.ndarray]:
    """At one observation ``obs [...]``: the prior (with ``search.prior_mix``), each action's
    value one step ahead in the model (``r + discount * V``), the greedy search's improved
    policy and its action."""
    import jax.numpy as jnp

    from dreamer.agents.efficientzero.search import make_model_fns

    root_fn, recurrent_fn = make_model_fns(
        agent.net, cfg.model, cfg.replay.discount, cfg.search.prior_mix
    )
    root = root_fn(variables, jnp.asarray(obs)[None])
    actions = root.prior_logits.shape[-1]
    every = jax.tree.map(lambda x: jnp.repeat(x, actions, axis=0), root.embedding)
    step, _ = recurrent_fn(variables, None, jnp.arange(actions), every)
    out = agent.act(variables, jax.random.PRNGKey(0), jnp.asarray(obs)[None], 0.0, 0.0)
    return {
        "prior": np.asarray(jax.nn.softmax(root.prior_logits[0])),
        "q": np.asarray(step.reward + step.discount * step.value),
        "policy": np.asarray(out.policy[0]),
        "action": int(out.action[0]),
    }


def weighs_rows(weighed: dict[str, np.ndarray]) -> list[str]:
    """The table of ``what_the_search_weighs``: a row per action, the chosen one marked."""
    rows = ["| action | prior | value one step ahead | search policy |", "|---|---:|---:|---:|"]
    columns = zip(weighed["prior"], weighed["q"], weighed["policy"], strict=True)
    for a, (p, q, s) in enumerate(columns):
        mark = " (chosen)" if a == weighed["action"] else ""
        rows.append(f"| {a}{mark} | {p:.3f} | {q:.4f} | {s:.3f} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=8)
    args = parser.parse_args(argv)

    from dreamer.agents.efficientzero.search import temperature_at
    from dreamer.cli import load_run
    from dreamer.core.configtree import ConfigError
    from dreamer.loops.efficientzero import is_jax_native
    from dreamer.loops.host import checkpoint_policy, restore_newest
    from dreamer.shell.runbook import evaluation_seed

    algo, cfg = load_run(args.run_dir)
    if algo.name != "efficientzero" or is_jax_native(cfg):
        raise ConfigError(
            f"{args.run_dir} is a {algo.name} run on {cfg.env.id}: this compares the search's "
            "greedy and acting policies of an EfficientZero run on a host-loop env."
        )
    agent, variables, steps = restore_newest(cfg, args.run_dir)
    seed = evaluation_seed(cfg.run.seed, steps)
    acting = temperature_at(cfg.search, steps / cfg.run.env_steps)
    ways = {
        "greedy (evaluation: temperature 0, noise 0)": False,
        f"acting (training's at step {steps}: temperature {acting:g}, noise 1)": True,
    }
    print(f"{args.run_dir}: newest checkpoint at env step {steps}, {cfg.env.id}")
    print(format_machine(describe_machine()))
    print()
    print(
        "| policy | mean return | episodes > 0 | median length "
        "| share of steps on the most frequent observation, per episode | actions taken |"
    )
    print("|---|---:|---:|---:|---|---|")
    played = {}
    for way, stochastic in ways.items():
        policy = checkpoint_policy(cfg, agent, variables, steps, stochastic=stochastic)
        played[way] = play(cfg.env, policy, episodes=args.episodes, seed=seed)
        print(summary_row(way, played[way]))
    greedy = played[next(iter(ways))]
    k = max(range(len(greedy)), key=lambda i: greedy[i].repeat_share)
    print()
    print(
        f"At the observation the greedy policy repeats most (episode {k}: {greedy[k].most_repeated}"
        f" of its {greedy[k].length} steps), what its search weighs:"
    )
    print()
    print("\n".join(weighs_rows(what_the_search_weighs(agent, variables, cfg, greedy[k].repeated))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
