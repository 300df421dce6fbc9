"""Which of the ``default`` preset's robustness mechanisms matter: each turned off in turn.

    make ablation                                  # both envs, 5 seeds (hours on 2 CPU cores)
    python -m benchmarks.ablation --envs cartpole --variants full,no_unimix --seeds 0-2
    python -m benchmarks.ablation --report-only --out results/ablation

EfficientZero's ``default`` preset on the two cheapest envs of the suites: gymnax CartPole-v1
at 5k real steps and bsuite DeepSea at size 10 at 20k (the ``classic`` suite's budget), each
evaluated every tenth of its budget. Every variant is one ``train --seeds`` group through the
CLI (the seeds vmapped in the fused loop, one run folder each), finished groups skipped and
interrupted ones resumed:

- ``full``: the preset as it is;
- ``no_unimix``: the prior is not mixed with the uniform distribution (``search.prior_mix=0``,
  1% in the preset);
- ``no_q_floor``: the tree's Q spread is not floored (``search.value_delta_max=1e-8``, 0.01 in
  the preset), so tiny Q gaps become the whole scale;
- ``small_supports``: 41-bin categorical value and reward supports (``model.value_support=20
  model.reward_support=20``) instead of 601 bins;
- ``n5``: value targets bootstrap after 5 steps (``replay.td_steps=5``) instead of 10.

The report (``OUT/report.md``, ``OUT/ablation.json``) gives per env and variant the final
return (mean and 95% bootstrap interval over seeds), the seeds whose evaluation reached the
env's threshold, and the verdict of the variant against the full preset (``stats.compare``):
a variant worse than the full preset means the mechanism it turns off helps there.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import machine, runs, stats
from benchmarks.sample_efficiency import run_result
from benchmarks.suites import CARTPOLE, DEEP_SEA, AlgoSpec, EnvSpec, RunSpec, Suite
from dreamer.loops.groups import seed_folder

PRESET = "default"
ENVS: dict[str, tuple[EnvSpec, int]] = {
    "cartpole": (CARTPOLE, 5_000),
    "deep_sea": (DEEP_SEA, 20_000),
}
"""The envs by key, with their real-step budgets."""


@dataclasses.dataclass(frozen=True)
class Variant:
    """The preset with one mechanism turned off."""

    name: str
    """Folder and table name."""
    mechanism: str
    """What it turns off, in words."""
    overrides: tuple[str, ...]
    """``key=value`` overrides of the preset."""


FULL = "full"
VARIANTS = (
    Variant(FULL, "nothing (the preset as it is)", ()),
    Variant("no_unimix", "the 1% uniform mix of the prior", ("search.prior_mix=0",)),
    Variant("no_q_floor", "the floor of the Q spread", ("search.value_delta_max=1e-8",)),
    Variant(
        "small_supports",
        "the 601-bin value and reward supports",
        ("model.value_support=20", "model.reward_support=20"),
    ),
    Variant("n5", "n = 10 value targets", ("replay.td_steps=5",)),
)
EVALUATION = ("run.eval_episodes=8", "run.final_eval_episodes=16")
"""The evaluation protocol of every run (and every tenth of the budget)."""
WORDS = {
    stats.WORSE: "the mechanism helps",
    stats.BETTER: "the mechanism hurts",
    stats.TIED: "no detectable effect",
    stats.TOO_FEW: "too few seeds to tell",
}
"""What a variant's verdict against the full preset says about the mechanism it turns off."""


def plan(
    env_key: str, variant: Variant, seeds: Sequence[int], steps: int | None, extra: Sequence[str]
) -> tuple[Suite, list[RunSpec]]:
    """The runs of one variant on one env, as a one-algorithm suite (for its overrides)."""
    env, budget = ENVS[env_key]
    algo = AlgoSpec("efficientzero", PRESET, overrides=(*variant.overrides, *extra))
    budget = steps or budget
    suite = Suite(
        name=f"ablation-{env_key}-{variant.name}",
        envs=(env,),
        algos=(algo,),
        budgets=(budget,),
        seeds=tuple(seeds),
        overrides=EVALUATION,
        eval_fraction=0.1,
    )
    return suite, [RunSpec(env, algo, budget, k) for k in seeds]


def run_variant(out: Path, suite: Suite, specs: Sequence[RunSpec], *, launch: bool) -> list[dict]:
    """Trains (or continues) one variant's group in ``out``; its finished runs' records."""
    first = specs[0]
    if launch:

        def args(seeds: Sequence[int]) -> list[str]:
            return runs.train_args(
                algo=first.algo.algo,
                preset=first.algo.preset,
                env_id=first.env.env_id,
                seed=list(seeds),
                steps=first.budget,
                out=out,
                overrides=first.overrides(suite),
            )

        outcome = runs.ensure_group(out, [s.seed for s in specs], args)
        status = outcome.action if outcome.finished else f"FAILED (exit {outcome.returncode})"
        print(f"  {status}", flush=True)
    records = []
    for spec in specs:
        run_dir = seed_folder(out, spec.seed)
        if runs.run_state(run_dir) is runs.RunState.FINISHED:
            records.append(run_result(run_dir, spec))
    return records


def summarize(
    env_key: str, by_variant: dict[str, list[dict]], *, reps: int = 2000
) -> list[dict[str, Any]]:
    """One row per variant with finished runs: final return, seeds at the threshold, verdict."""
    env, _ = ENVS[env_key]
    full = np.array([r["final_eval_return"] for r in by_variant.get(FULL, [])])
    rows = []
    for variant in VARIANTS:
        records = by_variant.get(variant.name, [])
        if not records:
            continue
        finals = np.array([r["final_eval_return"] for r in records])
        row: dict[str, Any] = {
            "env": env.env_id,
            "variant": variant.name,
            "mechanism": variant.mechanism,
            "overrides": list(variant.overrides),
            "budget": records[0]["budget"],
            "seeds": [r["seed"] for r in records],
            "final_returns": finals.tolist(),
            "final_return": dataclasses.asdict(stats.bootstrap_mean(finals, reps=reps)),
            "threshold": env.threshold,
            "reached": sum(r["first_reach"] is not None for r in records),
            "stays_from": [r["stays_above_from"] for r in records],
            "wall_seconds": max(r["wall_seconds"] for r in records),
            "verdict": None,
            "difference": None,
        }
        if variant.name != FULL and full.size:
            c = stats.compare(finals, full, reps=reps)
            row.update(verdict=c.verdict, difference=dataclasses.asdict(c.difference))
        rows.append(row)
    return rows


def render(
    rows_by_env: dict[str, list[dict[str, Any]]],
    info: dict[str, Any],
    records: Sequence[dict[str, Any]] = (),
) -> str:
    """The Markdown report: a table per env, then the verdict per mechanism; ``records`` are
    the runs' (for the devices they trained on)."""
    lines = [
        f"# Ablation of the `{PRESET}` preset's robustness mechanisms",
        "",
        f"- runs trained on: {machine.run_devices(records)}",
        f"- report written on: {machine.format_machine(info)}",
        f"- evaluation: {' '.join(EVALUATION)}, every tenth of the budget",
        "- final return: mean over seeds [95% bootstrap CI]; against full: the 95% bootstrap "
        "interval of the difference of the mean final returns (variant − full), better or "
        f"worse where it excludes 0 (at least {stats.MIN_SEEDS} seeds each)",
    ]
    for env_key, rows in rows_by_env.items():
        if not rows:
            continue
        env, _ = ENVS[env_key]
        threshold = "–" if env.threshold is None else f"{env.threshold:g}"
        lines += [
            "",
            f"## {env.title} (`{env.env_id}`), {rows[0]['budget']} real steps",
            "",
            f"| variant | turns off | final return | seeds reaching {threshold} | stays ≥ "
            f"{threshold} from (median; per seed) | against full | wall s |",
            "|---|---|---|---:|---|---|---:|",
        ]
        places = stats.digits([v for r in rows for v in r["final_returns"]])
        for r in rows:
            name = " ".join([r["variant"], *(f"`{o}`" for o in r["overrides"])])
            against = "–"
            if r["verdict"] is not None:
                d = stats.Interval(**r["difference"])
                against = (
                    f"{r['verdict']}: {d.point:+.{places}f} [{d.low:.{places}f}, "
                    f"{d.high:.{places}f}]"
                )
            reached = "–" if r["threshold"] is None else f"{r['reached']}/{len(r['seeds'])}"
            lines.append(
                f"| {name} | {r['mechanism']} | "
                f"{stats.Interval(**r['final_return']).format(places)} | {reached} | "
                f"{_stays(r)} | {against} | {r['wall_seconds']:.0f} |"
            )
        lines.append("")
        for r in rows:
            if r["verdict"] is not None:
                without = stats.verdict_words(r["verdict"], "the full preset")
                lines.append(f"- {r['mechanism']}: {WORDS[r['verdict']]} (without it: {without}).")
    return "\n".join(lines) + "\n"


def _stays(row: dict[str, Any]) -> str:
    """Real steps from which each seed's evaluations stay at the threshold: the median over
    seeds (``never`` when the median seed never does), then each seed's."""
    if row["threshold"] is None:
        return "–"
    per_seed = [math.inf if s is None else float(s) for s in row.get("stays_from", [])]
    if not per_seed:
        return "–"
    text = lambda v: "never" if math.isinf(v) else f"{v:,.0f}"  # noqa: E731
    return f"{text(float(np.median(per_seed)))}; {', '.join(text(v) for v in per_seed)}"


def main(argv: Sequence[str] | None = None) -> int:
    from dreamer.cli import parse_seeds

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--envs", default=",".join(ENVS), help=f"subset of {','.join(ENVS)}")
    names = [v.name for v in VARIANTS]
    parser.add_argument("--variants", default=",".join(names), help=f"subset of {names}")
    parser.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,1,2")
    parser.add_argument("--steps", type=int, default=None, help="real steps (default: per env)")
    parser.add_argument("--set", action="append", default=[], metavar="K=V", help="every run")
    parser.add_argument("--out", type=Path, default=Path("results/ablation"))
    parser.add_argument("--report-only", action="store_true", help="report finished runs only")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replicates")
    args = parser.parse_args(argv)
    env_keys = args.envs.split(",")
    chosen = args.variants.split(",")
    unknown = sorted(set(env_keys) - set(ENVS)) + sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown env(s) or variant(s) {unknown}")
    seeds = parse_seeds(args.seeds)

    started, info = time.time(), machine.describe_machine()
    print(machine.format_machine(info), flush=True)
    rows_by_env, records = {}, []
    for env_key in env_keys:
        by_variant = {}
        for variant in (v for v in VARIANTS if v.name in chosen):
            suite, specs = plan(env_key, variant, seeds, args.steps, args.set)
            folder = args.out / env_key / variant.name
            if not args.report_only:
                print(f"\n{env_key} / {variant.name}: seeds {args.seeds} -> {folder}", flush=True)
            by_variant[variant.name] = run_variant(
                folder, suite, specs, launch=not args.report_only
            )
        rows_by_env[env_key] = summarize(env_key, by_variant, reps=args.reps)
        records += [r for found in by_variant.values() for r in found]
    if not any(rows_by_env.values()):
        print(f"No finished runs under {args.out}; nothing to report.")
        return 1
    report = render(rows_by_env, info, records)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report)
    runs.write_json(args.out / "ablation.json", {"machine": info, "rows": rows_by_env})
    print("\n" + report)
    print(f"Finished in {time.time() - started:.0f} s. Wrote {args.out / 'report.md'} and ")
    print(f"{args.out / 'ablation.json'}.")
    wanted = len(env_keys) * len(chosen) * len(seeds)
    done = sum(len(r["seeds"]) for rows in rows_by_env.values() for r in rows)
    if done < wanted:
        print(f"{wanted - done} run(s) did not finish; rerun the same command to resume them.")
    return 0 if done == wanted else 1


if __name__ == "__main__":
    sys.exit(runs.benchmark_main(main))
