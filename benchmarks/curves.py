"""Learning curves: alignment on a common step grid and threshold crossing (pure functions).

A curve is ``(steps [T], returns [T])``: mean evaluation return at each evaluation point,
indexed by real environment steps, with steps increasing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Curve = tuple[np.ndarray, np.ndarray]
"""``(env_steps [T], mean_return [T])``, steps increasing."""


def align_curves(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """Puts curves (one per seed) on a common grid by linear interpolation.

    The grid is every evaluation step of any curve inside the range all curves cover
    (from the latest first point to the earliest last point), so nothing is extrapolated.
    Curves evaluated at the same steps come back unchanged.

    Returns:
      ``(grid [T], values [S, T])``; T is 0 when the curves share no range.
    """
    curves = [(np.asarray(s, np.float64), np.asarray(r, np.float64)) for s, r in curves]
    curves = [(s, r) for s, r in curves if s.size]
    if not curves:
        return np.zeros(0), np.zeros((0, 0))
    start = max(s[0] for s, _ in curves)
    stop = min(s[-1] for s, _ in curves)
    grid = np.unique(np.concatenate([s for s, _ in curves]))
    grid = grid[(grid >= start) & (grid <= stop)]
    if grid.size == 0:
        return grid, np.zeros((len(curves), 0))
    return grid, np.stack([np.interp(grid, s, r) for s, r in curves])


def first_reach(steps: np.ndarray, returns: np.ndarray, threshold: float) -> float | None:
    """Env steps of the first evaluation at or above ``threshold``; None if never reached."""
    steps, returns = np.asarray(steps), np.asarray(returns)
    hits = np.flatnonzero(returns >= threshold)
    return float(steps[hits[0]]) if hits.size else None


def stays_above_from(steps: np.ndarray, returns: np.ndarray, threshold: float) -> float | None:
    """Env steps from which every later evaluation is at or above ``threshold``.

    Only the evaluations of the run count: a run whose last evaluation is below the threshold
    gives None, and one that dips below and recovers counts from its last recovery.
    """
    steps, returns = np.asarray(steps), np.asarray(returns)
    if steps.size == 0:
        return None
    below = np.flatnonzero(returns < threshold)
    if below.size == 0:
        return float(steps[0])
    if below[-1] == steps.size - 1:
        return None
    return float(steps[below[-1] + 1])


def value_at(steps: np.ndarray, returns: np.ndarray, step: float) -> float | None:
    """Return of the last evaluation at or before ``step``; None if there is none."""
    steps, returns = np.asarray(steps), np.asarray(returns)
    before = np.flatnonzero(steps <= step)
    return float(returns[before[-1]]) if before.size else None
