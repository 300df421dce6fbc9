"""Atari 100k: run games x seeds through the ``python -m dreamer`` CLI, then report.

    python -m benchmarks.atari100k --games all --seeds 0,1,2 --steps 100000 \\
        --preset atari100k --out results/atari100k [--set key=value ...]

Each run gets the folder ``OUT/runs/<Game>__seed<S>``. Finished runs (``summary.json``) are
skipped and interrupted ones (``config.json`` only) resumed, so rerunning the same command
continues an interrupted benchmark. Every finished run is summarised in
``OUT/results/<Game>__seed<S>.json``; at the end ``benchmarks.aggregate`` writes the report.
Seeds are the outer loop, so a partial benchmark covers many games with few seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import aggregate, machine, published, runs
from benchmarks.aggregate import game_result, run_name
from dreamer.cli import parse_seeds


def run_benchmark(
    *,
    games: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    preset: str,
    out: Path,
    algo: str = "efficientzero",
    overrides: Sequence[str] = (),
) -> list[runs.Outcome]:
    """Brings every (game, seed) run to the finished state and writes its result JSON."""
    outcomes = []
    total = len(games) * len(seeds)
    for seed in seeds:
        for game in games:
            name = run_name(game, seed)
            run_dir = out / "runs" / name
            print(f"\n[{len(outcomes) + 1}/{total}] {game} seed {seed} -> {run_dir}", flush=True)
            args = runs.train_args(
                algo=algo,
                preset=preset,
                env_id=published.ale_id(game),
                seed=seed,
                steps=steps,
                out=run_dir,
                overrides=overrides,
            )
            outcome = runs.ensure_run(run_dir, args)
            outcomes.append(outcome)
            if not outcome.finished:
                print(
                    f"  FAILED ({outcome.action}, exit code {outcome.returncode}); "
                    "rerun the same command to resume it",
                    flush=True,
                )
                continue
            record = game_result(run_dir, game, seed)
            runs.write_json(out / "results" / f"{name}.json", record)
            sps = record["steps_per_second"] or float("nan")
            print(
                f"  {outcome.action}: final eval return {record['final_eval_return']:.1f} "
                f"(HNS {record['hns']:.3f}) over {len(record['eval_returns'])} episodes; "
                f"{record['env_steps']} env steps, {record['updates']} updates in "
                f"{record['wall_seconds']:.0f} s ({sps:.1f} env steps/s)",
                flush=True,
            )
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.atari100k", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--games", default="all", help="'all' or comma-separated names")
    parser.add_argument("--seeds", default="0,1,2", help="seeds: 0,1,2 or a range 0-9")
    parser.add_argument("--steps", type=int, default=100_000, help="real env steps per run")
    parser.add_argument("--preset", default="atari100k", help="preset of the CLI")
    parser.add_argument("--algo", default="efficientzero", help="algorithm of the CLI")
    parser.add_argument(
        "--out", type=Path, default=Path("results/atari100k"), help="benchmark folder"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override passed to every run (repeatable)",
    )
    parser.add_argument("--no-report", action="store_true", help="skip the aggregate report")
    args = parser.parse_args(argv)
    games = published.parse_games(args.games)
    seeds = parse_seeds(args.seeds)

    started = time.time()
    print(
        f"Atari 100k: {len(games)} games x seeds {list(seeds)}, {args.steps} env steps each; "
        f"algo {args.algo}, preset {args.preset}, overrides {args.overrides or 'none'}"
    )
    print(machine.format_machine(machine.describe_machine()), flush=True)
    outcomes = run_benchmark(
        games=games,
        seeds=seeds,
        steps=args.steps,
        preset=args.preset,
        out=args.out,
        algo=args.algo,
        overrides=args.overrides,
    )
    failed = [o for o in outcomes if not o.finished]
    print(
        f"\n{len(outcomes) - len(failed)}/{len(outcomes)} runs finished "
        f"({time.time() - started:.0f} s this session). Run folders: {args.out / 'runs'}; "
        f"per-run results: {args.out / 'results'}"
    )
    for o in failed:
        print(f"  not finished: {o.run_dir} ({o.action}, exit code {o.returncode})")
    if not args.no_report and len(failed) < len(outcomes):
        aggregate.main([str(args.out)])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
