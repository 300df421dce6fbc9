"""Groups of runs that differ only in their seed: ``train --seeds 0-9 --out DIR``.

A group folder holds ``group.json`` (the algorithm, the seeds, and whether they train together)
and one ordinary run folder per seed, ``DIR/seed<k>``. EfficientZero trains every seed in one
process with the seeds ``vmap``ped: in one ``jit`` on a JAX-native env (``dreamer.loops.fused``),
in the host loop on any other (``dreamer.loops.host.train_seeds``: one vector env for all the
seeds' environments). The baselines train the seeds one after another. ``resume DIR``
continues the whole group.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamer.core.configtree import ConfigError, from_dict, replace_path
from dreamer.loops import algos
from dreamer.shell.checkpoint import latest_checkpoint
from dreamer.shell.runbook import check_can_start
from dreamer.shell.runlog import CONFIG_FILE, SUMMARY_FILE, read_json

GROUP_FILE = "group.json"


def is_group(folder: Path) -> bool:
    return (Path(folder) / GROUP_FILE).exists()


def seed_folder(out: Path, seed: int) -> Path:
    return Path(out) / f"seed{int(seed)}"


def fused_possible(algo: str, cfg: Any) -> bool:
    """Whether the seeds of ``cfg`` can train together in the fused loop."""
    if algo != "efficientzero":
        return False
    from dreamer.loops.efficientzero import is_jax_native

    return is_jax_native(cfg)


def trains_together(algo: str) -> bool:
    """Whether the seeds of ``algo`` train in one process, vmapped (EfficientZero's do)."""
    return algo == "efficientzero"


def train_group(algo_name: str, cfg: Any, out: Path, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Train ``seeds`` of ``cfg`` into ``out/seed<k>``; the summaries, in seed order."""
    out = Path(out)
    folders = [seed_folder(out, k) for k in seeds]
    for folder in folders:
        check_can_start(folder)
    record = {
        "algo": algo_name,
        "seeds": [int(k) for k in seeds],
        "fused": fused_possible(algo_name, cfg),
        "together": trains_together(algo_name),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / GROUP_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if record["together"]:
        from dreamer.loops.efficientzero import train_seeds

        return train_seeds(cfg, folders, seeds, resume=False)
    algo = algos.get(algo_name)
    return [
        algo.train(replace_path(cfg, "run.seed", int(k)), folder, resume=False)
        for k, folder in zip(seeds, folders, strict=True)
    ]


def resume_group(out: Path) -> list[dict[str, Any]]:
    """Continue every unfinished seed of the group in ``out``; the summaries of all seeds.

    Seeds trained together continue together from their checkpoints, or start over together
    when none was written yet (as one run's ``resume`` starts it over)."""
    out = Path(out)
    record = json.loads((out / GROUP_FILE).read_text())
    seeds = record["seeds"]
    folders = [seed_folder(out, k) for k in seeds]
    algo = algos.get(record["algo"])
    configs = []
    for folder in folders:
        if not (folder / CONFIG_FILE).exists():
            raise ConfigError(f"{folder} is missing: the group {out} cannot be resumed whole.")
        configs.append(from_dict(algo.config_cls, read_json(folder / CONFIG_FILE)["config"]))
    finished = [(folder / SUMMARY_FILE).exists() for folder in folders]
    if all(finished):
        return [read_json(folder / SUMMARY_FILE) for folder in folders]
    if record.get("fused") or record.get("together"):
        from dreamer.loops.efficientzero import train_seeds

        base = replace_path(configs[0], "run.seed", int(seeds[0]))
        started = [latest_checkpoint(f) is not None for f in folders]
        if not any(finished) and not any(started):  # stopped before the first checkpoint
            return train_seeds(base, folders, seeds, resume=False)
        if any(finished) or not all(started):
            raise ConfigError(
                f"the seeds of {out} stopped at different points; resume each seed folder "
                "on its own (`python -m dreamer resume DIR/seed<k>`)."
            )
        return train_seeds(base, folders, seeds, resume=True)
    summaries = []
    for cfg, folder, done in zip(configs, folders, finished, strict=True):
        if done:
            summaries.append(read_json(folder / SUMMARY_FILE))
        else:
            resume = latest_checkpoint(folder) is not None
            summaries.append(algo.train(cfg, folder, resume=resume))
    return summaries


def print_group(out: Path, summaries: Sequence[dict[str, Any]]) -> None:
    print(f"\ngroup folder: {out}")
    print("| seed | final eval return | best eval return | env steps | wall s |")
    print("|---:|---:|---:|---:|---:|")
    for s in summaries:
        final, best = s.get("final_eval_return"), s.get("best_eval_return")
        text = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(
            f"| {s['seed']} | {text(final)} | {text(best)} | {s['env_steps']} | "
            f"{s['wall_seconds']:.0f} |"
        )
