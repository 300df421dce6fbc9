"""PNG figures of the benchmark reports.

Uses matplotlib's object API (``Figure`` + the Agg canvas), so no display and no global
backend state are involved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from benchmarks.curves import Curve, align_curves

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def per_game_bars(
    games: Sequence[str],
    series: Mapping[str, np.ndarray],
    path: Path,
    *,
    seed_points: Sequence[np.ndarray] | None = None,
    xlabel: str = "human-normalised score",
) -> Path:
    """Horizontal bars per game, one bar per series (``[G]`` each; NaN draws nothing).

    ``seed_points[g]`` (per-seed values of the first series) are drawn as dots on its bar.
    """
    n, k = len(games), len(series)
    fig = Figure(figsize=(8, 0.35 * n * max(k, 2) / 2 + 1.5))
    ax = fig.add_subplot()
    height = 0.8 / k
    y = np.arange(n)[::-1].astype(float)
    for j, (label, values) in enumerate(series.items()):
        offset = (k - 1) / 2 * height - j * height
        ax.barh(y + offset, np.asarray(values, float), height, label=label, color=COLORS[j])
        if j == 0 and seed_points is not None:
            for g, points in enumerate(seed_points):
                ax.plot(points, np.full(len(points), y[g] + offset), "k.", markersize=3)
    ax.axvline(1.0, color="gray", linestyle="--", linewidth=0.8)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yticks(y, games)
    ax.set_xlabel(xlabel + " (symlog; dashed line = human)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=k, frameon=False)
    return _save(fig, path)


def interval_estimates(
    points: Mapping[str, Sequence[float]],
    intervals: Mapping[str, Sequence[Sequence[float]]],
    metric_names: Sequence[str],
    path: Path,
    *,
    xlabel: str = "human-normalised score",
) -> Path:
    """rliable's panel per metric: each method's interval as a bar, its point as a tick.

    ``points[m]: [K]`` and ``intervals[m]: [2, K]`` (low, high) for the K ``metric_names``;
    the first method is drawn on top.
    """
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    methods = list(points)[::-1]  # rliable draws the first one at the bottom
    colors = {m: "gray" for m in methods} | {methods[-1]: COLORS[0]}
    fig, _ = plot_utils.plot_interval_estimates(
        {m: np.asarray(points[m], float) for m in methods},
        {m: np.asarray(intervals[m], float) for m in methods},
        list(metric_names),
        algorithms=methods,
        colors=colors,
        xlabel=xlabel,
        subfigure_width=3.6,
        row_height=0.5,
    )
    try:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def performance_profiles(
    profiles: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    taus: np.ndarray,
    path: Path,
    *,
    xlabel: str = r"human-normalised score ($\tau$)",
) -> Path:
    """rliable's performance profiles: per method, the fraction of runs scoring above each
    ``tau`` (``profiles[m] = (profile, low, high)``, each ``[T]``) with its shaded interval.
    The first method is drawn in black, on top."""
    from rliable import plot_utils

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    palette = [c for c in matplotlib.colormaps["tab10"].colors if c != (0.5, 0.5, 0.5)]
    colors = {
        m: "black" if i == 0 else palette[(i - 1) % len(palette)] for i, m in enumerate(profiles)
    }
    order = [*list(profiles)[1:], next(iter(profiles))]  # the first one drawn on top
    plot_utils.plot_performance_profiles(
        {m: profiles[m][0] for m in order},
        np.asarray(taus, float),
        performance_profile_cis={m: np.stack([lo, hi]) for m, (_, lo, hi) in profiles.items()},
        ax=ax,
        colors=colors,
        xlabel=xlabel,
        ylabel=r"fraction of runs with score $> \tau$",
        labelsize="large",
        ticklabelsize="medium",
    )
    ax.axvline(1.0, color="gray", linestyle="--", linewidth=0.8)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[-1:] + handles[:-1], labels[-1:] + labels[:-1], frameon=False)
    return _save(fig, path)


def curve_grid(
    panels: Mapping[str, Sequence[Curve]],
    path: Path,
    *,
    reference: Mapping[str, tuple[str, float]] | None = None,
    ylabel: str = "eval return",
) -> Path:
    """Small multiples: per panel the seeds' curves (thin) and their aligned mean (thick).

    ``reference[title] = (label, value)`` adds a dashed horizontal line to that panel.
    """
    cols = min(len(panels), 6)
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(3.0 * cols, 2.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (title, curves) in zip(axes, panels.items(), strict=False):
        for steps, returns in curves:
            ax.plot(steps, returns, color=COLORS[0], alpha=0.35, linewidth=0.8)
        grid, values = align_curves(curves)
        if len(curves) > 1 and grid.size:
            ax.plot(grid, values.mean(axis=0), color=COLORS[0], linewidth=2, label="mean")
        if reference and title in reference:
            label, value = reference[title]
            ax.axhline(value, color=COLORS[1], linestyle="--", linewidth=1, label=label)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    fig.supxlabel("env steps")
    fig.supylabel(ylabel)
    return _save(fig, path)


def band_curves(
    series: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    path: Path,
    *,
    title: str,
    threshold: float | None = None,
    ylabel: str = "eval return (mean, 95% CI over seeds)",
) -> Path:
    """One line per series ``(grid, mean, low, high)`` with its interval shaded."""
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    for j, (label, (grid, mean, low, high)) in enumerate(series.items()):
        ax.plot(grid, mean, color=COLORS[j % len(COLORS)], label=label, linewidth=1.8, marker=".")
        ax.fill_between(grid, low, high, color=COLORS[j % len(COLORS)], alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label="threshold")
    ax.set_title(title)
    ax.set_xlabel("real env steps")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
