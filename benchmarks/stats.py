"""Scores and their uncertainty: HNS, mean / median / IQM, bootstrap confidence intervals.

One implementation used by every report. Conventions follow rliable (Agarwal et al., 2021,
"Deep RL at the Edge of the Statistical Precipice"):

* a *run* is one (game, seed) pair; scores arrive per game as ``runs[g]`` of shape ``[n_g]``
  (games may have different numbers of seeds);
* ``mean`` is the mean over games of the per-game mean over seeds; ``median`` the median over
  games of the per-game means;
* ``iqm`` is the interquartile mean over *all runs* (games x seeds pooled): the 25 % trimmed
  mean. ``iqm_per_game`` is the trimmed mean over the per-game means, which is what papers
  quoting one number per game (and ``reference/SOURCES.md``) call IQM. With one seed per
  game the two coincide;
* confidence intervals are percentile intervals of a *stratified* bootstrap: each replicate
  resamples, with replacement, the seeds within every game (the games stay fixed).

Every aggregate takes per-game arrays of shape ``[..., n_g]`` and reduces the last axis, so
the same function serves the point estimate (``[n_g]``) and all bootstrap replicates at once
(``[R, n_g]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

Aggregate = Callable[[Sequence[np.ndarray]], np.ndarray]
"""Maps per-game run scores ``runs[g]: [..., n_g]`` to an aggregate ``[...]``."""


def human_normalized(score: ArrayLike, random: ArrayLike, human: ArrayLike) -> np.ndarray:
    """HNS = (score - random) / (human - random); 0 is random play, 1 is the human reference."""
    score, random, human = (np.asarray(x, dtype=np.float64) for x in (score, random, human))
    return (score - random) / (human - random)


def trim_mean(x: np.ndarray, proportion: float = 0.25, axis: int = -1) -> np.ndarray:
    """Mean after cutting ``int(proportion * n)`` values from each end of ``axis``.

    Same convention as ``scipy.stats.trim_mean``: with n = 26 and proportion 0.25 it drops the
    6 lowest and 6 highest values and averages the middle 14.
    """
    x = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    cut = int(proportion * n)
    if n - 2 * cut <= 0:
        raise ValueError(f"trim_mean: cutting {cut} from each end leaves nothing of {n} values")
    return np.take(x, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def game_means(runs: Sequence[np.ndarray]) -> np.ndarray:
    """Per-game mean over seeds: ``runs[g]: [..., n_g]`` -> ``[..., G]``."""
    return np.stack([np.asarray(r, dtype=np.float64).mean(axis=-1) for r in runs], axis=-1)


def mean(runs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over games of per-game means."""
    return game_means(runs).mean(axis=-1)


def median(runs: Sequence[np.ndarray]) -> np.ndarray:
    """Median over games of per-game means."""
    return np.median(game_means(runs), axis=-1)


def iqm(runs: Sequence[np.ndarray]) -> np.ndarray:
    """Interquartile mean over all runs pooled (rliable's IQM)."""
    pooled = np.concatenate([np.asarray(r, dtype=np.float64) for r in runs], axis=-1)
    return trim_mean(pooled, 0.25, axis=-1)


def iqm_per_game(runs: Sequence[np.ndarray]) -> np.ndarray:
    """Interquartile mean over per-game means (the IQM of one-number-per-game tables)."""
    return trim_mean(game_means(runs), 0.25, axis=-1)


def fraction_above(runs: Sequence[np.ndarray], threshold: float = 1.0) -> np.ndarray:
    """Fraction of games whose mean exceeds ``threshold`` (HNS > 1: superhuman games)."""
    return (game_means(runs) > threshold).mean(axis=-1)


AGGREGATES: dict[str, Aggregate] = {
    "mean": mean,
    "median": median,
    "iqm": iqm,
    "iqm_per_game": iqm_per_game,
}
"""The aggregates every report shows, by name."""


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval."""

    point: float
    """The statistic on the observed data."""
    low: float
    """Lower end of the interval."""
    high: float
    """Upper end of the interval."""

    def format(self, digits: int = 3) -> str:
        """``1.234 [1.100, 1.400]``."""
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def stratified_bootstrap(
    runs: Sequence[np.ndarray],
    statistic: Aggregate,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile CI of ``statistic`` by resampling seeds within each game.

    Args:
      runs: per-game scores, ``runs[g]: [n_g]`` with ``n_g >= 1``.
      statistic: an ``Aggregate`` such as ``iqm``.
      reps: bootstrap replicates R.
      confidence: coverage of the interval (0.95 gives the 2.5 and 97.5 percentiles).
      seed: seed of the resampling; the same seed gives the same interval.
    """
    runs = [np.asarray(r, dtype=np.float64).reshape(-1) for r in runs]
    if not runs or any(r.size == 0 for r in runs):
        raise ValueError("stratified_bootstrap needs at least one score for every game")
    rng = np.random.default_rng(seed)
    resampled = [r[rng.integers(0, r.size, size=(reps, r.size))] for r in runs]  # [R, n_g]
    replicates = statistic(resampled)
    return _percentile_interval(float(statistic(runs)), replicates, confidence)


def aggregate_intervals(
    runs: Sequence[np.ndarray],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    names: Sequence[str] = tuple(AGGREGATES),
) -> dict[str, Interval]:
    """``stratified_bootstrap`` of each named aggregate (same resampling seed for each)."""
    return {
        name: stratified_bootstrap(
            runs, AGGREGATES[name], reps=reps, confidence=confidence, seed=seed
        )
        for name in names
    }


def bootstrap_mean_curve(
    values: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of aligned curves with a plain bootstrap CI over seeds.

    Args:
      values: ``[S, T]``, one row per seed on a common grid of T points.

    Returns:
      ``(mean, low, high)``, each ``[T]``. With one seed the interval collapses to the mean.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"bootstrap_mean_curve expects [S, T] with S >= 1, got {values.shape}")
    rng = np.random.default_rng(seed)
    seeds = values.shape[0]
    idx = rng.integers(0, seeds, size=(reps, seeds))
    replicates = values[idx].mean(axis=1)  # [R, T]
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail], axis=0)
    return values.mean(axis=0), low, high


def bootstrap_mean(
    values: np.ndarray, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of ``values: [S]`` with a plain bootstrap CI over seeds."""
    m, low, high = bootstrap_mean_curve(
        np.asarray(values, dtype=np.float64).reshape(-1, 1),
        reps=reps,
        confidence=confidence,
        seed=seed,
    )
    return Interval(float(m[0]), float(low[0]), float(high[0]))


def _percentile_interval(point: float, replicates: np.ndarray, confidence: float) -> Interval:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return Interval(point, float(low), float(high))


def digits(values: ArrayLike) -> int:
    """Decimals that show returns of the scale of ``values`` to about 3 significant digits:
    1 from 10 up (CartPole's hundreds), 2 from 1, else 3 (DeepSea's 0.99 against -0.001)."""
    values = np.abs(np.asarray(values, dtype=np.float64).reshape(-1))
    scale = float(values[np.isfinite(values)].max(initial=0.0))
    return 1 if scale >= 10 else 2 if scale >= 1 else 3


def difference_of_means(
    a: ArrayLike, b: ArrayLike, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """``mean(a) - mean(b)`` with a percentile bootstrap CI, the seeds of ``a: [n_a]`` and of
    ``b: [n_b]`` resampled independently (two unpaired groups of runs)."""
    a, b = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (a, b))
    if a.size == 0 or b.size == 0:
        raise ValueError("difference_of_means needs at least one value in each group")
    rng = np.random.default_rng(seed)
    ra = a[rng.integers(0, a.size, size=(reps, a.size))].mean(axis=1)
    rb = b[rng.integers(0, b.size, size=(reps, b.size))].mean(axis=1)
    return _percentile_interval(float(a.mean() - b.mean()), ra - rb, confidence)


BETTER = "better"
WORSE = "worse"
TIED = "not distinguishable"
TOO_FEW = "too few seeds"
MIN_SEEDS = 3
"""Seeds each side needs for a verdict: with fewer the bootstrap interval is too crude
(with one seed it collapses to the point)."""


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Whether the runs of ``a`` did better than those of ``b``, from the interval of the
    difference of their mean final returns."""

    verdict: str
    """``better`` (the interval is above 0), ``worse`` (below 0), ``not distinguishable`` (it
    holds 0) or ``too few seeds``."""
    difference: Interval
    """``mean(a) - mean(b)`` with its bootstrap interval."""
    a: Interval
    """Mean of ``a`` with its bootstrap interval."""
    b: Interval
    """Mean of ``b`` with its bootstrap interval."""
    confidence: float = 0.95
    """Coverage of the intervals."""

    def against(self, other: str) -> str:
        """The verdict in words against ``other`` (``verdict_words``)."""
        return verdict_words(self.verdict, other)

    def format(self, digits: int = 1) -> str:
        """The numbers: ``480.1 vs 410.0, difference +70.1 [95% CI 12.0, 130.5]``."""
        d = self.difference
        return (
            f"{self.a.point:.{digits}f} vs {self.b.point:.{digits}f}, "
            f"difference {d.point:+.{digits}f} [{100 * self.confidence:g}% CI "
            f"{d.low:.{digits}f}, {d.high:.{digits}f}]"
        )


def verdict_words(verdict: str, other: str) -> str:
    """A verdict against ``other`` in words: ``better than ppo``, ``worse than ppo``, ``not
    distinguishable from ppo`` or ``not comparable with ppo (too few seeds)``."""
    if verdict in (BETTER, WORSE):
        return f"{verdict} than {other}"
    if verdict == TIED:
        return f"{verdict} from {other}"
    return f"not comparable with {other} ({verdict})"


def compare(
    a: ArrayLike,
    b: ArrayLike,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    min_seeds: int = MIN_SEEDS,
) -> Comparison:
    """The verdict on ``a`` against ``b`` (per-seed final returns ``[n_a]``, ``[n_b]``): better
    or worse where the ``confidence`` interval of ``mean(a) - mean(b)`` excludes 0, else not
    distinguishable; ``too few seeds`` where either side has fewer than ``min_seeds``."""
    a, b = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (a, b))
    difference = difference_of_means(a, b, reps=reps, confidence=confidence, seed=seed)
    mean_a = bootstrap_mean(a, reps=reps, confidence=confidence, seed=seed)
    mean_b = bootstrap_mean(b, reps=reps, confidence=confidence, seed=seed)
    if min(a.size, b.size) < min_seeds:
        verdict = TOO_FEW
    elif difference.low > 0:
        verdict = BETTER
    elif difference.high < 0:
        verdict = WORSE
    else:
        verdict = TIED
    return Comparison(verdict, difference, mean_a, mean_b, confidence)
