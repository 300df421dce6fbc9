"""Seeds as a batch: the wall-clock of N seeds trained together against one seed alone.

    python -m benchmarks.seed_batch --preset atari100k_fast --env ALE/MsPacman-v5 \\
        --steps 10000 --seeds 3 --out results/seed_batch

Trains ``python -m dreamer train --seeds 0`` and then ``--seeds 0-(N-1)`` (one process, the
seeds vmapped) for ``--steps`` env steps each, without evaluations, and compares:

- the wall-clock of each process (compilation included);
- the steady rate: env steps per second of every seed together over the second half of the
  budget, from the runs' ``metrics.csv`` (compilation and warm-up excluded).

``ratio`` = wall(N together) / wall(1): below N, the batch is cheaper than N runs one after
another (on a GPU that one run's batch leaves mostly idle, close to 1 is the goal). Writes
``seed_batch.json`` and ``report.md`` with the machine under ``--out``. ``--smoke`` uses the
GPU check's tiny Atari sizes (CPU, minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import machine, runs
from benchmarks.gpu_check import SMOKE

QUIET = ["run.eval_every=0", "run.final_eval_episodes=0", "run.progress=false"]
"""Training only: no evaluation in the timed runs."""


def second_half_rate(run_dirs: Sequence[Path], steps: int) -> float | None:
    """Env steps per second of all ``run_dirs`` together between the first metrics row at or
    past half the budget and the last row (the runs share one process and one clock)."""
    rows = runs.read_metrics(run_dirs[0])
    timed = [(int(r["env_steps"]), float(r["wall_seconds"])) for r in rows]
    later = [t for t in timed if t[0] >= steps // 2]
    if len(later) < 2 or later[-1][1] <= later[0][1]:
        return None
    (s0, w0), (s1, w1) = later[0], later[-1]
    return len(run_dirs) * (s1 - s0) / (w1 - w0)


def measure(args: argparse.Namespace, seeds: int) -> dict[str, Any]:
    """Train seeds ``0..seeds-1`` together; the process's wall-clock and steady rate."""
    out = args.out / f"seeds{seeds}"
    overrides = [*QUIET, *(SMOKE if args.smoke else []), *args.overrides]
    cmd = [sys.executable, "-u", "-m", "dreamer", "train", "--preset", args.preset]
    cmd += ["--env", args.env, "--steps", str(args.steps), "--seeds", f"0-{seeds - 1}"]
    cmd += ["--out", str(out)]
    for item in overrides:
        cmd += ["--set", item]
    log = args.out / f"seeds{seeds}.log"
    tick = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - tick
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {code}; see {log}")
    folders = [out / f"seed{k}" for k in range(seeds)]
    return {
        "seeds": seeds,
        "wall_seconds": round(wall, 1),
        "steady_env_steps_per_second": second_half_rate(folders, args.steps),
        "log": str(log),
    }


def report(result: dict[str, Any]) -> str:
    one, many = result["one"], result["many"]
    n = many["seeds"]
    rate = lambda r: "–" if r is None else f"{r:.1f}"  # noqa: E731
    lines = [
        f"# {n} seeds in one process against one seed alone",
        "",
        f"`python -m benchmarks.seed_batch {' '.join(result['argv'])}`",
        "",
        machine.format_machine(result["machine"]),
        "",
        f"Preset `{result['preset']}`, env `{result['env']}`, {result['steps']:,} env steps per "
        "seed, no evaluation.",
        "",
        "| seeds in the process | wall s (compile included) | env steps/s, all seeds, "
        "second half |",
        "|---:|---:|---:|",
        f"| 1 | {one['wall_seconds']:.0f} | {rate(one['steady_env_steps_per_second'])} |",
        f"| {n} | {many['wall_seconds']:.0f} | {rate(many['steady_env_steps_per_second'])} |",
        "",
        f"wall({n} together) / wall(1) = **{result['ratio']:.2f}** ({n} runs one after another: "
        f"{n}.00).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.seed_batch", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--preset", default="atari100k_fast")
    p.add_argument("--env", default="ALE/MsPacman-v5")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--seeds", type=int, default=3, help="seeds trained together (default 3)")
    p.add_argument("--out", type=Path, default=Path("results/seed_batch"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--smoke", action="store_true", help="tiny Atari sizes (CPU)")
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error("--seeds must be at least 2")
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine.describe_machine()
    print(machine.format_machine(info), flush=True)
    one = measure(args, 1)
    print(f"1 seed: {one['wall_seconds']:.0f} s", flush=True)
    many = measure(args, args.seeds)
    print(f"{args.seeds} seeds: {many['wall_seconds']:.0f} s", flush=True)
    result = {
        "argv": list(argv if argv is not None else sys.argv[1:]),
        "machine": info,
        "preset": args.preset,
        "env": args.env,
        "steps": args.steps,
        "one": one,
        "many": many,
        "ratio": many["wall_seconds"] / one["wall_seconds"],
    }
    runs.write_json(args.out / "seed_batch.json", result)
    text = report(result)
    (args.out / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
