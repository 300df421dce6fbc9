"""Host loop against fused loop: the same preset and env, many seeds, the same learning?

    python -m benchmarks.seeds --preset cartpole --seeds 0-9 --out results/seeds
    python -m benchmarks.seeds --paths fused --seeds 0-9 --out results/seeds     # GPU part
    python -m benchmarks.seeds --report-only --out results/seeds                 # table only

The ``host`` path trains the gymnasium env (``--host-env``, default CartPole-v1) one seed after
another through ``dreamer.loops.host.HostLoop``; the ``fused`` path trains its JAX port
(``--fused-env``, default gymnax:CartPole-v1) with every seed in one process and one ``jit``
(``dreamer.loops.fused``). Both are ``train --seeds`` groups under ``OUT/<path>``, so each seed
has its usual run folder. The report (``report.md``, ``seeds.json``) gives per seed the final
greedy return, per path the mean with a 95% bootstrap interval over seeds, the seeds that
reach ``--threshold``, the wall-clock of the whole group (compilation included) and its
throughput in seed-env-steps per second, and the difference of the means with its 95%
bootstrap interval: an interval that holds 0 means no difference is detectable at this many
seeds. Each path records the machine it ran on, so the two may come from different machines
(for example the fused group on a GPU); throughput is only comparable on one machine.
Rerun with the same ``--out``, a path whose record is kept is skipped and a stopped group
is resumed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import describe_machine, format_machine
from benchmarks.stats import bootstrap_mean, compare
from dreamer.core.seeds import parse_seeds
from dreamer.shell.cpu_devices import request_cpu_devices

PATHS = ("host", "fused")


def run_path(path: str, args: argparse.Namespace, seeds: list[int]) -> dict[str, Any]:
    """Train the group of one path; its record (machine, wall-clock, summaries).

    A path whose record is kept under ``OUT`` is skipped (it must hold the seeds, env, preset
    and overrides asked for); a group stopped on the way is resumed from its checkpoints, and
    its record then says so (its wall-clock counts only the resumed part)."""
    from benchmarks import runs
    from dreamer.core.configtree import apply_overrides
    from dreamer.loops import groups
    from experiments import presets

    env = args.host_env if path == "host" else args.fused_env
    record_file, group = Path(args.out) / f"{path}.json", Path(args.out) / path
    asked = {"env": env, "preset": args.preset, "overrides": list(args.set)}
    if record_file.exists():
        kept = json.loads(record_file.read_text())
        have = {key: kept.get(key) for key in asked}
        kept_seeds = [s["seed"] for s in kept["summaries"]]
        if have != asked or kept_seeds != list(seeds):
            raise SystemExit(
                f"{record_file} holds another run ({have}, seeds {kept_seeds}); give this "
                "benchmark its own --out, or move that file and its folder away."
            )
        print(f"{path}: kept in {record_file}; skipped", flush=True)
        return kept
    cfg = apply_overrides(presets.get("efficientzero", args.preset), [f"env.id={env}", *args.set])
    if path == "fused" and not groups.fused_possible("efficientzero", cfg):
        raise SystemExit(f"{env} is not a JAX-native env: the fused path needs one (gymnax:<id>)")
    resumed = groups.is_group(group)
    if resumed:
        train = runs.train_args(
            algo="efficientzero",
            preset=args.preset,
            env_id=env,
            seed=seeds,
            steps=cfg.run.env_steps,
            out=group,
            overrides=args.set,
        )
        for k in seeds:
            runs.check_same_run(groups.seed_folder(group, k), train)
    start = time.perf_counter()
    if resumed:
        summaries = groups.resume_group(group)
    else:
        summaries = groups.train_group("efficientzero", cfg, group, seeds)
    wall = time.perf_counter() - start
    record = {
        **asked,
        "path": path,
        "machine": describe_machine(),
        "wall_seconds": wall,
        "resumed": resumed,
        "summaries": summaries,
    }
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    return record


def final_returns(record: dict[str, Any]) -> np.ndarray:
    return np.asarray([s["final_eval_return"] for s in record["summaries"]], np.float64)


def report(out: Path, threshold: float) -> str:
    records = {
        p: json.loads((out / f"{p}.json").read_text())
        for p in PATHS
        if (out / f"{p}.json").exists()
    }
    if not records:
        raise SystemExit(f"no finished path under {out}: run without --report-only first")
    lines = ["# Host loop against fused loop", ""]
    for path, rec in records.items():
        lines.append(
            f"- **{path}** ({rec['env']}, preset {rec['preset']}): {format_machine(rec['machine'])}"
        )
    lines += [
        "",
        "| path | seeds | final return: mean [95% CI] | seeds ≥ threshold | wall s "
        "| seed-env-steps/s |",
    ]
    lines.append("|---|---:|---|---:|---:|---:|")
    for path, rec in records.items():
        returns = final_returns(rec)
        steps = sum(int(s["env_steps"]) for s in rec["summaries"])
        ci = bootstrap_mean(returns)
        solved = int(np.sum(returns >= threshold))
        lines.append(
            f"| {path} | {returns.size} | {ci.format(1)} | {solved}/{returns.size} | "
            f"{rec['wall_seconds']:.0f}{' (resumed part)' if rec.get('resumed') else ''} | "
            f"{steps / rec['wall_seconds']:.0f} |"
        )
    lines += ["", "Per seed (final greedy return):", "", "| seed | " + " | ".join(records) + " |"]
    lines.append("|---:|" + "---:|" * len(records))
    seeds = [s["seed"] for s in next(iter(records.values()))["summaries"]]
    by_seed = {
        p: {s["seed"]: s["final_eval_return"] for s in r["summaries"]} for p, r in records.items()
    }
    for k in seeds:
        cells = [f"{by_seed[p].get(k, float('nan')):.1f}" for p in records]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    if len(records) == 2:
        fused = compare(final_returns(records["fused"]), final_returns(records["host"]), reps=4000)
        d = fused.difference
        lines += [
            "",
            f"fused − host, mean final return: {d.point:.1f} [95% CI {d.low:.1f}, {d.high:.1f}]: "
            f"fused is {fused.against('host')}.",
        ]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.seeds", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--preset", default="cartpole")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--paths", default="host,fused", help="host, fused or both")
    parser.add_argument("--host-env", default="CartPole-v1")
    parser.add_argument("--fused-env", default="gymnax:CartPole-v1")
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--set", action="append", default=[], metavar="K=V")
    parser.add_argument("--out", default="results/seeds")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if paths == ["fused"]:  # its seeds split over the cores (not the host path's)
        request_cpu_devices(len(parse_seeds(args.seeds)))

    if not args.report_only:
        unknown = sorted(set(paths) - set(PATHS))
        if unknown:
            parser.error(f"unknown path(s) {unknown}; choose from {list(PATHS)}")
        out.mkdir(parents=True, exist_ok=True)
        for path in paths:
            run_path(path, args, parse_seeds(args.seeds))
    print(report(out, args.threshold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
