"""``benchmarks.stats`` on fixed inputs against independent computations.

IQM against ``scipy.stats.trim_mean`` and a hand count; the bootstrap intervals against the
*exact* bootstrap distribution, enumerated over every resample (weighted by its multinomial
probability) rather than drawn: a 95% interval must sit at its 2.5% and 97.5% quantiles,
well inside the 5% / 95% quantiles of a 90% interval.
"""

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from scipy.stats import trim_mean as scipy_trim_mean

from benchmarks import stats

GAMES = [  # 3 games x 4 seeds, distinct values (no ties between resample statistics)
    np.array([0.11, 0.52, 1.37, 2.9]),
    np.array([-0.4, 0.23, 0.61, 0.97]),
    np.array([1.9, 2.45, 3.3, 7.1]),
]


def resamples(values):
    """Every multiset of len(values) draws with replacement, with its probability."""
    n = len(values)
    out = []
    for combo in itertools.combinations_with_replacement(range(n), n):
        counts = Counter(combo)
        ways = math.factorial(n)
        for c in counts.values():
            ways //= math.factorial(c)
        out.append(([values[i] for i in combo], ways / n**n))
    return out


def exact_quantiles(games, statistic, levels):
    """Quantiles of ``statistic`` over the exact stratified bootstrap distribution."""
    points, weights = [], []
    for parts in itertools.product(*(resamples(list(g)) for g in games)):
        points.append(statistic([values for values, _ in parts]))
        weights.append(math.prod(p for _, p in parts))
    order = np.argsort(points)
    points, cdf = np.asarray(points)[order], np.cumsum(np.asarray(weights)[order])
    return [float(points[np.searchsorted(cdf, q)]) for q in levels]


def pooled_iqm_py(runs):
    """Plain Python: sort the pooled runs, drop floor(n/4) from each end, average."""
    pooled = sorted(x for run in runs for x in run)
    cut = len(pooled) // 4
    middle = pooled[cut : len(pooled) - cut]
    return sum(middle) / len(middle)


def mean_py(runs):
    return sum(sum(r) / len(r) for r in runs) / len(runs)


def test_iqm_trims_a_quarter_from_each_end():
    # 10 pooled runs: a quarter is 2 from each end (30% would cut 3).
    runs = [np.array([1.0, 20.0, 4.0]), np.array([2.0, 100.0]), np.array([-50.0, 3, 5, 6, 8])]
    assert stats.iqm(runs) == pytest.approx((2 + 3 + 4 + 5 + 6 + 8) / 6)  # 30%: 4.5
    pooled = np.concatenate(runs)
    assert stats.iqm(runs) == pytest.approx(scipy_trim_mean(pooled, 0.25))
    # per game: 10 games' means, again 2 cut from each end
    means = np.array([5.0, -3.0, 8.0, 0.5, 2.0, 11.0, 4.0, 1.0, 7.0, 6.0])
    per_game = [np.array([m - 1.0, m + 1.0]) for m in means]
    assert stats.iqm_per_game(per_game) == pytest.approx((1 + 2 + 4 + 5 + 6 + 7) / 6)  # 30%: 4.25
    assert stats.iqm_per_game(per_game) == pytest.approx(scipy_trim_mean(means, 0.25))


def test_mean_median_and_fraction_above_on_a_fixed_input():
    assert stats.mean(GAMES) == pytest.approx(mean_py(GAMES))
    means = sorted(sum(g) / len(g) for g in GAMES)
    assert stats.median(GAMES) == pytest.approx(means[1])
    assert stats.fraction_above(GAMES, 1.0) == pytest.approx(2 / 3)  # 1.225, 0.3525, 3.6875


@pytest.mark.parametrize("name, statistic", [("iqm", pooled_iqm_py), ("mean", mean_py)])
def test_stratified_bootstrap_95_interval_matches_the_exact_distribution(name, statistic):
    q = exact_quantiles(GAMES, statistic, [0.015, 0.035, 0.05, 0.95, 0.965, 0.985])
    assert q[1] < q[2] and q[3] < q[4]  # the 95% and 90% ends are apart on this input
    interval = stats.stratified_bootstrap(GAMES, stats.AGGREGATES[name], reps=20_000, seed=1)
    assert interval.point == pytest.approx(statistic([list(g) for g in GAMES]))
    assert q[0] <= interval.low <= q[1]
    assert q[4] <= interval.high <= q[5]
    ninety = stats.stratified_bootstrap(
        GAMES, stats.AGGREGATES[name], reps=20_000, seed=1, confidence=0.9
    )
    assert q[1] < ninety.low and ninety.high < q[4]


def test_plain_bootstrap_of_a_mean_matches_the_exact_distribution():
    seeds = [0.3, 1.1, 1.8, 4.2, 6.5]
    q = exact_quantiles([seeds], mean_py, [0.015, 0.035, 0.965, 0.985])
    interval = stats.bootstrap_mean(np.array(seeds), reps=20_000, seed=2)
    assert interval.point == pytest.approx(sum(seeds) / 5)
    assert q[0] <= interval.low <= q[1] and q[2] <= interval.high <= q[3]
    mean, low, high = stats.bootstrap_mean_curve(
        np.array([seeds, [2 * s for s in seeds]]).T, reps=20_000, seed=2
    )
    np.testing.assert_allclose(mean, [sum(seeds) / 5, 2 * sum(seeds) / 5])
    assert q[0] <= low[0] <= q[1] and 2 * q[0] <= low[1] <= 2 * q[1]
    assert q[2] <= high[0] <= q[3] and 2 * q[2] <= high[1] <= 2 * q[3]


def test_aggregate_intervals_and_formatting():
    intervals = stats.aggregate_intervals(GAMES, reps=300, seed=4, names=("mean", "iqm"))
    assert list(intervals) == ["mean", "iqm"]
    alone = stats.stratified_bootstrap(GAMES, stats.iqm, reps=300, seed=4)
    assert intervals["iqm"] == alone
    assert stats.Interval(1.23456, 1.0, 1.5).format(2) == "1.23 [1.00, 1.50]"
    with pytest.raises(ValueError, match="at least one score"):
        stats.stratified_bootstrap([np.array([1.0]), np.array([])], stats.mean)
    with pytest.raises(ValueError, match="leaves nothing"):
        stats.trim_mean(np.array([1.0, 2.0]), 0.5)


def test_bootstrap_mean_curve_leaves_2_5_percent_of_replicates_on_each_side():
    """The same resampling drawn independently: 2.5% of the replicate means fall below the
    interval and 2.5% above it (a 101 - tail upper end leaves 1.5% above)."""
    from benchmarks.stats import bootstrap_mean_curve

    values = np.array([[0.0], [1.0], [3.0], [7.0], [15.0], [31.0]])
    reps = 40_000
    _, low, high = bootstrap_mean_curve(values, reps=reps, seed=3)
    idx = np.random.default_rng(3).integers(0, 6, size=(reps, 6))
    means = values[idx, 0].mean(axis=1)
    assert abs(np.mean(means < low[0]) - 0.025) < 0.004
    assert abs(np.mean(means > high[0]) - 0.025) < 0.004


def difference_py(runs):
    a, b = runs
    return sum(a) / len(a) - sum(b) / len(b)


def test_difference_of_means_matches_the_exact_bootstrap_distribution():
    """Two groups resampled independently: the exact distribution is that of a stratified
    bootstrap with the two groups as strata."""
    a, b = [0.4, 1.3, 2.2, 5.1], [0.1, 0.9, 1.5]
    q = exact_quantiles([a, b], difference_py, [0.015, 0.035, 0.965, 0.985])
    interval = stats.difference_of_means(np.array(a), np.array(b), reps=20_000, seed=5)
    assert interval.point == pytest.approx(difference_py([a, b]))
    assert q[0] <= interval.low <= q[1] and q[2] <= interval.high <= q[3]
    with pytest.raises(ValueError, match="at least one value"):
        stats.difference_of_means(np.array(a), np.array([]))


@pytest.mark.parametrize(
    "a, b, verdict",
    [
        ([10, 11, 12, 13], [0, 1, 2, 3], stats.BETTER),  # every resample: 10 - 3 = 7 or more
        ([0, 1, 2, 3], [10, 11, 12, 13], stats.WORSE),
        ([0, 10, 0, 10], [5, 5, 5, 5], stats.TIED),  # mean 5 against 5, spread both ways
        ([9, 9, 9], [9, 9, 9], stats.TIED),  # all equal: the interval [0, 0] holds 0
        ([500, 500, 500], [0, 0], stats.TOO_FEW),  # a clear gap, but two seeds of b
        ([500], [0, 0, 0], stats.TOO_FEW),  # one seed: the interval collapses to a point
    ],
)
def test_compare_gives_each_verdict(a, b, verdict):
    assert stats.compare(np.array(a, float), np.array(b, float), reps=2000).verdict == verdict


def test_compare_decides_on_the_difference_not_on_overlapping_intervals():
    """Two means whose own 95% intervals overlap can still differ: the difference of the
    means has a narrower interval (by about sqrt 2) than the two intervals side by side."""
    b = np.arange(10.0)
    a = b + 3.0
    c = stats.compare(a, b, reps=20_000, seed=0)
    assert c.a.low < c.b.high  # the intervals of the two means overlap
    assert c.verdict == stats.BETTER and c.difference.low > 0
    assert c.difference.point == pytest.approx(3.0)


def test_comparison_in_words():
    c = stats.compare(np.array([10.0, 11, 12, 13]), np.array([0.0, 1, 2, 3]), reps=500)
    assert c.against("ppo") == "better than ppo"
    assert c.format(1).startswith("11.5 vs 1.5, difference +10.0 [95% CI ")
    tied = stats.compare(np.array([9.0, 9, 9]), np.array([9.0, 9, 9]))
    assert tied.against("dqn") == "not distinguishable from dqn"
    few = stats.compare(np.array([1.0]), np.array([0.0, 0, 0]))
    assert few.against("dqn") == "not comparable with dqn (too few seeds)"
