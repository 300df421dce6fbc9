"""What dreaming buys: the dream ratio against a compute-matched control, at a fixed real budget.

    make dream                                      # CPU-sized sweep (CartPole, 2 cores)
    python -m benchmarks.dreaming --full            # ratios 0,1,2,4,8 on both envs below
    python -m benchmarks.dreaming --envs minatar-breakout --ratios 0,1,4 --out results/dream_minatar
    python -m benchmarks.dreaming --ratios 0,4 --seeds 0-4 --steps 2000 --out results/dream
    python -m benchmarks.dreaming --report-only --out results/dream
    python -m benchmarks.dreaming --frontier    # each imagination knob alone (benchmarks.frontier)

Envs (``--envs``): ``cartpole``, gymnax CartPole-v1 with the ``cartpole`` preset at 2,000 real
steps (threshold 475; 10 seeds in ``--full``), and ``minatar-breakout``, MinAtar Breakout set
up as the ``minatar_mlp`` suite sets it up (the ``default`` preset on the flattened frames,
20,000 real steps, evaluated every 2,000; 5 seeds), so that its ratio 0 is that suite's run.
``--steps`` and ``--seeds`` replace an env's own.

Variants, each a ``train --seeds`` group (seeds vmapped in one process on a JAX-native env):

- ``dream r``: ``dream.ratio=r`` (``r = 0`` is the agent without dreams);
- ``control r``: no dreams, ``loop.replay_ratio`` multiplied by
  ``(gradient + dreaming) / gradient`` model evaluations per update
  (``dreamer.agents.efficientzero.compute``), so the extra compute of ``dream r`` goes into
  more gradient steps on real data instead. A gain counts as dreaming only if it beats this
  control.

Per variant the report gives the compute spent (model evaluations, mean over seeds), the
final greedy return with a 95% bootstrap interval over seeds, the seeds that reach the
threshold and stay there until the end of the run, and the median real steps to stay at the
threshold (a seed that never does counts as the budget's end, +inf), with a 95% bootstrap
interval. Figures: real steps to threshold against compute (``steps_vs_compute.png``), and the
return over the plane of real steps and compute, from every evaluation of every run
(``contours.png``). Where at least four variants reach the threshold, the frontier
``D(s) = D_min + (beta / s)^alpha`` of real steps ``D`` against compute per real step ``s``
is fitted (scipy's ``curve_fit``) and reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import runs
from benchmarks.curves import stays_above_from
from benchmarks.machine import describe_machine, format_machine
from benchmarks.runs import eval_curve, read_metrics
from benchmarks.stats import BETTER, bootstrap, bootstrap_mean, compare
from benchmarks.suites import MINATAR_BUDGET, MINATAR_EVALUATION
from dreamer.loops.groups import seed_folder
from dreamer.shell.runlog import SUMMARY_FILE


@dataclasses.dataclass(frozen=True)
class DreamEnv:
    """An env of the sweep with the setup its table is measured in."""

    env_id: str
    preset: str
    threshold: float | None
    """Return that counts as solved (None: final returns only)."""
    steps: int
    """Real env steps per run (``--steps`` replaces it)."""
    seeds: str
    """Seeds of the ``--full`` table (``--seeds`` replaces them)."""
    overrides: tuple[str, ...] = ()
    """Settings of the env's setup, before the variant's own."""


ENVS = {
    "cartpole": DreamEnv("gymnax:CartPole-v1", "cartpole", 475.0, steps=2000, seeds="0-9"),
    "minatar-breakout": DreamEnv(
        "gymnax:Breakout-MinAtar",
        "default",
        None,
        steps=MINATAR_BUDGET,
        seeds="0-4",
        overrides=MINATAR_EVALUATION,
    ),
}
"""The envs by key. MinAtar Breakout is set up as in the ``minatar_mlp`` suite (the
``default`` preset on the flattened frames, its MLP trunk; the suite's budget and
evaluation), so its ratio 0 is that suite's run. The flattened frames, not the images of the
``minatar`` suite: the dreaming question does not hinge on the trunk, and the conv trunk
doubles the cost (8,666 s against 4,286 s for Breakout's 5 seeds at ratio 0, README), which
the four dreaming and control variants, up to twice ratio 0's compute each, multiply."""
CPU_SIZED = {"ratios": (0.0, 4.0), "seeds": "0-2"}
FULL = {"ratios": (0.0, 1.0, 2.0, 4.0, 8.0), "seeds": None}
"""Sweep sizes (``make dream``, ``--full``); seeds None: each env's own."""


def variants(
    cfg: Any,
    ratios: Sequence[float],
    controls: bool,
    weights: Sequence[float] = (),
    value_weights: Sequence[float] = (),
) -> list[dict[str, Any]]:
    """The variants of the sweep: name and overrides, with their compute per update.

    Each ratio > 0 runs at every dream policy weight of ``weights`` and every dream value
    weight of ``value_weights`` (default: the preset's own); a name shows the weights only
    when more than one is swept (``dream 4 w1 v0.5``). One control per ratio: the weights
    change no compute."""
    from dreamer.agents.efficientzero import compute
    from dreamer.core.configtree import apply_overrides

    weights = list(weights) or [cfg.dream.policy_weight]
    value_weights = list(value_weights) or [cfg.dream.value_weight]
    out = []
    for r in ratios:
        dream = apply_overrides(cfg, [f"dream.ratio={r}"])
        pairs = [(w, v) for w in weights for v in value_weights] if r > 0 else [(None, None)]
        for w, v in pairs:
            name, overrides = f"dream {r:g}", [f"dream.ratio={r}"]
            if w is not None:
                overrides += [f"dream.policy_weight={w}", f"dream.value_weight={v}"]
                name += f" w{w:g}" if len(weights) > 1 else ""
                name += f" v{v:g}" if len(value_weights) > 1 else ""
            out.append({"name": name, "ratio": r, "overrides": overrides})
        spent = compute.spent(dream, dream.run.env_steps, dream.total_updates, 1)
        if controls and r > 0:  # the same gradient + dreaming compute over the whole run
            factor = (spent["gradient"] + spent["dreaming"]) / spent["gradient"]
            replay_ratio = cfg.loop.replay_ratio * factor
            out.append(
                {
                    "name": f"control {r:g}",
                    "ratio": 0.0,
                    "matches": r,
                    "overrides": [
                        f"loop.replay_ratio={replay_ratio:.6g}",
                        f"loop.extra_updates={round(cfg.loop.extra_updates * factor)}",
                    ],
                }
            )
    return out


def kept_fraction(folder: Path) -> float | None:
    """Mean ``charts/dream_kept`` over the seeds' rows where the updates dreamed (the share
    of imagined states the disagreement gate kept); None for a run without dreams."""
    kept = []
    for run in sorted(folder.glob("seed*")):
        for r in read_metrics(run):
            if float(r.get("charts/dream_active") or 0) > 0 and r.get("charts/dream_kept"):
                kept.append(float(r["charts/dream_kept"]) / float(r["charts/dream_active"]))
    return float(np.mean(kept)) if kept else None


def train_group(
    folder: Path, env_key: str, steps: int, overrides: Sequence[str], seeds: Sequence[int]
) -> float:
    """The seeds of ``env_key``'s preset with ``overrides`` brought to the finished state in
    ``folder`` through the CLI (``train --seeds``: one process for the group, its seeds over
    the CPU's devices where they split; an interrupted group is resumed, a finished one
    kept), output appended to ``folder``'s ``.log`` beside it. Returns the group's wall-clock
    over all its attempts (from the seeds' summaries); stops the sweep if it did not finish."""
    env = ENVS[env_key]

    def train(todo: Sequence[int]) -> list[str]:
        return runs.train_args(
            algo="efficientzero",
            preset=env.preset,
            env_id=env.env_id,
            seed=list(todo),
            steps=steps,
            out=folder,
            overrides=[*env.overrides, *overrides],
        )

    log = folder.parent / f"{folder.name}.log"
    outcome = runs.ensure_group(folder, seeds, train, log=log)
    if not outcome.finished:
        raise SystemExit(
            f"{folder}: the group did not finish (exit code {outcome.returncode}); its output "
            f"is in {log}. Run the same command again to continue it."
        )
    summaries = [runs.read_json(seed_folder(folder, k) / SUMMARY_FILE) for k in seeds]
    return max(float(s["wall_seconds"]) for s in summaries)


def run_variant(
    env_key: str, variant: dict, args: argparse.Namespace, steps: int, seeds: list[int]
) -> None:
    env = ENVS[env_key]
    folder = Path(args.out) / env_key / variant["name"].replace(" ", "_")
    if (folder / "variant.json").exists():
        print(f"{folder} done, kept")
        return
    overrides = [*args.set, *variant["overrides"]]
    wall = train_group(folder, env_key, steps, overrides, seeds)
    record = {**variant, "env": env.env_id, "preset": env.preset, "steps": steps, "seeds": seeds}
    record["env_overrides"] = list(env.overrides)
    record.update(wall_seconds=wall, machine=describe_machine())
    (folder / "variant.json").write_text(json.dumps(record, indent=2) + "\n")


def seed_results(folder: Path, threshold: float | None) -> list[dict[str, Any]]:
    results = []
    for run in sorted(folder.glob("seed*")):
        summary = json.loads((run / "summary.json").read_text())
        steps, returns = eval_curve(run)
        stay = stays_above_from(steps, returns, threshold) if threshold is not None else None
        rows = read_metrics(run)
        points = [
            (float(r["env_steps"]), float(r["compute/total"]), float(r["eval/return_mean"]))
            for r in rows
            if r.get("eval/return_mean") and r.get("compute/total")
        ]
        results.append(
            {
                "final": summary["final_eval_return"],
                "compute": summary["compute"]["total"],
                "stay": math.inf if stay is None else stay,
                "points": points,
                "env_steps": summary["env_steps"],
            }
        )
    return results


def median_interval(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple:
    """Median of per-seed real steps (``inf``: the seed never stays) with its 95% bootstrap
    interval; a median or bound that falls on or between never-staying seeds is ``inf``."""
    values = np.asarray(values, float).reshape(-1)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.inf, math.inf, math.inf
    never = 2.0 * float(finite.max()) + 1.0  # any median above the largest finite one is never
    stand_in = np.where(np.isfinite(values), values, never)
    point, low, high = bootstrap(
        stand_in.reshape(-1, 1), lambda s: np.median(s, axis=0), reps=reps, seed=seed
    )
    return tuple(  # type: ignore[return-value]
        math.inf if float(x[0]) > finite.max() else float(x[0]) for x in (point, low, high)
    )


def fit_frontier(points: list[tuple[float, float]]) -> dict[str, float] | None:
    """``D(s) = D_min + (beta / s)^alpha`` through (compute per real step s, real steps D)."""
    points = [(s, d) for s, d in points if math.isfinite(d)]
    if len(points) < 4:
        return None
    try:
        from scipy.optimize import curve_fit
    except ImportError:  # scipy is a dev dependency
        return None
    s, d = np.array(points).T

    def frontier(s, d_min, beta, alpha):
        return d_min + (beta / s) ** alpha

    try:
        p0 = (0.9 * d.min(), (d.max() - d.min() + 1.0) * s.min(), 1.0)
        bounds = ([0.0, 1e-12, 0.05], [np.inf, np.inf, 5.0])
        p, _ = curve_fit(frontier, s, d, p0=p0, bounds=bounds, maxfev=20_000)
    except (RuntimeError, ValueError):
        return None
    return {"d_min": float(p[0]), "beta": float(p[1]), "alpha": float(p[2])}


def report(out: Path) -> str:
    from matplotlib.figure import Figure

    from benchmarks.plots import COLORS, _save

    lines = ["# What dreaming buys", ""]
    for env_key, spec in ENVS.items():
        env, preset, threshold = spec.env_id, spec.preset, spec.threshold
        folders = sorted(p.parent for p in (out / env_key).glob("*/variant.json"))
        if not folders:
            continue
        records = [json.loads((f / "variant.json").read_text()) for f in folders]
        order = sorted(
            range(len(records)),
            key=lambda i: (
                records[i].get("matches", records[i]["ratio"]),
                "control" in records[i]["name"],
            ),
        )
        lines += [f"## {env} (preset {preset}, {records[0]['steps']} real steps)", ""]
        lines.append(f"{format_machine(records[0]['machine'])}; wall-clock per variant below.")
        lines += [
            "",
            "| variant | compute (model evals) | final return [95% CI] | seeds staying ≥ threshold "
            "| median real steps to stay [95% CI] | imagined states kept | wall s |",
            "|---|---:|---|---:|---|---:|---:|",
        ]
        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        contour, frontier_points, finals_by_variant = [], [], {}
        for i in order:
            rec, folder = records[i], folders[i]
            res = seed_results(folder, threshold)
            finals = np.array([r["final"] for r in res], float)
            comp = float(np.mean([r["compute"] for r in res]))
            ci = bootstrap_mean(finals)
            finals_by_variant[rec["name"]] = finals
            if threshold is None:
                staying, med = "-", "-"
            else:
                stays = np.array([r["stay"] for r in res], float)
                staying = f"{int(np.isfinite(stays).sum())}/{len(res)}"
                m, lo, hi = median_interval(stays)
                fmt = lambda v: "never" if not math.isfinite(v) else f"{v:.0f}"  # noqa: E731
                med = f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"
                per_step = comp / max(res[0]["env_steps"], 1)
                frontier_points.append((per_step, m))
                color = COLORS[1] if "control" in rec["name"] else COLORS[0]
                y = m if math.isfinite(m) else rec["steps"] * 1.05
                ax.scatter([comp], [y], color=color, marker="o" if math.isfinite(m) else "x")
                ax.annotate(rec["name"], (comp, y), fontsize=7)
            for r in res:
                contour += r["points"]
            kept = kept_fraction(folder)
            kept_text = "-" if kept is None else f"{100 * kept:.0f}%"
            lines.append(
                f"| {rec['name']} | {comp:.3g} | {ci.format(1)} | {staying} | {med} | "
                f"{kept_text} | {rec['wall_seconds']:.0f} |"
            )
        if threshold is not None:
            ax.set_xlabel("compute per run (model evaluations)")
            ax.set_ylabel(f"median real steps to stay ≥ {threshold:g} (x: never)")
            ax.set_title(f"{env}: dreams (blue) and compute-matched controls (orange)")
            ax.grid(alpha=0.3)
            _save(fig, out / f"{env_key}_steps_vs_compute.png")
            fit = fit_frontier(frontier_points)
            lines += [
                "",
                "Frontier fit D(s) = D_min + (β/s)^α, s = compute per real step: "
                + (
                    f"D_min = {fit['d_min']:.0f}, β = {fit['beta']:.3g}, α = {fit['alpha']:.2f}."
                    if fit
                    else "not enough variants reach the threshold for a fit."
                ),
            ]
        if len(contour) >= 6:
            steps, comp_, ret = np.array(contour).T
            fig = Figure(figsize=(6, 4))
            ax = fig.add_subplot()
            try:
                filled = ax.tricontourf(steps, comp_, ret, levels=10, cmap="viridis")
                fig.colorbar(filled, ax=ax, label="greedy return")
            except (ValueError, RuntimeError):  # degenerate triangulation
                ax.scatter(steps, comp_, c=ret, cmap="viridis")
            ax.set_xlabel("real env steps")
            ax.set_ylabel("compute spent (model evaluations)")
            ax.set_title(f"{env}: return over real steps and compute")
            _save(fig, out / f"{env_key}_contours.png")
        lines.append("")
        lines.append(verdict(finals_by_variant))
        lines.append("")
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def verdict(finals: dict[str, np.ndarray]) -> str:
    """Plain words: does the best dream ratio beat both ratio 0 and its control? ``finals``:
    each variant's final returns per seed, by name; the verdicts are ``stats.compare``'s."""
    dreams = [n for n in finals if n.startswith("dream ") and n != "dream 0"]
    if not dreams or "dream 0" not in finals:
        return "Verdict: the sweep needs ratio 0 and at least one ratio > 0."
    best = max(dreams, key=lambda n: float(np.mean(finals[n])))
    control = "control " + best.split(" ")[1]
    others = ["dream 0"] + ([control] if control in finals else [])
    comparisons = {o: compare(finals[best], finals[o]) for o in others}
    words = "; ".join(c.against(o) for o, c in comparisons.items())
    details = "; ".join(f"against {o}: {c.format(1)}" for o, c in comparisons.items())
    won = all(c.verdict == BETTER for c in comparisons.values())
    head = "dreaming wins" if won else "no win for dreaming"
    return (
        f"Verdict: {head}. The best ratio, {best}, is {words} (mean final returns, 95% "
        f"bootstrap interval of the difference; {details})."
    )


def main(argv: Sequence[str] | None = None) -> int:
    from dreamer.cli import parse_seeds

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dreaming", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--full", action="store_true", help="ratios 0,1,2,4,8 on every env")
    parser.add_argument("--ratios", default=None, help="dream ratios, e.g. 0,1,4")
    parser.add_argument("--seeds", default=None)
    parser.add_argument("--steps", type=int, default=None, help="real env steps per run")
    parser.add_argument("--envs", default=None, help=f"subset of {','.join(ENVS)}")
    parser.add_argument("--no-controls", action="store_true")
    parser.add_argument("--weights", default=None, help="dream policy weights, e.g. 0.1,1")
    parser.add_argument("--value-weights", default=None, help="dream value weights, e.g. 0,1")
    parser.add_argument("--set", action="append", default=[], metavar="K=V")
    parser.add_argument("--out", default="results/dream")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--frontier",
        action="store_true",
        help="sweep each knob that spends imagination alone (benchmarks/frontier.py); "
        "default 10 seeds, 10,000 steps, out results/frontier",
    )
    parser.add_argument("--knobs", default=None, help="--frontier: a subset of the knobs")
    args = parser.parse_args(argv)
    if args.frontier:
        from benchmarks import frontier

        knobs = args.knobs.split(",") if args.knobs else list(frontier.KNOBS)
        unknown = sorted(set(knobs) - set(frontier.KNOBS))
        if unknown:
            parser.error(f"unknown knobs {unknown}; choose from {list(frontier.KNOBS)}")
        out = Path("results/frontier" if args.out == "results/dream" else args.out)
        text = frontier.run(
            "cartpole",
            knobs,
            list(parse_seeds(args.seeds or "0-9")),
            args.steps or frontier.STEPS,
            out,
            args.set,
            args.report_only,
        )
        print(text)
        return 0
    size = FULL if args.full else CPU_SIZED
    ratios = [float(r) for r in args.ratios.split(",")] if args.ratios else list(size["ratios"])
    envs = args.envs.split(",") if args.envs else (list(ENVS) if args.full else ["cartpole"])
    unknown = sorted(set(envs) - set(ENVS))
    if unknown:
        parser.error(f"unknown envs {unknown}; choose from {list(ENVS)}")
    out = Path(args.out)
    if not args.report_only:
        from dreamer.core.configtree import apply_overrides
        from experiments import presets

        for env_key in envs:
            env = ENVS[env_key]
            seeds = list(parse_seeds(args.seeds or size["seeds"] or env.seeds))
            steps = args.steps or env.steps
            base = apply_overrides(
                presets.get("efficientzero", env.preset),
                [f"env.id={env.env_id}", f"run.env_steps={steps}", *env.overrides, *args.set],
            )
            floats = lambda text: [float(x) for x in text.split(",")] if text else []  # noqa: E731
            for variant in variants(
                base,
                ratios,
                controls=not args.no_controls,
                weights=floats(args.weights),
                value_weights=floats(args.value_weights),
            ):
                run_variant(env_key, variant, args, steps, seeds)
    print(report(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(runs.benchmark_main(main))
