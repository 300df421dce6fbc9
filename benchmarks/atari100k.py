"""Atari 100k: run games x seeds through the ``python -m dreamer`` CLI, then report.

    python -m benchmarks.atari100k --games all --seeds 0,1,2 --steps 100000 \\
        --preset atari100k --out results/atari100k [--set key=value ...] \\
        [--launcher local|ray|slurm] [--parallel N] [--gpus-per-run G] [--cpus-per-run C] \\
        [--ray-address ADDR] [--partition P] [--time-min M] [--slurm-option KEY=VALUE]

Each run gets the folder ``OUT/runs/<Game>__seed<S>`` and the log ``OUT/logs/<Game>__seed<S>.log``.
With ``--seeds-per-process N`` (EfficientZero), N seeds of a game train together in one
process, vmapped (``train --seeds``): the group folder ``OUT/runs/<Game>__seeds<a>-<b>`` holds
a folder ``seed<S>`` per seed, its log is ``OUT/logs/<Game>__seeds<a>-<b>.log``.
A launcher (``benchmarks.launchers``) runs them: ``local`` (default) as processes here,
``--parallel`` at a time; ``ray`` as Ray tasks; ``slurm`` as a submitit job array. Finished
runs (``summary.json``) are skipped and interrupted ones (``config.json`` only) resumed, so
rerunning the same command continues an interrupted benchmark. Every finished run is
summarised in ``OUT/results/<Game>__seed<S>.json`` as it ends; once the last run has ended
``benchmarks.aggregate`` writes the report (``python -m benchmarks.aggregate OUT`` rebuilds it
from the folders at any time). Seeds are the outer loop, so a partial benchmark covers many
games with few seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import aggregate, launchers, machine, published, runs
from benchmarks.aggregate import game_result, group_name, run_name
from dreamer.cli import parse_seeds


def benchmark_jobs(
    *,
    games: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    preset: str,
    out: Path,
    algo: str = "efficientzero",
    overrides: Sequence[str] = (),
    seeds_per_process: int = 1,
) -> list[launchers.Job]:
    """One job per (game, seed), seeds outermost; with ``seeds_per_process`` > 1 one job per
    (game, group of that many seeds), the seeds trained together."""
    if seeds_per_process < 1:
        raise ValueError(f"--seeds-per-process must be at least 1, got {seeds_per_process}")
    jobs = []
    for first in range(0, len(seeds), seeds_per_process):
        chunk = tuple(seeds[first : first + seeds_per_process])
        for game in games:
            group = seeds_per_process > 1
            name = group_name(game, chunk) if group else run_name(game, chunk[0])
            run_dir = out / "runs" / name
            args = runs.train_args(
                algo=algo,
                preset=preset,
                env_id=published.ale_id(game),
                seed=chunk if group else chunk[0],
                steps=steps,
                out=run_dir.absolute(),
                overrides=overrides,
            )
            log = out / "logs" / f"{name}.log"
            jobs.append(launchers.make_job(name, run_dir, args, log, chunk if group else ()))
    return jobs


def run_benchmark(
    *,
    games: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    preset: str,
    out: Path,
    algo: str = "efficientzero",
    overrides: Sequence[str] = (),
    launcher: launchers.Launcher | None = None,
    seeds_per_process: int = 1,
) -> list[runs.Outcome]:
    """Brings every (game, seed) run to the finished state and writes its result JSON."""
    jobs = benchmark_jobs(
        games=games,
        seeds=seeds,
        steps=steps,
        preset=preset,
        out=out,
        algo=algo,
        overrides=overrides,
        seeds_per_process=seeds_per_process,
    )
    ended = 0

    def record(job: launchers.Job, outcome: runs.Outcome) -> None:
        nonlocal ended
        ended += 1
        head = f"[{ended}/{len(jobs)} ended] {job.name}"
        if not outcome.finished:
            why = outcome.error or f"exit code {outcome.returncode}"
            print(
                f"{head}: FAILED ({outcome.action}, {why}); log {outcome.log}; rerun the same "
                "command to resume it",
                flush=True,
            )
            return
        for game, seed, run_dir in aggregate.job_runs(job.name, job.run_dir):
            try:
                record = game_result(run_dir, game, seed)
            except (KeyError, TypeError, ValueError, OSError) as error:  # the others go on
                print(f"{head}: finished, but {run_dir}'s summary cannot be read: {error!r}")
                continue
            runs.write_json(out / "results" / f"{run_name(game, seed)}.json", record)
            sps = record["steps_per_second"] or float("nan")
            print(
                f"{head}: seed {seed} {outcome.action}: final eval return "
                f"{record['final_eval_return']:.1f} (HNS {record['hns']:.3f}) over "
                f"{len(record['eval_returns'])} episodes; {record['env_steps']} env steps, "
                f"{record['updates']} updates in {record['wall_seconds']:.0f} s "
                f"({sps:.1f} env steps/s)",
                flush=True,
            )

    return (launcher or launchers.LocalLauncher()).run(jobs, on_done=record)


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--launcher`` options (see ``benchmarks.launchers``)."""
    group = parser.add_argument_group("launcher")
    group.add_argument(
        "--launcher",
        default="local",
        choices=launchers.LAUNCHERS,
        help="where runs go: processes here (local, default), Ray tasks (ray) or a SLURM job "
        "array through submitit (slurm)",
    )
    group.add_argument(
        "--parallel",
        type=int,
        default=None,
        help="runs at once (local: default 1; ray, slurm: default no limit of ours)",
    )
    group.add_argument(
        "--gpus-per-run",
        type=float,
        default=1.0,
        help="ray: GPUs per run, a fraction shares a GPU (0.25: four runs per GPU); slurm: "
        "whole GPUs per job (default 1; 0 runs on CPUs)",
    )
    group.add_argument("--cpus-per-run", type=float, default=4, help="ray, slurm (default 4)")
    group.add_argument(
        "--ray-address",
        default=None,
        help="ray: a running cluster ('auto', 'ray://head:10001'); default: start Ray here",
    )
    group.add_argument("--partition", default=None, help="slurm: partition (default: SLURM's)")
    group.add_argument(
        "--time-min",
        type=int,
        default=240,
        help="slurm: time limit per job in minutes; at the limit a run is requeued and "
        "resumes (default 240)",
    )
    group.add_argument(
        "--slurm-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="slurm: a further submitit SLURM parameter, e.g. account=rl, qos=high, mem=32G "
        "(repeatable)",
    )
    group.add_argument(
        "--submitit-cluster",
        default="slurm",
        choices=("slurm", "local"),
        help="slurm: 'local' runs the job array with submitit's local executor on this "
        "machine instead of SLURM (tests, smoke runs)",
    )


def launcher_from_arguments(args: argparse.Namespace, out: Path) -> launchers.Launcher:
    """The launcher ``add_launcher_arguments``'s options describe."""
    if args.launcher == "local":
        return launchers.LocalLauncher(parallel=args.parallel or 1)
    if args.launcher == "ray":
        return launchers.RayLauncher(
            address=args.ray_address,
            gpus_per_run=args.gpus_per_run,
            cpus_per_run=args.cpus_per_run,
            parallel=args.parallel,
        )
    options = dict(item.split("=", 1) for item in args.slurm_option)
    return launchers.SlurmLauncher(
        folder=out / "submitit",
        partition=args.partition,
        time_min=args.time_min,
        gpus_per_run=args.gpus_per_run,
        cpus_per_run=int(args.cpus_per_run),
        parallel=args.parallel,
        cluster=args.submitit_cluster,
        options=options,
    )


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
    parser.add_argument(
        "--seeds-per-process",
        type=int,
        default=1,
        help="seeds of a game trained together in one process, vmapped (EfficientZero; "
        "default 1: one process per run)",
    )
    add_launcher_arguments(parser)
    args = parser.parse_args(argv)
    games = published.parse_games(args.games)
    seeds = parse_seeds(args.seeds)
    if any("=" not in item for item in args.slurm_option):
        parser.error("--slurm-option takes KEY=VALUE")
    launcher = launcher_from_arguments(args, args.out)

    started = time.time()
    print(
        f"Atari 100k: {len(games)} games x seeds {list(seeds)}, {args.steps} env steps each; "
        f"algo {args.algo}, preset {args.preset}, overrides {args.overrides or 'none'}; "
        f"launcher {launcher.name}"
    )
    print(machine.format_machine(machine.describe_machine()), flush=True)
    outcomes = run_benchmark(  # a stop reaches the runs: see runs.benchmark_main
        games=games,
        seeds=seeds,
        steps=args.steps,
        preset=args.preset,
        out=args.out,
        algo=args.algo,
        overrides=args.overrides,
        launcher=launcher,
        seeds_per_process=args.seeds_per_process,
    )
    failed = [o for o in outcomes if not o.finished]
    print(
        f"\n{len(outcomes) - len(failed)}/{len(outcomes)} runs finished "
        f"({time.time() - started:.0f} s this session). Run folders: {args.out / 'runs'}; "
        f"per-run results: {args.out / 'results'}; logs: {args.out / 'logs'}"
    )
    for o in failed:
        why = o.error or f"exit code {o.returncode}"
        print(f"  not finished: {o.run_dir.name} ({o.action}, {why}); log {o.log}")
    if failed:
        print("Rerun the same command to resume them (finished runs are skipped).")
    if not args.no_report and len(failed) < len(outcomes):
        aggregate.main([str(args.out)])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(runs.benchmark_main(main))
