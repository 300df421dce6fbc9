"""Sample efficiency: every algorithm on the same real-step budget and evaluation protocol.

    python -m benchmarks.sample_efficiency --suite cartpole      # `make run`, CPU-sized
    python -m benchmarks.sample_efficiency --suite atari         # GPU-sized, Atari 100k games
    python -m benchmarks.sample_efficiency --envs my_pkg.my_envs:make_grid --threshold 0.9
    options: --steps 5000[,20000] --seeds 0,1,2 (or 0-9) --algos efficientzero,dqn
             --envs ID[,ID] --threshold R --preset NAME --import MODULE --out DIR
             --set [ALGO:]key=value --report-only

A suite is envs x algos x real-step budgets x seeds. Each run goes through the CLI
(``python -m dreamer train``) with its algorithm's preset, the suite's budget as ``--steps``
and the suite's evaluation settings as overrides; EfficientZero's seeds on a JAX-native env
train together in one call (``train --seeds``: the fused loop, seeds vmapped), still one run
folder per seed. Finished runs are skipped and interrupted ones resumed. The report gives,
per env and budget, a verdict (EfficientZero better, worse, or not distinguishable from the
best baseline, from the 95% bootstrap interval of the difference of the mean final returns:
``stats.compare``), the final return at the budget (mean and 95% bootstrap interval over
seeds), the env steps at which the return first reaches the env's threshold and the env steps
from which it stays there, and the evaluation return against real env steps (mean and
interval on the common evaluation grid; a figure per env). Files: ``OUT/runs/<run>/`` (run
folders; ``OUT/runs/<env>__efficientzero__<budget>/seed<k>/`` for a group),
``OUT/results/<run>.json`` (per run), ``OUT/report.md``, ``OUT/summary.json``,
``OUT/curves__<env>__<budget>.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import curves, machine, runs, stats
from benchmarks.efficiency_report import (
    mean_curve,
    records_of,
    render_markdown,
    verdicts,
    write_figures,
)
from benchmarks.suites import (
    ALGOS,
    SUITES,
    AlgoSpec,
    EnvSpec,
    Job,
    RunSpec,
    Suite,
    customize,
    suite_jobs,
    suite_runs,
)
from dreamer.cli import parse_seeds
from dreamer.loops.groups import seed_folder


def run_result(run_dir: Path, spec: RunSpec) -> dict[str, Any]:
    """Per-run result record, with the threshold statistics of its evaluation curve."""
    steps, returns = runs.eval_curve(run_dir)
    threshold = spec.env.threshold
    first = stay = None
    if threshold is not None:
        first = curves.first_reach(steps, returns, threshold)
        stay = curves.stays_above_from(steps, returns, threshold)
    return runs.result_record(
        run_dir,
        run=spec.name,
        env=spec.env.env_id,
        algo_name=spec.algo.algo,
        preset=spec.algo.preset,
        budget=spec.budget,
        seed=spec.seed,
        threshold=threshold,
        first_reach=first,
        stays_above_from=stay,
    )


def run_folder(out: Path, job: Job, spec: RunSpec) -> Path:
    """The folder of ``spec``, a run of ``job``: ``OUT/runs/<group>/seed<k>`` in a group,
    ``OUT/runs/<run>`` alone."""
    folder = out / "runs" / job.name
    return seed_folder(folder, spec.seed) if job.group else folder


def run_suite(suite: Suite, out: Path, *, launch: bool = True) -> list[dict[str, Any]]:
    """Brings every run of ``suite`` to the finished state; returns the finished runs' records.

    With ``launch=False`` only runs that have already finished are collected.
    """
    records = []
    jobs = suite_jobs(suite)
    for i, job in enumerate(jobs, 1):
        folder = out / "runs" / job.name
        if launch:
            together = f" (seeds {_seed_list(job.seeds)} in one process)" if job.group else ""
            print(f"\n[{i}/{len(jobs)}] {job.name}{together} -> {folder}", flush=True)
            outcome = _ensure(suite, job, folder)
            if outcome.finished:
                print(f"  {outcome.action}", flush=True)
            else:
                print(f"  FAILED ({outcome.action}, exit code {outcome.returncode})", flush=True)
        for spec in job.runs:
            run_dir = run_folder(out, job, spec)
            if runs.run_state(run_dir) is not runs.RunState.FINISHED:
                continue
            record = run_result(run_dir, spec)
            runs.write_json(out / "results" / f"{spec.name}.json", record)
            records.append(record)
    return records


def _ensure(suite: Suite, job: Job, folder: Path) -> runs.Outcome:
    """Skips, resumes or trains ``job`` in ``folder`` through the CLI."""
    spec = job.runs[0]

    def args(seed: int | Sequence[int]) -> list[str]:
        return runs.train_args(
            algo=spec.algo.algo,
            preset=spec.algo.preset,
            env_id=spec.env.env_id,
            seed=seed,
            steps=spec.budget,
            out=folder,
            overrides=spec.overrides(suite),
        )

    if job.group:
        return runs.ensure_group(folder, job.seeds, lambda seeds: args(list(seeds)))
    return runs.ensure_run(folder, args(spec.seed))


def summarize(
    suite: Suite, records: Sequence[dict[str, Any]], *, reps: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per (env, budget, algo) with at least one finished run."""
    rows = []
    for env in suite.envs:
        for budget in suite.budgets_of(env):
            for algo in suite.algos:
                mine = records_of(records, env, budget, algo)
                if mine:
                    rows.append(_row(env, budget, algo, mine, reps=reps, seed=seed))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sample_efficiency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--suite", default="cartpole", choices=sorted(SUITES))
    parser.add_argument("--steps", default=None, help="budget(s), e.g. 5000 or 2000,5000")
    parser.add_argument("--seeds", default=None, help="seeds, e.g. 0,1,2 or a range 0-9")
    parser.add_argument("--algos", default=None, help=f"subset of {','.join(ALGOS)}")
    parser.add_argument(
        "--envs",
        default=None,
        help="env ids to run instead of the suite's (comma-separated): gymnasium ids, "
        "package.module:factory, or registered names (with --import)",
    )
    parser.add_argument(
        "--threshold", type=float, default=None, help="return that counts as solved, every env"
    )
    parser.add_argument(
        "--preset", default=None, help="preset of every algo (default: the suite's, cartpole)"
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="module every run imports first, e.g. one that registers env names",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="default results/sample_efficiency/SUITE"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[ALGO:]KEY=VALUE",
        help="override for every run, or for one algo with an ALGO: prefix (repeatable)",
    )
    parser.add_argument("--report-only", action="store_true", help="report finished runs only")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replicates")
    args = parser.parse_args(argv)
    imports = [f"env.imports={json.dumps(args.imports)}"] if args.imports else []
    suite = customize(
        SUITES[args.suite],
        steps=[int(s) for s in args.steps.split(",")] if args.steps else None,
        seeds=parse_seeds(args.seeds) if args.seeds else None,
        algos=args.algos.split(",") if args.algos else None,
        envs=args.envs.split(",") if args.envs else None,
        threshold=args.threshold,
        preset=args.preset,
        overrides=[*imports, *args.overrides],
    )
    out = args.out or Path("results/sample_efficiency") / suite.name

    started = time.time()
    info = machine.describe_machine()
    envs = ", ".join(e.env_id for e in suite.envs)
    print(f"Sample efficiency on {envs} (suite '{suite.name}'): {len(suite_runs(suite))} runs")
    print(machine.format_machine(info), flush=True)
    records = run_suite(suite, out, launch=not args.report_only)
    if not records:
        print(f"No finished runs under {out / 'runs'}; nothing to report.")
        return 1
    rows = summarize(suite, records, reps=args.reps)
    judged = verdicts(suite, records, reps=args.reps)
    figures = write_figures(suite, records, rows, out, reps=args.reps)
    report = render_markdown(suite, rows, info, records, judged=judged, figures=figures)
    (out / "report.md").write_text(report)
    summary = {"suite": dataclasses.asdict(suite), "rows": rows, "verdicts": judged}
    runs.write_json(out / "summary.json", summary)
    print("\n" + report)
    print(f"Finished in {time.time() - started:.0f} s. Wrote:")
    for path in (out / "report.md", out / "summary.json", out / "results", *figures):
        print(f"  {path}")
    missing = len(suite_runs(suite)) - len(records)
    if missing:
        print(f"{missing} run(s) did not finish; rerun the same command to resume them.")
    return 1 if missing else 0


def _row(
    env: EnvSpec,
    budget: int,
    algo: AlgoSpec,
    mine: Sequence[dict[str, Any]],
    *,
    reps: int,
    seed: int,
) -> dict[str, Any]:
    final = stats.bootstrap_mean(
        np.array([r["final_eval_return"] for r in mine]), reps=reps, seed=seed
    )
    grid, mean, low, high = mean_curve(mine, reps=reps, seed=seed)
    sps = [r["steps_per_second"] for r in mine if r["steps_per_second"]]
    return {
        "env": env.env_id,
        "algo": algo.algo,
        "preset": algo.preset,
        "budget": budget,
        "seeds": len(mine),
        "final_return": dataclasses.asdict(final),
        "first_reach": _reach_summary([r["first_reach"] for r in mine], env.threshold),
        "stays_above_from": _reach_summary([r["stays_above_from"] for r in mine], env.threshold),
        "env_steps": int(np.max([r["env_steps"] for r in mine])),
        "updates": float(np.mean([r["updates"] for r in mine])),
        "wall_seconds": float(np.mean([r["wall_seconds"] for r in mine])),
        "steps_per_second": float(np.mean(sps)) if sps else None,
        "device": ", ".join(sorted({str(r["device"]) for r in mine})),
        "eval_steps": grid.tolist(),
        "eval_mean": mean.tolist(),
        "eval_low": low.tolist(),
        "eval_high": high.tolist(),
    }


def _seed_list(seeds: Sequence[int]) -> str:
    return ",".join(map(str, seeds))


def _reach_summary(values: Sequence[float | None], threshold: float | None) -> dict[str, Any]:
    reached = [v for v in values if v is not None]
    return {
        "threshold": threshold,
        "median": float(np.median(reached)) if reached else None,
        "reached": len(reached),
        "seeds": len(values),
        "per_seed": list(values),
    }


if __name__ == "__main__":
    sys.exit(runs.benchmark_main(main))
