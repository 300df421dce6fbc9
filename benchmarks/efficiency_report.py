"""The report of a sample-efficiency suite: verdicts, Markdown tables and figures.

``benchmarks.sample_efficiency`` trains a suite and hands its per-run records and per-(env,
budget, algo) rows here. Per env and budget the report gives the verdict on EfficientZero
against the best baseline (``stats.compare``), the final return with its 95% bootstrap
interval, the real steps to the env's threshold, one figure of the return curves (mean and
interval over seeds) and a table of the same curves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import curves, machine, plots, stats
from benchmarks.suites import AlgoSpec, EnvSpec, Suite, env_slug

EFFICIENTZERO = "efficientzero"


def records_of(
    records: Sequence[dict[str, Any]], env: EnvSpec, budget: int, algo: AlgoSpec
) -> list[dict[str, Any]]:
    """The records of the runs of ``algo`` on ``env`` at ``budget``."""
    key = (env.env_id, budget, algo.algo)
    return [r for r in records if (r["env"], r["budget"], r["algo_name"]) == key]


def mean_curve(
    records: Sequence[dict[str, Any]], *, reps: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(grid, mean, low, high)`` of the seeds' evaluation curves on their common grid."""
    seed_curves = [np.array(r["eval_curve"], dtype=np.float64).reshape(-1, 2).T for r in records]
    grid, values = curves.align_curves([(s, v) for s, v in seed_curves])
    if grid.size == 0:
        return grid, grid, grid, grid
    return (grid, *stats.bootstrap_mean_curve(values, reps=reps, seed=seed))


def verdicts(
    suite: Suite, records: Sequence[dict[str, Any]], *, reps: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per (env, budget): EfficientZero against the best baseline there (the other algo with
    the highest mean final return), ``stats.compare`` of their per-seed final returns."""
    out = []
    for env in suite.envs:
        for budget in suite.budgets_of(env):
            finals = {}
            for algo in suite.algos:
                mine = records_of(records, env, budget, algo)
                if mine:
                    finals[algo.algo] = np.array([r["final_eval_return"] for r in mine])
            out.append(_verdict(env, budget, finals, reps=reps, seed=seed))
    return out


def _verdict(
    env: EnvSpec, budget: int, finals: dict[str, np.ndarray], *, reps: int, seed: int
) -> dict[str, Any]:
    entry: dict[str, Any] = {"env": env.env_id, "budget": budget, "baseline": None}
    entry.update(verdict=None, difference=None)
    where = f"**{env.title}, {budget} steps**"
    baselines = {a: f for a, f in finals.items() if a != EFFICIENTZERO}
    if EFFICIENTZERO not in finals or not baselines:
        missing = "a baseline" if EFFICIENTZERO in finals else "EfficientZero"
        entry["text"] = f"{where}: no verdict (no finished run of {missing})."
        return entry
    best = max(baselines, key=lambda a: float(baselines[a].mean()))
    c = stats.compare(finals[EFFICIENTZERO], baselines[best], reps=reps, seed=seed)
    entry.update(baseline=best, verdict=c.verdict, difference=dataclasses.asdict(c.difference))
    seeds = f"{finals[EFFICIENTZERO].size} and {baselines[best].size} seeds"
    places = stats.digits(np.concatenate(list(finals.values())))
    entry["text"] = (
        f"{where}: EfficientZero is **{c.against(best)}** (mean final return "
        f"{c.format(places)}; {seeds})."
    )
    return entry


def render_markdown(
    suite: Suite,
    rows: Sequence[dict[str, Any]],
    info: dict[str, Any],
    records: Sequence[dict[str, Any]] = (),
    *,
    judged: Sequence[dict[str, Any]] = (),
    figures: Sequence[Path] = (),
) -> str:
    """Markdown report: setup, verdicts, the table, figures, one line per run, curves."""
    seeds = suite.seeds
    lines = [
        f"# Sample efficiency: {', '.join(e.title for e in suite.envs)}",
        "",
        f"- suite `{suite.name}`; seeds: {', '.join(map(str, seeds))} ({len(seeds)} per "
        "algorithm and env)",
        f"- algos (preset): {', '.join(f'{a.algo} ({a.preset})' for a in suite.algos)}",
        f"- evaluation protocol (every run): {_protocol(suite)}",
        f"- runs trained on: {machine.run_devices(records)}",
        f"- report written on: {machine.format_machine(info)}",
        "",
        "| env | id | budget (real env steps) | threshold | env overrides |",
        "|---|---|---:|---:|---|",
    ]
    for e in suite.envs:
        budgets = ", ".join(map(str, suite.budgets_of(e)))
        extra = " ".join(f"`{o}`" for o in e.overrides) or "–"
        lines.append(f"| {e.title} | `{e.env_id}` | {budgets} | {_number(e.threshold)} | {extra} |")
    if judged:
        lines += [
            "",
            "## Verdicts",
            "",
            "EfficientZero against the best baseline on each env (the one with the highest mean "
            "final return): better or worse where the 95% bootstrap interval of the difference "
            f"of the mean final returns excludes 0, else not distinguishable (at least "
            f"{stats.MIN_SEEDS} seeds each).",
            "",
        ]
        lines += [f"- {v['text']}" for v in judged]
    lines += [
        "",
        "## Final return and real steps to the threshold",
        "",
        "Final return: mean over seeds of the final evaluation [95% bootstrap CI over seeds]. "
        "Threshold columns: median env steps over the seeds that got there (seeds that did). "
        "Wall s: per run; seeds trained together in one process each count the group's time.",
        "",
        "| env | algo | budget | seeds | final return | first ≥ threshold | stays ≥ threshold from "
        "| updates | wall s | env steps/s | device |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    titles = {e.env_id: e.title for e in suite.envs}
    places = {
        e.env_id: stats.digits([r["final_eval_return"] for r in records if r["env"] == e.env_id])
        for e in suite.envs
    }
    for r in rows:
        final = stats.Interval(**r["final_return"]).format(places.get(r["env"], 1))
        lines.append(
            f"| {titles.get(r['env'], r['env'])} | {r['algo']} ({r['preset']}) | {r['budget']} | "
            f"{r['seeds']} | {final} | "
            f"{_steps_cell(r['first_reach'])} | {_steps_cell(r['stays_above_from'])} | "
            f"{r['updates']:.0f} | {r['wall_seconds']:.0f} | {_number(r['steps_per_second'])} | "
            f"{r['device']} |"
        )
    for warning in protocol_warnings(rows):
        lines += ["", f"**Warning:** {warning}"]
    if figures:
        lines += ["", "Return curves (mean and 95% CI over seeds), one figure per env:", ""]
        lines += [f"![{p.stem}]({p.name})" for p in figures]
    lines += per_run_table(records, titles, places)
    lines += curve_tables(rows, titles, places)
    return "\n".join(lines) + "\n"


def per_run_table(
    records: Sequence[dict[str, Any]],
    titles: dict[str, str] | None = None,
    places: dict[str, int] | None = None,
) -> list[str]:
    """Markdown: one row per run (seed), threshold steps as measured ('never' if not);
    envs named by ``titles[env_id]`` and returns shown to ``places[env_id]`` decimals where
    given."""
    titles, places = titles or {}, places or {}
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
            f"| {titles.get(r['env'], r['env'])} | {r['algo']} | {r['budget']} | {r['seed']} | "
            f"{reach[0]} | "
            f"{reach[1]} | {r['final_eval_return']:.{places.get(r['env'], 1)}f} | "
            f"{r['wall_seconds']:.0f} |"
        )
    return lines


def curve_tables(
    rows: Sequence[dict[str, Any]],
    titles: dict[str, str] | None = None,
    places: dict[str, int] | None = None,
) -> list[str]:
    """Markdown: per (env, budget), eval return mean [95% CI] of each algo by env steps."""
    titles, places = titles or {}, places or {}
    lines: list[str] = []
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["env"], r["budget"]), []).append(r)
    for (env, budget), group in groups.items():
        grid = sorted({s for r in group for s in r["eval_steps"]})
        title = titles.get(env, env)
        lines += ["", f"### {title}, {budget} env steps: eval return, mean [95% CI over seeds]", ""]
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
                        ).format(places.get(env, 1))
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
                mine = records_of(records, env, budget, algo)
                grid, mean, low, high = mean_curve(mine, reps=reps) if mine else (np.zeros(0),) * 4
                if grid.size:
                    series[f"{algo.algo} ({_seeds_label(len(mine))})"] = (grid, mean, low, high)
            if series:
                slug = env_slug(env.env_id)
                paths.append(
                    plots.band_curves(
                        series,
                        out / f"curves__{slug}__{budget}.png",
                        title=f"{env.title}, {budget} real env steps",
                        threshold=env.threshold,
                    )
                )
    return paths


def _protocol(suite: Suite) -> str:
    words = list(suite.overrides)
    if suite.eval_fraction is not None:
        words.append(f"run.eval_every = {suite.eval_fraction:g} x budget")
    return " ".join(words) or "preset defaults"


def _seeds_label(n: int) -> str:
    return "1 seed, no interval" if n == 1 else f"{n} seeds"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _steps_cell(summary: dict[str, Any]) -> str:
    if summary["threshold"] is None:
        return "–"
    if summary["median"] is None:
        return f"never (0/{summary['seeds']})"
    return f"{summary['median']:.0f} ({summary['reached']}/{summary['seeds']})"
