"""The frontier of real steps against imagination compute: which knob buys the most per unit.

    python -m benchmarks.dreaming --frontier                       # CartPole, 10 seeds
    python -m benchmarks.dreaming --frontier --seeds 0-2 --knobs simulations,replay_ratio

Each knob that spends compute inside the model is swept alone from the ``cartpole`` preset
(every other setting as the preset has it):

- ``simulations``: acting search simulations (``search.num_simulations``);
- ``reanalysis``: fraction of each batch whose policy targets are searched again
  (``replay.reanalyze_fraction``);
- ``replay_ratio``: updates per real step (``loop.replay_ratio``);
- ``dream_ratio``: imagined target states per real sampled state (``dream.ratio``);
- ``value_target``: n-step, search or EfficientZero-V2's mixed value targets
  (``replay.value_target``; ``mixed`` with EZ-V2's thresholds as fractions of the run,
  ``mixed_thresholds``).

Every point is a ``train --seeds`` group (seeds vmapped in one process). For each it records
the real steps after which the greedy return stays at or above the threshold (median over
seeds with a 95% bootstrap interval; a seed that never stays counts as never) and the compute
per real step in model evaluations (``dreamer.agents.efficientzero.compute``). The report plots
real steps against compute, one curve per knob; fits ``D(c) = D_min + (beta / c)^alpha`` per
knob where at least four of its points reach the threshold; and names the cheapest knob for
the target of 30% fewer real steps than the preset: from the fits, the knob whose fitted
compute per step for that target is smallest, and from the measured points, the cheapest one
that reaches it. The point with the fewest real steps then gets a compute-matched control: the
preset with its replay ratio raised until a run costs what that point costs (the same compute
spent on gradient steps on real data), and the two are compared.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.dreaming import ENVS, fit_frontier, median_interval, seed_results, train_group
from benchmarks.machine import describe_machine, format_machine

KNOBS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "simulations": ("search.num_simulations", (8, 32, 64)),
    "reanalysis": ("replay.reanalyze_fraction", (0.0, 0.25, 1.0)),
    "replay_ratio": ("loop.replay_ratio", (0.5, 1.0, 2.0, 4.0)),
    "dream_ratio": ("dream.ratio", (0.0, 1.0, 4.0)),
    "value_target": ("replay.value_target", ("nstep", "search", "mixed")),
}
"""Knob -> (setting, values swept). Three values a knob (the preset's own among them), four
for the replay ratio, whose points make the one curve with enough of them for a fit: the
baseline and its 11 points cost 16.4 times the preset's run in model evaluations
(``run_compute``), before the control."""

STEPS = 10_000
"""Real steps of every point. At 5,000, 3 of 10 seeds of the ``cartpole`` preset stayed at
475 from some evaluation on (and only those 3 reached it), so the preset's median was
"never" and no point could be 30% faster than it."""

MIXED_START = 3e4 / 1e5
"""EfficientZero-V2's Atari run makes its first mixed update 30,000 into 100,000 training
steps (``start_use_mix_training_steps``, ``training_steps`` in ``ez/config/exp/atari.yaml``)."""
MIXED_FRESH = 5e3 / 1e5
"""... and keeps the n-step target for the newest 5,000 of its 100,000 transitions
(``mixed_value_threshold``, ``total_transitions``)."""


def mixed_thresholds(base: Any) -> tuple[str, ...]:
    """``replay.value_target=mixed`` as EfficientZero-V2 sets it, scaled to ``base``'s run:
    its thresholds are fractions of the Atari run, and at their Atari values (30,000 updates)
    a CartPole run of under 10,000 updates would never leave the n-step target."""
    start = round(MIXED_START * base.total_updates)
    fresh = round(MIXED_FRESH * base.run.env_steps)
    return (f"replay.mixed_start_update={start}", f"replay.mixed_fresh_transitions={fresh}")


SPAN = 1.5
"""A knob is fitted only when its points' compute per real step spans this factor or more
(acting simulations and the reanalysis fraction move it by a few per cent on CartPole)."""

GOAL = 0.3
"""The issue's goal: 30% fewer real steps to the threshold than the preset."""


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of the sweep: a knob at one value (``baseline``: the preset itself)."""

    name: str
    knob: str
    value: Any
    overrides: tuple[str, ...]


def setting_value(cfg: Any, path: str) -> Any:
    section, field = path.split(".")
    return getattr(getattr(cfg, section), field)


def plan(base: Any, knobs: Sequence[str]) -> list[Point]:
    """The baseline, then each knob's values other than the baseline's own."""
    points = [Point("baseline", "baseline", None, ())]
    for knob in knobs:
        path, values = KNOBS[knob]
        own = setting_value(base, path)
        for value in values:
            if value == own:
                continue
            text = value if isinstance(value, str) else f"{value:g}"
            extra = mixed_thresholds(base) if (knob, value) == ("value_target", "mixed") else ()
            points.append(Point(f"{knob}={text}", knob, value, (f"{path}={text}", *extra)))
    return points


def run_compute(cfg: Any) -> float:
    """Model evaluations of a whole run of ``cfg`` (its budget, its updates)."""
    from dreamer.agents.efficientzero import compute

    chunk_slots = max(1, cfg.replay.refresh_chunk // cfg.env.num_envs)
    return float(compute.spent(cfg, cfg.run.env_steps, cfg.total_updates, chunk_slots)["total"])


def matched_control(base: Any, target: float) -> tuple[str, ...]:
    """Overrides giving ``base`` a replay ratio whose run costs ``target`` model evaluations
    (bisection: the cost grows with the replay ratio); the preset's own ratio if it already
    costs as much."""
    from dreamer.core.configtree import apply_overrides

    cost = lambda r: run_compute(apply_overrides(base, [f"loop.replay_ratio={r:.6g}"]))  # noqa: E731
    low, high = base.loop.replay_ratio, base.loop.replay_ratio
    if cost(low) >= target:
        return ()
    while cost(high) < target and high < 1024:
        high *= 2
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if cost(mid) < target else (low, mid)
    return (f"loop.replay_ratio={high:.6g}",)


def base_config(env_key: str, steps: int, overrides: Sequence[str]) -> Any:
    from dreamer.core.configtree import apply_overrides
    from experiments import presets

    env = ENVS[env_key]
    cfg = presets.get("efficientzero", env.preset)
    settings = [f"env.id={env.env_id}", f"run.env_steps={steps}", *env.overrides, *overrides]
    return apply_overrides(cfg, settings)


def run_point(
    out: Path,
    base: Any,
    point: Point,
    seeds: Sequence[int],
    *,
    env_key: str,
    overrides: Sequence[str],
) -> None:
    """Train ``point``'s seeds in ``out/<name>`` unless done (``point.json`` marks it):
    ``base`` is ``env_key``'s preset with ``overrides``, the point's own overrides come
    after them (``dreaming.train_group``: through the CLI, an interrupted group resumed)."""
    from dreamer.core.configtree import apply_overrides

    folder = out / point.name
    cfg = apply_overrides(base, list(point.overrides))
    if (folder / "point.json").exists():
        kept = json.loads((folder / "point.json").read_text())
        wanted = {"steps": cfg.run.env_steps, "seeds": list(seeds),
                  "overrides": list(point.overrides)}  # fmt: skip
        found = {k: kept.get(k) for k in wanted}
        if found != wanted:
            raise ValueError(
                f"{folder} holds a finished point of another sweep ({found}, this sweep wants "
                f"{wanted}); give this sweep its own --out, or move that folder away."
            )
        print(f"{folder} done, kept")
        return
    everything = [*overrides, *point.overrides]
    wall = train_group(folder, env_key, cfg.run.env_steps, everything, seeds)
    record = {
        **dataclasses.asdict(point),
        "settings": {knob: setting_value(cfg, path) for knob, (path, _) in KNOBS.items()},
        "seeds": list(seeds),
        "steps": cfg.run.env_steps,
        "compute_per_step": run_compute(cfg) / cfg.run.env_steps,
        "wall_seconds": wall,
        "machine": describe_machine(),
    }
    (folder / "point.json").write_text(json.dumps(record, indent=2, default=str) + "\n")


def measured(folder: Path, threshold: float) -> dict[str, Any]:
    """A finished point's figures: compute per real step (mean over seeds, measured), real
    steps to stay at the threshold (median, 95% interval), seeds that stay, final returns."""
    record = json.loads((folder / "point.json").read_text())
    res = seed_results(folder, threshold)
    stays = np.array([r["stay"] for r in res], float)
    median, low, high = median_interval(stays)
    return {
        **record,
        "per_step": float(np.mean([r["compute"] / max(r["env_steps"], 1) for r in res])),
        "median": median,
        "interval": (low, high),
        "staying": int(np.isfinite(stays).sum()),
        "finals": [r["final"] for r in res],
    }


def cheapest(
    points: Sequence[dict[str, Any]], fits: dict[str, dict[str, float]], target: float
) -> tuple[str | None, str | None]:
    """The knob whose fit reaches ``target`` real steps at the least compute per step, and the
    cheapest measured point that reaches it (names; None where nothing does)."""
    best_fit, best_c = None, math.inf
    for knob, fit in fits.items():
        if fit["d_min"] < target:
            c = fit["beta"] / (target - fit["d_min"]) ** (1.0 / fit["alpha"])
            if c < best_c:
                best_fit, best_c = knob, c
    reaching = [p for p in points if p["median"] <= target]
    best_point = min(reaching, key=lambda p: p["per_step"])["name"] if reaching else None
    return best_fit, best_point


def best_imagination(points: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The point with the fewest real steps to the threshold (then the least compute) among
    the knobs that spend imagination: not the baseline, not a control, not the replay ratio
    (a compute-matched control is itself a replay ratio). None if none reaches it."""
    mine = [p for p in points if p["knob"] not in ("baseline", "control", "replay_ratio")]
    mine = [p for p in mine if math.isfinite(p["median"])]
    return min(mine, key=lambda p: (p["median"], p["per_step"])) if mine else None


def steps_text(v: float) -> str:
    """Real steps as the report writes them: ``1,500``, or ``never``."""
    return "never" if not math.isfinite(v) else f"{v:,.0f}"


def row(knob: str, p: dict[str, Any]) -> str:
    low, high = p["interval"]
    preset = " (preset)" if p["name"] == "baseline" else ""
    return (
        f"| {knob} | {p['value']}{preset} | {p['per_step']:,.0f} | {steps_text(p['median'])} "
        f"[{steps_text(low)}, {steps_text(high)}] | {p['staying']}/{len(p['seeds'])} | "
        f"{np.mean(p['finals']):.1f} | {p['wall_seconds']:.0f} |"
    )


def goal_target(base: dict[str, Any]) -> tuple[float, str]:
    """The median real steps a point must stay by to meet the goal, and why: 30% fewer than
    the preset's median, or 30% under the budget where the preset's median lies beyond it."""
    if math.isfinite(base["median"]):
        return (1.0 - GOAL) * base["median"], f"30% fewer than the preset's {base['median']:,.0f}"
    target = (1.0 - GOAL) * base["steps"]
    return target, (
        f"the preset's median seed never stays within its {base['steps']:,} steps, so a "
        f"median by {target:,.0f} is 30% fewer or better"
    )


def figure(
    base: dict[str, Any],
    curves: dict[str, list[dict[str, Any]]],
    fits: dict[str, dict[str, float]],
    controls: Sequence[dict[str, Any]],
    target: float,
    threshold: float,
    title: str,
) -> Any:
    """Real steps against compute per real step: a curve per knob (the preset's point on
    each), its fit, the compute-matched controls, the goal's target; "never" above the
    budget."""
    from matplotlib import ticker
    from matplotlib.figure import Figure

    from benchmarks.plots import COLORS

    budget = base["steps"]
    never = budget * 1.05  # where a median that never stays is drawn

    def errorbar(ax: Any, ps: Sequence[dict[str, Any]], **style: Any) -> None:
        ys, lows, highs = (
            np.minimum(vals, never)
            for vals in zip(*[(p["median"], *p["interval"]) for p in ps], strict=True)
        )
        xs = [p["per_step"] for p in ps]
        ax.errorbar(xs, ys, yerr=[ys - lows, highs - ys], capsize=2, lw=1, **style)

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for knob, curve in curves.items():
        color = COLORS[list(KNOBS).index(knob) % len(COLORS)]
        errorbar(ax, curve, fmt="-o", color=color, label=knob, markersize=4)
        if knob in fits:
            fit, xs = fits[knob], [p["per_step"] for p in curve]
            grid = np.geomspace(min(xs), max(xs), 50)
            ax.plot(grid, fit["d_min"] + (fit["beta"] / grid) ** fit["alpha"], ":", color=color)
    for p in controls:
        errorbar(ax, [p], fmt="x", color="dimgrey", markersize=7,
                 label=f"compute-matched control of {p['name'][len('control('):-1]}")  # fmt: skip
    ax.plot([base["per_step"]], [min(base["median"], never)], "k*", markersize=10,
            label="the preset", zorder=5)  # fmt: skip
    goal = (f"{GOAL:.0%} fewer than the preset" if math.isfinite(base["median"])
            else f"{GOAL:.0%} under the budget: the preset never stays")  # fmt: skip
    ax.axhline(target, color="black", lw=0.8, ls="--", label=f"target {target:,.0f} ({goal})")
    ax.axhline(budget, color="grey", lw=0.5)
    ax.set_xscale("log")
    plain = ticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
    xs = [p["per_step"] for c in [*curves.values(), controls, [base]] for p in c]
    ax.xaxis.set_major_formatter(plain)  # a narrow span has only minor ticks: label those too
    ax.xaxis.set_minor_formatter(plain if max(xs) < 3 * min(xs) else ticker.NullFormatter())
    bottom = ax.get_ylim()[0]
    ax.set_ylim(bottom, never + 0.04 * (never - bottom))
    ticks = [t for t in ax.get_yticks() if bottom <= t <= budget]
    ax.set_yticks([*ticks, never], [*(f"{t:,.0f}" for t in ticks), "never"])
    ax.set_xlabel("compute per real step (model evaluations, log scale)")
    ax.set_ylabel(f"median real steps to stay ≥ {threshold:g}")
    ax.set_title(f"{title}\nbars: 95% CI of the median over seeds; dotted: fits "
                 "D(c) = D_min + (β/c)^α", fontsize=9)  # fmt: skip
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def report(out: Path, env_key: str) -> str:
    """The frontier report of the points under ``out`` (``report.md``, ``frontier.png``)."""
    from benchmarks.plots import _save
    from benchmarks.stats import compare

    spec = ENVS[env_key]
    env, preset, threshold = spec.env_id, spec.preset, spec.threshold
    if threshold is None:
        return f"{env} has no threshold: no frontier.\n"
    folders = sorted(p.parent for p in out.glob("*/point.json"))
    points = {p["name"]: p for p in (measured(f, threshold) for f in folders)}
    if "baseline" not in points:
        return "The baseline has not finished yet: no frontier.\n"
    base = points["baseline"]
    lines = [
        f"# The frontier: real steps to {threshold:g} against compute per real step",
        "",
        f"{env}, preset `{preset}`, {base['steps']:,} real steps, seeds {base['seeds']}; "
        f"{format_machine(base['machine'])}.",
        "",
        "| knob | value | compute per real step | median real steps to stay [95% CI] | seeds "
        "staying | mean final return | wall s |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    target, why = goal_target(base)
    fits: dict[str, dict[str, float]] = {}
    flat: list[str] = []
    curves: dict[str, list[dict[str, Any]]] = {}
    for knob in KNOBS:
        mine = [p for p in points.values() if p["knob"] == knob]
        if not mine:
            continue
        own = {**base, "value": base["settings"][knob]}
        curve = curves[knob] = sorted([*mine, own], key=lambda p: p["per_step"])
        for p in curve:
            lines.append(row(knob, p))
        xs = [p["per_step"] for p in curve]
        if max(xs) < SPAN * min(xs):  # the points differ in real steps, hardly in compute
            flat.append(f"{knob} ({min(xs):,.0f} to {max(xs):,.0f})")
            continue
        fit = fit_frontier([(p["per_step"], p["median"]) for p in curve])
        if fit:
            fits[knob] = fit
    controls = [p for p in points.values() if p["knob"] == "control"]
    for p in controls:
        lines.append(row("control", {**p, "value": " ".join(p["overrides"])}))
    title = f"{env}, preset `{preset}`, {len(base['seeds'])} seeds a point"
    _save(figure(base, curves, fits, controls, target, threshold, title), out / "frontier.png")
    lines += ["", "![frontier](frontier.png)", ""]
    for knob, fit in fits.items():
        lines.append(
            f"- fit for {knob}: D(c) = {fit['d_min']:,.0f} + ({fit['beta']:.3g} / c)^"
            f"{fit['alpha']:.2f}"
        )
    if flat:
        lines.append(
            f"- no fit for {', '.join(flat)} model evaluations per real step: a knob whose "
            f"points span less than {SPAN:g}x in compute buys its real steps at about the same "
            "compute, so D(c) says nothing about it"
        )
    lines.append("")
    by_fit, by_point = cheapest(
        [p for p in points.values() if p["name"] != "baseline"], fits, target
    )
    lines.append(
        f"Target: {target:,.0f} real steps ({why}). "
        f"Cheapest knob by its fit: {by_fit or 'none reaches it'}; cheapest measured point "
        f"that reaches it: {by_point or 'none'}."
    )
    best = best_imagination(list(points.values()))
    control = points.get(f"control({best['name']})") if best else None
    if best is not None and control is not None:
        versus = compare(np.asarray(best["finals"]), np.asarray(control["finals"]))
        reached = best["median"] <= target and best["median"] < control["median"]
        lines.append(
            f"Fewest real steps apart from the replay ratio: {best['name']} "
            f"({steps_text(best['median'])}); its compute-matched control "
            f"({' '.join(control['overrides'])}) takes {steps_text(control['median'])}, and in "
            f"final return {best['name']} is {versus.against('its control')}. Goal (30% fewer "
            f"real steps than the preset, and fewer than the control): "
            f"{'met' if reached else 'not met'}."
        )
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def run(env_key: str, knobs: Sequence[str], seeds: Sequence[int], steps: int, out: Path,
        overrides: Sequence[str], report_only: bool) -> str:  # fmt: skip
    """The sweep of ``knobs`` on ``env_key``, then the control of its best point, then the
    report (finished points are kept, interrupted groups continue from their folders)."""
    base = base_config(env_key, steps, overrides)
    if not report_only:
        for point in plan(base, knobs):
            run_point(out, base, point, seeds, env_key=env_key, overrides=overrides)
        threshold = ENVS[env_key].threshold
        best = best_imagination([measured(p.parent, threshold) for p in out.glob("*/point.json")])
        if best is not None:
            total = best["per_step"] * steps
            control = Point(f"control({best['name']})", "control", None,
                            matched_control(base, total))  # fmt: skip
            run_point(out, base, control, seeds, env_key=env_key, overrides=overrides)
    return report(out, env_key)


__all__ = [
    "KNOBS",
    "Point",
    "best_imagination",
    "cheapest",
    "figure",
    "goal_target",
    "matched_control",
    "plan",
    "report",
    "run",
]
