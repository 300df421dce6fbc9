"""Atari 100k report: per-game scores, aggregates with 95 % CIs, published methods, figures.

    python -m benchmarks.aggregate results/atari100k [--out DIR] [--reps 2000] [--seed 0]
        [--against efficientzero] [--poi-reps 500]

Reads the per-run results ``ROOT/results/<Game>__seed<S>.json`` written by
``benchmarks.atari100k`` (and any finished run folder under ``ROOT/runs`` that has none yet),
then writes ``report.md``, ``aggregate.json`` and PNG figures to ``--out`` (default ROOT).
The statistics are rliable's (``benchmarks.stats``): mean, median, IQM and optimality gap with
stratified-bootstrap intervals, the probability of improvement over a published method, and
performance profiles next to the published methods. Partial results (fewer games or seeds)
are reported as such, with the published methods aggregated over the same games for a
like-for-like comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import curves, plots, published, runs, scores, stats

COMPARED = ("efficientzero", "bbf", "spr", "der", "dreamerv3", "muzero")
"""Published methods shown next to ours (``efficient_zero_v2`` has no verified values)."""

AGAINST = "efficientzero"
"""The published method of the probability of improvement (the one this project reproduces)."""

AGGREGATE_LABELS = {
    "mean": "Mean",
    "median": "Median",
    "iqm": "IQM (runs)",
    "iqm_per_game": "IQM (per-game)",
    "optimality_gap": "Optimality gap",
}

PROFILE_TAUS = np.linspace(0.0, 4.0, 81)
"""HNS thresholds of the performance profiles."""


def run_name(game: str, seed: int) -> str:
    """Folder and file stem of one Atari run: ``Pong__seed0``."""
    return f"{game}__seed{seed}"


def parse_run_name(name: str) -> tuple[str, int] | None:
    """Inverse of ``run_name``; None for names that are not Atari 100k runs."""
    game, sep, seed = name.partition("__seed")
    if not sep or not seed.isdigit() or game not in published.GAMES:
        return None
    return game, int(seed)


def group_name(game: str, seeds: Sequence[int]) -> str:
    """Folder and log stem of a group of seeds of one game trained together:
    ``Pong__seeds0-2`` (``--seeds-per-process``); its seeds' folders are ``seed<S>``."""
    return f"{game}__seeds{seeds[0]}-{seeds[-1]}"


def job_runs(name: str, folder: Path) -> list[tuple[str, int, Path]]:
    """(game, seed, run folder) of every run a run folder or group folder holds."""
    key = parse_run_name(name)
    if key is not None:
        return [(key[0], key[1], folder)]
    game, sep, _ = name.partition("__seeds")
    if not sep or game not in published.GAMES:
        return []
    found = []
    for sub in sorted(Path(folder).glob("seed*")):
        if sub.name[4:].isdigit():
            found.append((game, int(sub.name[4:]), sub))
    return found


def run_folders(root: Path) -> list[tuple[str, int, Path]]:
    """(game, seed, run folder) of every run under ``root/runs``, grouped or not."""
    found = []
    for folder in sorted((root / "runs").glob("*__seed*")):
        found.extend(job_runs(folder.name, folder))
    return found


def game_result(run_dir: Path, game: str, seed: int) -> dict[str, Any]:
    """Per-run result record of a finished Atari run, with its human-normalised score."""
    record = runs.result_record(run_dir, game=game, seed=seed, ale_id=published.ale_id(game))
    table = published.load_reference()
    i = table.index(game)
    hns = stats.human_normalized(record["final_eval_return"], table.random[i], table.human[i])
    record["hns"] = float(hns)
    return record


def load_results(root: Path) -> list[dict[str, Any]]:
    """Results under ``root``, one per (game, seed), in table order then seed order."""
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for path in sorted((root / "results").glob("*.json")):
        record = runs.read_json(path)
        records[(published.canonical_game(record["game"]), int(record["seed"]))] = record
    for game, seed, run_dir in run_folders(root):
        key = (game, seed)
        if key not in records and runs.run_state(run_dir) is runs.RunState.FINISHED:
            records[key] = game_result(run_dir, *key)
    return [records[k] for k in sorted(records, key=lambda k: (published.GAMES.index(k[0]), k[1]))]


@dataclasses.dataclass(frozen=True)
class GameScores:
    """Our final scores on one game."""

    game: str
    """Canonical game name."""
    seeds: tuple[int, ...]
    """Seeds, ``[n]``."""
    returns: np.ndarray
    """Final mean evaluation return per seed, ``[n]``."""
    hns: np.ndarray
    """Human-normalised ``returns``, ``[n]``."""


def group_by_game(records: Sequence[dict[str, Any]]) -> list[GameScores]:
    """Per-game scores from per-run records (games in table order)."""
    table = published.load_reference()
    out = []
    for game in published.GAMES:
        mine = [r for r in records if published.canonical_game(r["game"]) == game]
        if not mine:
            continue
        returns = np.array([r["final_eval_return"] for r in mine], dtype=np.float64)
        i = table.index(game)
        hns = stats.human_normalized(returns, table.random[i], table.human[i])
        out.append(GameScores(game, tuple(int(r["seed"]) for r in mine), returns, hns))
    return out


def summarize(
    games: Sequence[GameScores],
    *,
    reps: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    against: str = AGAINST,
    poi_reps: int = 500,
) -> dict[str, Any]:
    """Everything the report shows, as plain data (also written as ``aggregate.json``)."""
    if not games:
        raise ValueError("no finished runs to aggregate")
    table = published.load_reference()
    names = [g.game for g in games]
    ez = table.methods["efficientzero"]
    per_game = []
    for g in games:
        i = table.index(g.game)
        per_game.append(
            {
                "game": g.game,
                "seeds": list(g.seeds),
                "return_mean": float(g.returns.mean()),
                "return_std": float(g.returns.std(ddof=1)) if g.returns.size > 1 else None,
                "hns": float(g.hns.mean()),
                "random": float(table.random[i]),
                "human": float(table.human[i]),
                "efficientzero_return": float(ez[i]),
                "efficientzero_hns": float(
                    stats.human_normalized(ez[i], table.random[i], table.human[i])
                ),
            }
        )
    scores_hns = stats.score_matrix([g.hns for g in games])  # [R, G]
    ours = stats.aggregate_intervals(scores_hns, reps=reps, confidence=confidence, seed=seed)
    theirs = scores.published_scores(against, names)
    improvement = None
    if np.isfinite(theirs).all():
        poi = stats.probability_of_improvement(
            scores_hns, theirs, reps=poi_reps, confidence=confidence, seed=seed
        )
        improvement = {"against": against, "reps": poi_reps, **dataclasses.asdict(poi)}
    seeds_per_game = [len(g.seeds) for g in games]
    return {
        "games": names,
        "missing_games": [g for g in published.GAMES if g not in names],
        "num_runs": int(sum(seeds_per_game)),
        "seeds_per_game": {"min": min(seeds_per_game), "max": max(seeds_per_game)},
        "seeds_in_aggregates": int(scores_hns.shape[0]),
        "per_game": per_game,
        "ours": {k: dataclasses.asdict(v) for k, v in ours.items()},
        "ours_superhuman_games": int(sum(g.hns.mean() > 1.0 for g in games)),
        "probability_of_improvement": improvement,
        "published_same_games": {m: scores.published_aggregates(m, names) for m in COMPARED},
        "published_all_games": {m: scores.published_aggregates(m) for m in COMPARED},
        "bootstrap": {"reps": reps, "confidence": confidence, "seed": seed},
    }


def render_markdown(
    summary: dict[str, Any], records: Sequence[dict[str, Any]], figures: Sequence[Path]
) -> str:
    """The Markdown report."""
    n, partial = len(summary["games"]), bool(summary["missing_games"])
    conf = int(100 * summary["bootstrap"]["confidence"])
    lines = ["# Atari 100k results", ""]
    lines += _setup_lines(summary, records)
    if partial:
        lines += [
            f"**Partial results: {n} of {len(published.GAMES)} games** "
            f"(missing: {', '.join(summary['missing_games'])}). Our aggregates cover only these "
            "games; compare them with the published methods on the same games (first table), "
            "not with their 26-game numbers (second table).",
            "",
        ]
    spg = summary["seeds_per_game"]
    if spg["min"] != spg["max"]:
        lines += [
            f"Seeds per game differ ({spg['min']} to {spg['max']}): the aggregates use each "
            f"game's first {summary['seeds_in_aggregates']} (rliable needs the same number of "
            "runs on every game); the per-game table uses them all.",
            "",
        ]
    if spg["max"] == 1:
        lines += ["One seed per game: the bootstrap intervals collapse to the point values.", ""]

    lines += [f"## Aggregate human-normalised scores ({n} games)", ""]
    lines += [
        f"Ours: point value [{conf}% stratified-bootstrap CI over seeds, "
        f"{summary['bootstrap']['reps']} replicates; rliable]. Published tables give one score "
        "per game, so theirs are point values; their IQM is the per-game IQM. Optimality gap: "
        "1 − mean(min(HNS, 1)) over runs, lower is better.",
        "",
        TABLE_HEAD,
        TABLE_RULE,
    ]
    ours = {k: stats.Interval(**v) for k, v in summary["ours"].items()}
    lines.append(
        f"| **ours** ({summary['num_runs']} runs) | {ours['mean'].format()} | "
        f"{ours['median'].format()} | {ours['iqm_per_game'].format()} | {ours['iqm'].format()} | "
        f"{ours['optimality_gap'].format()} | {summary['ours_superhuman_games']} |"
    )
    for agg in summary["published_same_games"].values():
        lines.append(_published_row(agg))
    poi = summary["probability_of_improvement"]
    if poi:
        lines += [
            "",
            f"Probability of improvement over {poi['against']} (published): "
            f"**{stats.Interval(poi['point'], poi['low'], poi['high']).format()}** "
            f"({conf}% CI, {poi['reps']} replicates): the chance that one of our runs beats its "
            "published score on a game, averaged over the games (ties count half; 0.5 is a draw).",
        ]
    if partial:
        lines += ["", "Published methods on all 26 games:", "", TABLE_HEAD, TABLE_RULE]
        lines += [_published_row(agg) for agg in summary["published_all_games"].values()]

    lines += ["", "## Per game", ""]
    lines += [
        "| game | seeds | ours: return (mean ± sd) | ours: HNS | EfficientZero: return | "
        "EfficientZero: HNS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in summary["per_game"]:
        sd = f" ± {row['return_std']:.1f}" if row["return_std"] is not None else ""
        lines.append(
            f"| {row['game']} | {len(row['seeds'])} | {row['return_mean']:.1f}{sd} | "
            f"{row['hns']:.3f} | {row['efficientzero_return']:.1f} | "
            f"{row['efficientzero_hns']:.3f} |"
        )
    lines += ["", "## Figures", ""]
    lines += [f"![{p.stem}]({p.name})" for p in figures]
    lines += [
        "",
        "HNS = (score − random) / (human − random). Sources of the published scores: "
        "`benchmarks/reference/SOURCES.md`.",
        "",
    ]
    return "\n".join(lines)


def write_report(
    root: Path,
    out: Path | None = None,
    *,
    reps: int = 2000,
    seed: int = 0,
    against: str = AGAINST,
    poi_reps: int = 500,
) -> tuple[Path, dict[str, Any]]:
    """Reads results under ``root``; writes report, JSON and figures to ``out`` (or ``root``)."""
    out = out or root
    records = load_results(root)
    games = group_by_game(records)
    summary = summarize(games, reps=reps, seed=seed, against=against, poi_reps=poi_reps)
    figures = _figures(root, out, summary, games)
    runs.write_json(out / "aggregate.json", summary)
    report = out / "report.md"
    report.write_text(render_markdown(summary, records, figures))
    return report, summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.aggregate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "root",
        type=Path,
        nargs="?",
        default=Path("results/atari100k"),
        help="folder of benchmarks.atari100k (default results/atari100k)",
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: ROOT)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument(
        "--against",
        default=AGAINST,
        choices=[m for m in COMPARED],
        help="published method of the probability of improvement (default efficientzero)",
    )
    parser.add_argument(
        "--poi-reps",
        type=int,
        default=500,
        help="bootstrap replicates of the probability of improvement (each costs one "
        "Mann-Whitney U test per game)",
    )
    args = parser.parse_args(argv)
    if not load_results(args.root):
        print(f"No finished Atari 100k runs under {args.root} (looked in results/ and runs/).")
        return 1
    report, _ = write_report(
        args.root,
        args.out,
        reps=args.reps,
        seed=args.seed,
        against=args.against,
        poi_reps=args.poi_reps,
    )
    print(report.read_text())
    print(f"Wrote {report}, {report.parent / 'aggregate.json'} and figures in {report.parent}")
    return 0


TABLE_HEAD = (
    "| method | mean | median | IQM (per-game) | IQM (runs) | optimality gap | games with HNS > 1 |"
)
TABLE_RULE = "|---|---:|---:|---:|---:|---:|---:|"


def _published_row(agg: dict[str, Any]) -> str:
    if agg["games"] == 0:
        return f"| {agg['method']} | – | – | – | – | – | – |"
    return (
        f"| {agg['method']} ({agg['games']} games) | {agg['mean']:.3f} | {agg['median']:.3f} | "
        f"{agg['iqm']:.3f} | – | {agg['optimality_gap']:.3f} | {agg['superhuman']} |"
    )


def _setup_lines(summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> list[str]:
    def distinct(key: str) -> str:
        return ", ".join(sorted({str(r.get(key)) for r in records}))

    wall = sum(r["wall_seconds"] for r in records)
    sps = [r["steps_per_second"] for r in records if r.get("steps_per_second")]
    versions = records[0].get("versions") or {}
    return [
        f"- runs: {summary['num_runs']} ({len(summary['games'])} games); algo: {distinct('algo')}; "
        f"env steps per run: {distinct('env_steps')}",
        f"- device: {distinct('device')}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items()) or 'unknown'}",
        f"- wall time: {wall / 3600:.2f} h in total"
        + (f", {np.mean(sps):.1f} env steps/s on average" if sps else ""),
        "",
    ]


def _figures(
    root: Path, out: Path, summary: dict[str, Any], games: Sequence[GameScores]
) -> list[Path]:
    names = summary["games"]
    rows = summary["per_game"]
    figures = [
        plots.per_game_bars(
            names,
            {
                "ours": np.array([r["hns"] for r in rows]),
                "EfficientZero (published)": np.array([r["efficientzero_hns"] for r in rows]),
            },
            out / "per_game_hns.png",
            seed_points=[g.hns for g in games],
        )
    ]
    metrics = ("mean", "median", "iqm_per_game", "optimality_gap")
    points = {"ours": [summary["ours"][k]["point"] for k in metrics]}
    intervals = {"ours": [[summary["ours"][k][end] for k in metrics] for end in ("low", "high")]}
    for method, agg in summary["published_same_games"].items():
        if agg["games"]:
            values = [agg["iqm" if k == "iqm_per_game" else k] for k in metrics]
            points[method], intervals[method] = values, [values, values]
    figures.append(
        plots.interval_estimates(
            points,
            intervals,
            [AGGREGATE_LABELS[k] for k in metrics],
            out / "aggregates.png",
            xlabel=f"human-normalised score, {len(names)} games",
        )
    )
    profiles = {
        "ours": stats.performance_profile(
            stats.score_matrix([g.hns for g in games]),
            PROFILE_TAUS,
            reps=summary["bootstrap"]["reps"],
            seed=summary["bootstrap"]["seed"],
        )
    }
    for method in COMPARED:
        theirs = scores.published_scores(method, names)
        if np.isfinite(theirs).all():  # one run per game: no interval
            profiles[method] = stats.performance_profile(theirs, PROFILE_TAUS)
    figures.append(
        plots.performance_profiles(profiles, PROFILE_TAUS, out / "performance_profile.png")
    )

    learning: dict[str, list[curves.Curve]] = {}
    for game, _, run_dir in run_folders(root):
        curve = runs.eval_curve(run_dir)
        if curve[0].size:
            learning.setdefault(game, []).append(curve)
    if learning:
        table = published.load_reference()
        ordered = {g: learning[g] for g in published.GAMES if g in learning}
        reference = {
            g: ("EfficientZero", float(table.methods["efficientzero"][table.index(g)]))
            for g in ordered
        }
        figures.append(plots.curve_grid(ordered, out / "learning_curves.png", reference=reference))
    return figures


if __name__ == "__main__":
    sys.exit(main())
