"""The whole GPU check of the Atari path in one command that fits one 10-minute job.

    python -m benchmarks.gpu_check --game MsPacman            # make gpu-check GAME=MsPacman

1. ``benchmarks.timing`` on the ``atari100k`` preset (EfficientZero-V1 exact): the real loop
   for ``--exact-steps`` env steps (2,000 of them warm-up), per-phase costs, the projected
   100k-step game;
2. one complete 100k-step game of ``atari100k_fast`` (final 32-episode evaluation included)
   with whatever time is left of ``--budget`` (a game that does not finish in time is reported
   with the env steps it reached and its rate), its score next to the published
   EfficientZero-V1 score for the game.

Writes ``report.md`` and ``gpu_check.json`` (device, versions, every figure) under ``--out``.
``--smoke`` runs the same path with tiny sizes (CPU, tests).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import machine, published

TINY_MODEL = [
    "model.channels=8",
    "model.reduced_channels=2",
    "model.lstm_hidden=8",
    "model.head_hidden=[8]",
    "model.proj_hidden=16",
    "model.proj_out=16",
    "model.pred_hidden=8",
    "model.dtype=float32",  # bfloat16 convolutions are slow on CPUs
    "model.value_support=10",
    "model.reward_support=5",
]
"""A CPU-sized Atari network: the same code path in seconds (smoke runs and tests)."""

SMOKE = [
    "search.num_simulations=2",
    "replay.batch_size=4",
    "replay.capacity=400",
    "replay.reanalyze_simulations=2",
    "replay.refresh_chunk=64",
    "loop.warmup_steps=48",
    "loop.extra_updates=0",
    "optim.warmup_updates=2",
    "optim.target_update_every=4",
    *TINY_MODEL,
    "env.num_envs=2",
    "env.num_eval_envs=2",
    "env.vectorization=sync",
    "run.eval_episodes=2",
    "run.final_eval_episodes=2",
    "run.eval_every=0",
    "run.log_every=50",
    'env.options={"max_episode_frames": 200}',
]


def _run(cmd: list[str], log: Path, timeout: float) -> tuple[int | None, float]:
    """Run ``cmd`` with its output in ``log``; (exit code or None if timed out, seconds)."""
    tick = time.perf_counter()
    with open(log, "w") as f:
        try:
            code = subprocess.run(
                cmd, stdout=f, stderr=subprocess.STDOUT, timeout=max(timeout, 1)
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    return code, time.perf_counter() - tick


def _last_row(metrics: Path) -> dict[str, str]:
    if not metrics.exists():
        return {}
    lines = metrics.read_text().splitlines()
    if len(lines) < 2:
        return {}
    return dict(zip(lines[0].split(","), lines[-1].split(","), strict=False))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    p.add_argument("--game", default="MsPacman")
    p.add_argument("--budget", type=float, default=570.0, help="seconds for the whole check")
    p.add_argument("--exact-steps", type=int, default=4_000)
    p.add_argument("--steps", type=int, default=100_000, help="env steps of the fast game")
    p.add_argument("--out", type=Path, default=Path("results/gpu_check"))
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CPU, tests)")
    p.add_argument("--parts", default="game,timing", help="which parts, in order")
    args = p.parse_args(argv)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    env_id = f"ALE/{args.game}-v5"
    extra = [a for item in SMOKE for a in ("--set", item)] if args.smoke else []
    py = [sys.executable, "-u", "-m"]
    info = machine.describe_machine()
    print(machine.format_machine(info), flush=True)
    result: dict[str, Any] = {"game": args.game, "machine": info, "budget_seconds": args.budget}

    def run_timing() -> None:
        left = args.budget - (time.perf_counter() - start)
        cmd = (
            py
            + [
                "benchmarks.timing",
                "--preset",
                "atari100k",
                "--env",
                env_id,
                "--steps",
                str(args.exact_steps),
                "--out",
                str(args.out),
            ]
            + extra
        )
        code, seconds = _run(cmd, args.out / "timing_atari100k.log", left)
        timing_json = args.out / f"atari100k__{env_id.replace('/', '-')}.json"
        result["exact"] = {"exit_code": code, "seconds": seconds}
        if code == 0 and timing_json.exists():
            result["exact"].update(json.loads(timing_json.read_text()))
        print(f"atari100k timing: exit {code} in {seconds:.0f} s", flush=True)

    def run_game() -> None:
        run_dir = args.out / "fast_game"
        left = args.budget - (time.perf_counter() - start)
        game_cmd = (
            py
            + [
                "dreamer",
                "train",
                "--preset",
                "atari100k_fast",
                "--env",
                env_id,
                "--steps",
                str(args.steps),
                "--out",
                str(run_dir),
            ]
            + extra
        )
        if run_dir.exists():
            game_cmd = py + ["dreamer", "resume", str(run_dir)]
        code, seconds = _run(game_cmd, args.out / "fast_game.log", left)
        game: dict[str, Any] = {"exit_code": code, "seconds": seconds, "finished": code == 0}
        summary = run_dir / "summary.json"
        if code == 0 and summary.exists():
            s = json.loads(summary.read_text())
            game.update(
                {
                    k: s.get(k)
                    for k in (
                        "env_steps",
                        "updates",
                        "wall_seconds",
                        "final_eval_return",
                        "eval_curve",
                        "seconds_by_phase",
                        "counts",
                        "device",
                    )
                }
            )
            game["final_eval_episodes"] = len(s["final_eval_returns"])
        else:
            row = _last_row(run_dir / "metrics.csv")
            game["reached_env_steps"] = int(float(row.get("env_steps", 0) or 0))
            game["reached_wall_seconds"] = float(row.get("wall_seconds", 0) or 0)
        table = published.load_reference()
        if args.game in table.games:
            i = table.index(args.game)
            game["published_efficientzero_v1"] = float(table.methods["efficientzero"][i])
            game["random"], game["human"] = float(table.random[i]), float(table.human[i])
        result["fast_game"] = game
        print(
            f"atari100k_fast game: exit {game['exit_code']} in {game['seconds']:.0f} s", flush=True
        )

    result["exact"] = {"exit_code": None, "seconds": 0.0, "skipped": True}
    result["fast_game"] = {"exit_code": None, "seconds": 0.0, "skipped": True}
    for part in args.parts.split(","):
        {"game": run_game, "timing": run_timing}[part]()
    result["total_seconds"] = time.perf_counter() - start
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    report = _report(result)
    (args.out / "report.md").write_text(report)
    print(report)
    print(f"wrote {args.out / 'report.md'} and {args.out / 'gpu_check.json'}")
    ok = [
        part.get("exit_code") == 0
        for part in (result["exact"], result["fast_game"])
        if not part.get("skipped")
    ]
    return 0 if all(ok) else 1


def _report(r: dict[str, Any]) -> str:
    info, exact, game = r["machine"], r["exact"], r["fast_game"]
    lines = [f"# GPU check: {r['game']}", "", machine.format_machine(info), ""]
    if "full_run" in exact:
        full = exact["full_run"]
        lines += [
            f"**atari100k (EfficientZero-V1 exact)**: real loop {exact['env_steps']} env steps "
            f"({exact['updates']} updates) at {exact['env_steps_per_second']:.1f} env steps/s "
            f"with updates; compile {exact['compile_seconds']:.0f} s; projected 100k-step game "
            f"{full['projected_hours'] * 60:.0f} min (acting search + updates alone: "
            f"{exact['hot_path_hours'] * 60:.0f} min).",
            "",
            "| phase | seconds | share | unit cost |",
            "|---|---:|---:|---|",
        ]
        units = {
            "act": "act_per_iteration",
            "env": "env_per_iteration",
            "add": "add_per_iteration",
            "learn": "learn_per_update",
            "refresh": "refresh_per_state",
            "eval": "eval_per_step",
            "save": "save_per_checkpoint",
            "host": "host_per_iteration",
        }
        for phase, seconds in exact["seconds_by_phase"].items():
            unit = units.get(phase, "")
            cost = exact["unit_costs"].get(unit, 0.0)
            lines.append(
                f"| {phase} | {seconds:.1f} | {exact['share_by_phase'][phase]:.0%} | "
                f"{cost * 1e3:.3f} ms {unit.replace('_', ' ')} |"
            )
        lines.append("")
    elif exact.get("skipped"):
        lines += ["atari100k timing: not run (--parts).", ""]
    else:
        lines += [f"atari100k timing did not finish (exit {exact['exit_code']}).", ""]
    if game.get("skipped"):
        lines += ["atari100k_fast game: not run (--parts)."]
    elif game.get("finished"):
        pub = game.get("published_efficientzero_v1")
        lines += [
            f"**atari100k_fast, one complete game**: {game['env_steps']} env steps, "
            f"{game['updates']} updates, {game['wall_seconds'] / 60:.1f} min of training "
            f"({game['seconds'] / 60:.1f} min for the whole process, compile and final "
            f"{game['final_eval_episodes']}-episode evaluation included). Final return "
            f"{game['final_eval_return']:.1f}"
            + (
                f" (EfficientZero-V1 published: {pub:.1f}; random {game['random']:.1f}, "
                f"human {game['human']:.1f})."
                if pub is not None
                else "."
            ),
        ]
    else:
        lines += [
            f"**atari100k_fast** did not finish within the budget: it reached "
            f"{game.get('reached_env_steps', 0)} env steps in "
            f"{game.get('reached_wall_seconds', 0):.0f} s (exit {game['exit_code']}).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
