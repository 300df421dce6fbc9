"""The run folder: ``config.json``, ``metrics.csv``, TensorBoard events, ``summary.json``.

Every algorithm (EfficientZero and the model-free baselines) writes the same folder through
``RunLog``, so benchmarks read one format. Layout::

    RUN/config.json       {"algo": ..., "config": {...}}
    RUN/metrics.csv       one row per log point: env_steps, updates, wall_seconds, then
                          metrics named as in cleanrl (``METRIC_NAMES``): charts/..., eval/...,
                          losses/... (empty where not measured at that point)
    RUN/events.*          TensorBoard scalars: the same names and values as metrics.csv, at
                          step env_steps; one event file per run, without repeated steps
    RUN/checkpoints/      orbax checkpoints (see ``dreamer.shell.checkpoint``)
    RUN/summary.json      written once the run has finished

Every rewrite of a file (``metrics.csv`` trimmed on resume or widened by a new column,
``config.json``, ``summary.json``) goes to a temporary file that then replaces the old one,
so a kill at any moment leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shlex
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from dreamer.shell import tensorboard_events
from dreamer.shell.cpu_devices import usable_cores

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"

EPISODIC_RETURN = "charts/episodic_return"
EPISODIC_LENGTH = "charts/episodic_length"
EVAL_RETURN = "eval/return_mean"
SPS = "charts/SPS"
LEARNING_RATE = "charts/learning_rate"

# Columns every metrics.csv starts with, in this order; algorithm metrics follow, sorted.
BASE_COLUMNS = (
    "env_steps",
    "updates",
    "wall_seconds",
    EPISODIC_RETURN,
    EPISODIC_LENGTH,
    EVAL_RETURN,
    SPS,
)

METRIC_NAMES = {
    "env_steps": "real environment steps so far (the TensorBoard step)",
    "updates": "gradient updates so far",
    "wall_seconds": "wall-clock seconds of training so far, across resumes",
    EPISODIC_RETURN: "mean return of the training episodes that ended since the last row",
    EPISODIC_LENGTH: "mean length (env steps) of those episodes",
    EVAL_RETURN: "mean return of the greedy evaluation at this row (empty if none ran)",
    SPS: "env steps per second since the last row",
    LEARNING_RATE: "learning rate of the last update",
    "losses/*": "the algorithm's losses, averaged over the updates since the last row",
    "charts/*": "other per-algorithm diagnostics (gradient norm, epsilon, value means, ...)",
}
"""The metric names every algorithm writes (cleanrl's scheme), with their meaning."""


def versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers."""
    out = {"python": platform.python_version()}
    for name in ("dreamer", "jax", "jaxlib", "flax", "optax", "mctx", "gymnasium", "ale-py"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_description() -> str:
    """The accelerator (or CPU) the run used, in words."""
    import jax

    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", dev.platform)
    cpu = platform.processor() or platform.machine()
    total, usable = os.cpu_count() or 1, usable_cores()
    cores = f"{total} cores" if usable >= total else f"{usable} of {total} cores"
    return f"{dev.platform}:{kind} x{jax.device_count()} (host {cpu}, {cores})"


class RunLog:
    """Appends metric rows to CSV and TensorBoard; writes config and summary files."""

    def __init__(self, run_dir: str | os.PathLike, *, tensorboard: bool = True):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._columns: list[str] | None = None
        self._tensorboard = tensorboard
        self._tb: tensorboard_events.EventWriter | None = None  # opened at the first row

    # -- config ------------------------------------------------------------------------------
    def write_config(self, algo: str, config: Mapping[str, Any]) -> None:
        _atomic_write_json(self.dir / CONFIG_FILE, {"algo": algo, "config": dict(config)})

    # -- metrics -----------------------------------------------------------------------------
    def truncate_after(self, env_steps: int) -> None:
        """Drop rows and TensorBoard events logged after ``env_steps`` (used on resume from a
        checkpoint), so that the resumed run writes each step once."""
        self.close()
        tensorboard_events.compact(self.dir, keep_upto=env_steps)
        path = self.dir / METRICS_FILE
        if not path.exists():
            return
        rows = read_metrics(path)
        keep = [r for r in rows if float(r["env_steps"]) <= env_steps]
        if rows:
            columns = list(rows[0].keys())
            _atomic_write_rows(path, columns, keep)
            self._columns = columns

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one row; the first row fixes the columns (later unknown keys are dropped)."""
        path = self.dir / METRICS_FILE
        if self._columns is None:
            if path.exists() and path.stat().st_size > 0:
                with open(path, newline="") as f:
                    self._columns = next(csv.reader(f))
            else:
                extra = sorted(k for k in row if k not in BASE_COLUMNS)
                self._columns = list(BASE_COLUMNS) + extra
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerow(self._columns)
        new = sorted(k for k in row if k not in self._columns)
        if new:  # a metric appeared (e.g. losses once learning starts): widen the file
            columns = self._columns + new
            _atomic_write_rows(path, columns, read_metrics(path))
            self._columns = columns
        values = [_cell(row.get(c)) for c in self._columns]
        with open(path, "a", newline="") as f:
            csv.writer(f).writerow(values)
        if self._tensorboard:
            if self._tb is None:
                self._tb = tensorboard_events.EventWriter(self.dir)
            values = {k: float(v) for k, v in row.items() if k != "env_steps" and _is_number(v)}
            self._tb.add_scalars(int(row["env_steps"]), values)

    # -- summary -----------------------------------------------------------------------------
    def write_summary(self, summary: Mapping[str, Any]) -> None:
        _atomic_write_json(self.dir / SUMMARY_FILE, dict(summary))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def summarize(
    *,
    algo: str,
    env_id: str,
    seed: int,
    env_steps: int,
    updates: int,
    wall_seconds: float,
    eval_curve: list[tuple[int, float]],
    final_eval_returns: list[float],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``summary.json`` record, the same for every algorithm."""
    returns = [r for _, r in eval_curve]
    return {
        "algo": algo,
        "env_id": env_id,
        "seed": seed,
        "env_steps": int(env_steps),
        "updates": int(updates),
        "wall_seconds": float(wall_seconds),
        "final_eval_return": (  # None: run.final_eval_episodes=0, no final evaluation
            float(sum(final_eval_returns) / len(final_eval_returns)) if final_eval_returns else None
        ),
        "best_eval_return": float(max(returns)) if returns else None,
        "eval_curve": [[int(s), float(r)] for s, r in eval_curve],
        "final_eval_returns": [float(r) for r in final_eval_returns],
        "versions": versions(),
        "device": device_description(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": dict(config),
    }


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def resume_command(run_dir: str | os.PathLike) -> str:
    """The command that continues the run in ``run_dir``."""
    return f"python -m dreamer resume {shlex.quote(str(run_dir))}"


def remove_run_files(run_dir: str | os.PathLike) -> list[str]:
    """Delete the files an earlier attempt left in ``run_dir`` (config, metrics, summary,
    TensorBoard events) before a run starts over there; returns their names."""
    run_dir = Path(run_dir)
    names = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE)
    paths = [run_dir / n for n in names] + sorted(run_dir.glob("events.out.tfevents.*"))
    removed = [p.name for p in paths if p.is_file()]
    for name in removed:
        (run_dir / name).unlink()
    return removed


def _atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def _atomic_write_rows(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    """Rewrite a CSV file through a temporary file and a rename (never half-written)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
