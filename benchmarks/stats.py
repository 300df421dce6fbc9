"""Scores and their uncertainty through rliable: HNS, aggregates, intervals, profiles.

One implementation used by every report: the aggregates are ``rliable.metrics`` and every
interval is a percentile interval of rliable's stratified bootstrap
(``rliable.library.get_interval_estimates``; Agarwal et al., 2021, "Deep RL at the Edge of the
Statistical Precipice"). Conventions are rliable's:

* the scores of one method are a matrix ``[R, G]``: R runs (seeds) on each of G games (or
  envs). ``score_matrix`` makes one from per-game seed lists, keeping the first R seeds of
  every game when games have different numbers (rliable needs the same R on every game);
* ``mean`` and ``median`` are over games of the per-game means over runs; ``iqm`` is the
  interquartile (25 % trimmed) mean over *all runs*; ``iqm_per_game`` is the same over the
  per-game means, what tables quoting one number per game (and ``reference/SOURCES.md``) call
  IQM (with one run per game the two coincide); ``optimality_gap`` is how far the runs fall
  short of 1 (the human score), ``1 - mean(min(score, 1))``: lower is better;
* an interval resamples, with replacement, the runs within every game (the games stay fixed);
  ``probability_of_improvement`` resamples the two methods independently.

rliable draws from numpy's global generator; every function here seeds it for the call (the
same ``seed`` gives the same interval) and puts its state back afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike
from rliable import library, metrics

Aggregate = Callable[[np.ndarray], float]
"""Maps a score matrix ``[R, G]`` to one number."""


def human_normalized(score: ArrayLike, random: ArrayLike, human: ArrayLike) -> np.ndarray:
    """HNS = (score - random) / (human - random); 0 is random play, 1 is the human reference."""
    score, random, human = (np.asarray(x, dtype=np.float64) for x in (score, random, human))
    return (score - random) / (human - random)


def score_matrix(runs: Sequence[ArrayLike]) -> np.ndarray:
    """rliable's ``[R, G]`` matrix from per-game scores ``runs[g]: [n_g]`` (seed order).

    R is the smallest ``n_g``: a game with more seeds contributes its first R.
    """
    runs = [np.asarray(r, dtype=np.float64).reshape(-1) for r in runs]
    if not runs or any(r.size == 0 for r in runs):
        raise ValueError("score_matrix needs at least one score for every game")
    size = min(r.size for r in runs)
    return np.stack([r[:size] for r in runs], axis=1)


def iqm_per_game(scores: np.ndarray) -> float:
    """Interquartile mean over the per-game means (the IQM of one-number-per-game tables)."""
    return metrics.aggregate_iqm(np.mean(scores, axis=0, keepdims=True))


AGGREGATES: dict[str, Aggregate] = {
    "mean": metrics.aggregate_mean,
    "median": metrics.aggregate_median,
    "iqm": metrics.aggregate_iqm,
    "iqm_per_game": iqm_per_game,
    "optimality_gap": metrics.aggregate_optimality_gap,
}
"""The aggregates every report shows, by name (``scores: [R, G]`` -> a number)."""


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


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """numpy's global generator (which rliable draws from) seeded with ``seed`` for the block."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def bootstrap(
    scores: np.ndarray | Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rliable's stratified bootstrap of a vector-valued ``statistic``.

    Args:
      scores: one matrix ``[R, G]`` (runs resampled within each game), or several matrices
        resampled independently of each other (``statistic`` then takes them all).
      statistic: maps the scores to ``[K]``.
      reps: bootstrap replicates.
      confidence: coverage of the percentile interval.
      seed: seed of the resampling.

    Returns:
      ``(point, low, high)``, each ``[K]``.
    """
    matrices = [scores] if isinstance(scores, np.ndarray) else list(scores)
    if all(np.shape(m)[0] == 1 for m in matrices):  # one run per game: every replicate is
        point = np.atleast_1d(np.asarray(statistic(*matrices), dtype=np.float64))  # the data
        return point, point.copy(), point.copy()
    with seeded(seed):
        points, intervals = library.get_interval_estimates(
            {"scores": scores},
            lambda *s: np.atleast_1d(np.asarray(statistic(*s), dtype=np.float64)),
            reps=reps,
            confidence_interval_size=confidence,
        )
    point = np.atleast_1d(np.asarray(points["scores"], dtype=np.float64))
    low, high = np.asarray(intervals["scores"], dtype=np.float64).reshape(2, -1)
    return point, low, high


def aggregate_intervals(
    scores: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    names: Sequence[str] = tuple(AGGREGATES),
) -> dict[str, Interval]:
    """The named aggregates of ``scores: [R, G]``, all from one stratified bootstrap."""
    functions = [AGGREGATES[name] for name in names]
    point, low, high = bootstrap(
        np.asarray(scores, dtype=np.float64),
        lambda s: np.array([f(s) for f in functions]),
        reps=reps,
        confidence=confidence,
        seed=seed,
    )
    return {
        name: Interval(float(p), float(lo), float(hi))
        for name, p, lo, hi in zip(names, point, low, high, strict=True)
    }


def probability_of_improvement(
    scores_x: np.ndarray,
    scores_y: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """P(X > Y): over games, the chance that a run of X beats a run of Y (ties count half).

    ``scores_x: [R_x, G]`` and ``scores_y: [R_y, G]`` on the same games; a published table is
    one run per game (``R_y = 1``). rliable computes each game's term with scipy's
    Mann-Whitney U, once per game and replicate: keep ``reps`` moderate on many games.
    """
    point, low, high = bootstrap(
        [np.asarray(scores_x, np.float64), np.asarray(scores_y, np.float64)],
        metrics.probability_of_improvement,
        reps=reps,
        confidence=confidence,
        seed=seed,
    )
    return Interval(float(point[0]), float(low[0]), float(high[0]))


def performance_profile(
    scores: np.ndarray,
    taus: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of the runs ``scores: [R, G]`` above each of ``taus: [T]`` (rliable's score
    distribution), with its interval: ``(profile, low, high)``, each ``[T]``."""
    taus = np.asarray(taus, np.float64)
    return bootstrap(
        np.asarray(scores, np.float64),
        lambda s: library.score_distributions(s, taus),
        reps=reps,
        confidence=confidence,
        seed=seed,
    )


def bootstrap_mean_curve(
    values: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of aligned curves with a bootstrap interval over seeds at every point.

    Args:
      values: ``[S, T]``, one row per seed on a common grid of T points (each point is one
        of rliable's "games": the seeds are resampled at every point).

    Returns:
      ``(mean, low, high)``, each ``[T]``. With one seed the interval collapses to the mean.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"bootstrap_mean_curve expects [S, T] with S >= 1, got {values.shape}")
    return bootstrap(values, lambda s: s.mean(axis=0), reps=reps, confidence=confidence, seed=seed)


def bootstrap_mean(
    values: np.ndarray, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of ``values: [S]`` with a bootstrap interval over seeds."""
    m, low, high = bootstrap_mean_curve(
        np.asarray(values, dtype=np.float64).reshape(-1, 1),
        reps=reps,
        confidence=confidence,
        seed=seed,
    )
    return Interval(float(m[0]), float(low[0]), float(high[0]))


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
    point, low, high = bootstrap(
        [a.reshape(-1, 1), b.reshape(-1, 1)],
        lambda x, y: x.mean() - y.mean(),
        reps=reps,
        confidence=confidence,
        seed=seed,
    )
    return Interval(float(point[0]), float(low[0]), float(high[0]))


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
    a, b = (np.asarray(x).reshape(-1) for x in (a, b))  # the intervals read them as float64
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
