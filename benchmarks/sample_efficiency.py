"""Sample efficiency: every algorithm on the same real-step budget and evaluation protocol.

    python -m benchmarks.sample_efficiency --suite cartpole      # `make run`, CPU-sized
    python -m benchmarks.sample_efficiency --suite atari         # GPU-sized, Atari 100k games
    python -m benchmarks.sample_efficiency --envs my_pkg.my_envs:make_grid --threshold 0.9
    options: --steps 5000[,20000] --seeds 0,1,2 (or 0-9) --algos efficientzero,dqn
             --envs ID[,ID] --threshold R --preset NAME --import MODULE --out DIR
             --set [ALGO:]key=value --report-only

A suite is envs x algos x real-step budgets x seeds. Each run goes through the CLI
(``python -m dreamer train``) with its algorithm's preset, the suite's budget as ``--steps``
and the suite's evaluation settings as overrides; finished runs are skipped and interrupted
ones resumed. The report gives, per env and budget, the evaluation return against real env
steps (mean and 95 % bootstrap interval over seeds, on the common evaluation grid), the final
return at the budget, the env steps at which the return first reaches the env's threshold and
the env steps from which it stays there. Files: ``OUT/runs/<run>/`` (run folders),
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

from benchmarks import curves, machine, plots, runs, stats
from benchmarks.suites import (
    ALGOS,
    SUITES,
    AlgoSpec,
    EnvSpec,
    RunSpec,
    Suite,
    customize,
    env_slug,
    suite_runs,
)
from dreamer.cli import parse_seeds


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


def run_suite(suite: Suite, out: Path, *, launch: bool = True) -> list[dict[str, Any]]:
    """Brings every run of ``suite`` to the finished state; returns the finished runs' records.

    With ``launch=False`` only runs that have already finished are collected.
    """
    records = []
    specs = suite_runs(suite)
    for i, spec in enumerate(specs, 1):
        run_dir = out / "runs" / spec.name
        if launch:
            print(f"\n[{i}/{len(specs)}] {spec.name} -> {run_dir}", flush=True)
            args = runs.train_args(
                algo=spec.algo.algo,
                preset=spec.algo.preset,
                env_id=spec.env.env_id,
                seed=spec.seed,
                steps=spec.budget,
                out=run_dir,
                overrides=spec.overrides(suite),
            )
            outcome = runs.ensure_run(run_dir, args)
            if not outcome.finished:
                print(f"  FAILED ({outcome.action}, exit code {outcome.returncode})", flush=True)
                continue
            print(f"  {outcome.action}", flush=True)
        elif runs.run_state(run_dir) is not runs.RunState.FINISHED:
            continue
        record = run_result(run_dir, spec)
        runs.write_json(out / "results" / f"{spec.name}.json", record)
        records.append(record)
    return records


def summarize(
    suite: Suite, records: Sequence[dict[str, Any]], *, reps: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per (env, budget, algo) with at least one finished run."""
    rows = []
    for env in suite.envs:
        for budget in suite.budgets_of(env):
            for algo in suite.algos:
                mine = [
                    r
                    for r in records
                    if (r["env"], r["budget"], r["algo_name"]) == (env.env_id, budget, algo.algo)
                ]
                if mine:
                    rows.append(_row(env, budget, algo, mine, reps=reps, seed=seed))
    return rows


def mean_curve(
    records: Sequence[dict[str, Any]], *, reps: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(grid, mean, low, high)`` of the seeds' evaluation curves on their common grid."""
    seed_curves = [np.array(r["eval_curve"], dtype=np.float64).reshape(-1, 2).T for r in records]
    grid, values = curves.align_curves([(s, v) for s, v in seed_curves])
    if grid.size == 0:
        return grid, grid, grid, grid
    return (grid, *stats.bootstrap_mean_curve(values, reps=reps, seed=seed))


def render_markdown(
    suite: Suite,
    rows: Sequence[dict[str, Any]],
    info: dict[str, Any],
    records: Sequence[dict[str, Any]] = (),
) -> str:
    """Markdown report: setup, machine, the table, and one line per run."""
    budgets = sorted({b for e in suite.envs for b in suite.budgets_of(e)})
    lines = [
        f"# Sample efficiency: {', '.join(e.env_id for e in suite.envs)}",
        "",
        f"- suite `{suite.name}`; thresholds: "
        f"{', '.join(f'{e.env_id} {_number(e.threshold)}' for e in suite.envs)}",
        f"- budgets (real env steps): {', '.join(map(str, budgets))}; seeds: "
        f"{', '.join(map(str, suite.seeds))}",
        f"- algos (preset): {', '.join(f'{a.algo} ({a.preset})' for a in suite.algos)}",
        f"- evaluation protocol (every run): {' '.join(suite.overrides) or 'preset defaults'}",
        f"- {machine.format_machine(info)}",
        "",
        "Final return: mean over seeds of the final evaluation [95% bootstrap CI over seeds]. "
        "Threshold columns: median env steps over the seeds that got there (seeds that did).",
        "",
        "| env | algo | budget | seeds | final return | first ≥ threshold | stays ≥ threshold from "
        "| updates | wall s | env steps/s | device |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['algo']} ({r['preset']}) | {r['budget']} | {r['seeds']} | "
            f"{stats.Interval(**r['final_return']).format(1)} | {_steps_cell(r['first_reach'])} | "
            f"{_steps_cell(r['stays_above_from'])} | {r['updates']:.0f} | "
            f"{r['wall_seconds']:.0f} | {_number(r['steps_per_second'])} | {r['device']} |"
        )
    for warning in protocol_warnings(rows):
        lines += ["", f"**Warning:** {warning}"]
    lines += per_run_table(records)
    lines += curve_tables(rows)
    return "\n".join(lines) + "\n"


def per_run_table(records: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown: one row per run (seed), threshold steps as measured ('never' if not)."""
    if not records:
        return []
    lines = [
        "",
        "### Per run",
        "",
        "| env | algo | budget | seed | first ≥ threshold | stays ≥ threshold from "
        "| final return | wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(records, key=lambda r: (r["env"], r["algo"], r["budget"], r["seed"])):
        reach = [
            "–" if r["threshold"] is None else ("never" if v is None else f"{v:.0f}")
            for v in (r["first_reach"], r["stays_above_from"])
        ]
        lines.append(
            f"| {r['env']} | {r['algo']} | {r['budget']} | {r['seed']} | {reach[0]} | "
            f"{reach[1]} | {r['final_eval_return']:.1f} | {r['wall_seconds']:.0f} |"
        )
    return lines


def curve_tables(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown: per (env, budget), eval return mean [95% CI] of each algo by env steps."""
    lines: list[str] = []
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["env"], r["budget"]), []).append(r)
    for (env, budget), group in groups.items():
        grid = sorted({s for r in group for s in r["eval_steps"]})
        lines += ["", f"### {env}, {budget} env steps: eval return, mean [95% CI over seeds]", ""]
        lines += ["| env steps | " + " | ".join(r["algo"] for r in group) + " |"]
        lines += ["|---:|" + "---:|" * len(group)]
        for step in grid:
            cells = []
            for r in group:
                if step in r["eval_steps"]:
                    i = r["eval_steps"].index(step)
                    cells.append(
                        stats.Interval(
                            r["eval_mean"][i], r["eval_low"][i], r["eval_high"][i]
                        ).format(1)
                    )
                else:
                    cells.append("–")
            lines.append(f"| {step:.0f} | " + " | ".join(cells) + " |")
    return lines


def protocol_warnings(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Differences between algos that break the like-for-like comparison."""
    out = []
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["env"], r["budget"]), []).append(r)
    for (env, budget), group in groups.items():
        grids = {r["algo"]: tuple(r["eval_steps"]) for r in group}
        if len(set(grids.values())) > 1:
            out.append(f"{env} @ {budget}: the algos were evaluated at different env steps.")
        steps = {r["algo"]: r["env_steps"] for r in group}
        if any(s != budget for s in steps.values()):
            out.append(f"{env} @ {budget}: env steps taken differ from the budget: {steps}.")
    return out


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
    figures = write_figures(suite, records, rows, out, reps=args.reps)
    report = render_markdown(suite, rows, info, records)
    (out / "report.md").write_text(report)
    runs.write_json(out / "summary.json", {"suite": dataclasses.asdict(suite), "rows": rows})
    print("\n" + report)
    print(f"Finished in {time.time() - started:.0f} s. Wrote:")
    for path in (out / "report.md", out / "summary.json", out / "results", *figures):
        print(f"  {path}")
    missing = len(suite_runs(suite)) - len(records)
    if missing:
        print(f"{missing} run(s) did not finish; rerun the same command to resume them.")
    return 1 if missing else 0


def write_figures(
    suite: Suite,
    records: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    out: Path,
    *,
    reps: int = 2000,
) -> list[Path]:
    """One PNG per (env, budget): each algo's mean curve with its shaded 95 % interval."""
    paths = []
    for env in suite.envs:
        for budget in suite.budgets_of(env):
            series = {}
            for algo in suite.algos:
                mine = [
                    r
                    for r in records
                    if (r["env"], r["budget"], r["algo_name"]) == (env.env_id, budget, algo.algo)
                ]
                grid, mean, low, high = mean_curve(mine, reps=reps) if mine else (np.zeros(0),) * 4
                if grid.size:
                    series[f"{algo.algo} ({len(mine)} seeds)"] = (grid, mean, low, high)
            if series:
                slug = env_slug(env.env_id)
                paths.append(
                    plots.band_curves(
                        series,
                        out / f"curves__{slug}__{budget}.png",
                        title=f"{env.env_id}, {budget} real env steps",
                        threshold=env.threshold,
                    )
                )
    return paths


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


def _reach_summary(values: Sequence[float | None], threshold: float | None) -> dict[str, Any]:
    reached = [v for v in values if v is not None]
    return {
        "threshold": threshold,
        "median": float(np.median(reached)) if reached else None,
        "reached": len(reached),
        "seeds": len(values),
        "per_seed": list(values),
    }


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _steps_cell(summary: dict[str, Any]) -> str:
    if summary["threshold"] is None:
        return "–"
    if summary["median"] is None:
        return f"never (0/{summary['seeds']})"
    return f"{summary['median']:.0f} ({summary['reached']}/{summary['seeds']})"


if __name__ == "__main__":
    sys.exit(main())
