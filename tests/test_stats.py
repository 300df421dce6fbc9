"""``benchmarks.stats`` (rliable underneath) on fixed inputs against independent computations.

The figures of the hand-written statistics that rliable replaced, hard-coded; IQM against
``scipy.stats.trim_mean`` and a hand count; the bootstrap intervals against the *exact*
bootstrap distribution, enumerated over every resample (weighted by its multinomial
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
SCORES = np.stack(GAMES, axis=1)  # rliable's [runs, games] = [4, 3]

FIXED = np.array(  # [5 runs, 8 games]: np.round(lognormal(-0.5, 1) - 0.2, 2), default_rng(2021)
    [
        [0.37, 0.11, 0.08, 1.58, 0.40, 0.18, 0.38, -0.16],
        [0.07, -0.07, 0.76, 0.21, 1.38, 0.69, -0.02, 0.51],
        [0.10, 0.32, 0.54, 0.10, 1.14, 0.54, 0.39, -0.05],
        [0.18, 0.09, 1.35, 6.06, 0.45, -0.13, -0.02, 1.30],
        [0.03, 8.99, -0.07, 1.21, 0.42, 0.17, 0.19, 0.13],
    ]
)
# The figures of the hand-written statistics this module had before it used rliable (its own
# trimmed mean and a stratified bootstrap drawing seed indices with numpy's default_rng),
# computed on FIXED with 200,000 replicates, seed 0: (point, low, high) of the 95% interval.
# The optimality gap is that bootstrap with the statistic 1 - mean(min(runs, 1)).
HAND_WRITTEN = {
    "mean": (0.7475, 0.34625, 1.262),
    "median": (0.439, 0.192, 0.679),
    "iqm": (0.289, 0.1855, 0.465),
    "iqm_per_game": (0.4815, 0.2325, 0.6585),
    "optimality_gap": (0.62775, 0.52425, 0.72825),
}
HAND_WRITTEN_MEAN = (2.78, 0.92, 4.96)  # its bootstrap of a mean of [0.3, 1.1, 1.8, 4.2, 6.5]


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


def exact_distribution(games, statistic):
    """``(values, cdf)`` of ``statistic`` over the exact stratified bootstrap distribution."""
    points, weights = [], []
    for parts in itertools.product(*(resamples(list(g)) for g in games)):
        points.append(statistic([values for values, _ in parts]))
        weights.append(math.prod(p for _, p in parts))
    order = np.argsort(points)
    return np.asarray(points)[order], np.cumsum(np.asarray(weights)[order])


def exact_quantiles(games, statistic, levels):
    points, cdf = exact_distribution(games, statistic)
    return [float(points[np.searchsorted(cdf, q)]) for q in levels]


def pooled_iqm_py(runs):
    """Plain Python: sort the pooled runs, drop floor(n/4) from each end, average."""
    pooled = sorted(x for run in runs for x in run)
    cut = len(pooled) // 4
    middle = pooled[cut : len(pooled) - cut]
    return sum(middle) / len(middle)


def mean_py(runs):
    return sum(sum(r) / len(r) for r in runs) / len(runs)


def median_py(runs):  # an odd number of games here
    means = sorted(sum(r) / len(r) for r in runs)
    return means[len(means) // 2]


def test_rliable_agrees_with_the_hand_written_statistics_it_replaced():
    intervals = stats.aggregate_intervals(FIXED, reps=2000, seed=0)
    assert list(intervals) == list(HAND_WRITTEN)
    for name, (point, low, high) in HAND_WRITTEN.items():
        got = intervals[name]
        assert got.point == pytest.approx(point, abs=1e-12), name
        tolerance = 0.05 * (high - low)  # Monte Carlo noise of 2,000 replicates
        assert got.low == pytest.approx(low, abs=tolerance), name
        assert got.high == pytest.approx(high, abs=tolerance), name
    point, low, high = HAND_WRITTEN_MEAN
    got = stats.bootstrap_mean(np.array([0.3, 1.1, 1.8, 4.2, 6.5]), reps=2000, seed=0)
    assert got.point == pytest.approx(point)
    assert got.low == pytest.approx(low, abs=0.05 * (high - low))
    assert got.high == pytest.approx(high, abs=0.05 * (high - low))


def test_iqm_trims_a_quarter_from_each_end():
    # 10 runs (2 x 5): a quarter is 2 from each end (30% would cut 3).
    scores = np.array([[1.0, 20.0, 4.0, 2.0, 100.0], [-50.0, 3.0, 5.0, 6.0, 8.0]])
    assert stats.AGGREGATES["iqm"](scores) == pytest.approx((2 + 3 + 4 + 5 + 6 + 8) / 6)  # 30%: 4.5
    assert stats.AGGREGATES["iqm"](scores) == pytest.approx(scipy_trim_mean(scores.ravel(), 0.25))
    # per game: 10 games' means, 2 cut from each end (30% would cut 3)
    means = np.array([5.0, -3.0, 8.0, 0.5, 2.0, 11.0, 4.0, 1.0, 7.0, 6.0])
    per_game = np.stack([means - 1.0, means + 1.0])  # [2, 10]
    assert stats.iqm_per_game(per_game) == pytest.approx((1 + 2 + 4 + 5 + 6 + 7) / 6)  # 30%: 4.25
    assert stats.iqm_per_game(per_game) == pytest.approx(scipy_trim_mean(means, 0.25))


def test_mean_median_and_optimality_gap_on_a_fixed_input():
    assert stats.AGGREGATES["mean"](SCORES) == pytest.approx(mean_py(GAMES))
    assert stats.AGGREGATES["median"](SCORES) == pytest.approx(median_py(GAMES))  # 1.225
    # min(score, 1) over the 12 runs: 0.11+0.52+1+1 -0.4+0.23+0.61+0.97 +1+1+1+1 = 8.04
    assert stats.AGGREGATES["optimality_gap"](SCORES) == pytest.approx(1 - 8.04 / 12)


def test_score_matrix_keeps_the_first_seeds_every_game_has():
    runs = [np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0]), np.array([6.0, 7.0, 8.0])]
    np.testing.assert_array_equal(stats.score_matrix(runs), [[1, 4, 6], [2, 5, 7]])
    with pytest.raises(ValueError, match="at least one score"):
        stats.score_matrix([np.array([1.0]), np.array([])])


@pytest.mark.parametrize(
    "name, statistic", [("iqm", pooled_iqm_py), ("mean", mean_py), ("median", median_py)]
)
def test_stratified_bootstrap_95_interval_matches_the_exact_distribution(name, statistic):
    q = exact_quantiles(GAMES, statistic, [0.015, 0.035, 0.05, 0.95, 0.965, 0.985])
    assert q[1] < q[2] and q[3] < q[4]  # the 95% and 90% ends are apart on this input
    [interval] = stats.aggregate_intervals(SCORES, names=(name,), reps=5000, seed=1).values()
    assert interval.point == pytest.approx(statistic(GAMES))
    assert q[0] <= interval.low <= q[1]
    assert q[4] <= interval.high <= q[5]
    [ninety] = stats.aggregate_intervals(
        SCORES, names=(name,), reps=5000, seed=1, confidence=0.9
    ).values()
    assert q[1] < ninety.low and ninety.high < q[4]


def test_bootstrap_of_a_mean_leaves_2_5_percent_of_the_exact_distribution_on_each_side():
    """2.5% of the exact bootstrap distribution lies below the interval and 2.5% above it
    (a tail that is not halved would leave 5%; a 101 - tail upper end 1.5%)."""
    seeds = [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]
    points, cdf = exact_distribution([seeds], mean_py)
    interval = stats.bootstrap_mean(np.array(seeds), reps=20_000, seed=3)
    assert interval.point == pytest.approx(sum(seeds) / 6)
    below = cdf[np.searchsorted(points, interval.low) - 1]  # P(mean < low)
    above = 1.0 - cdf[np.searchsorted(points, interval.high, side="right") - 1]  # P(mean > high)
    assert abs(below - 0.025) < 0.006 and abs(above - 0.025) < 0.006
    mean, low, high = stats.bootstrap_mean_curve(
        np.array([seeds, [2 * s for s in seeds]]).T, reps=20_000, seed=3
    )
    np.testing.assert_allclose(mean, [sum(seeds) / 6, 2 * sum(seeds) / 6])
    np.testing.assert_allclose([low[1], high[1]], [2 * low[0], 2 * high[0]], rtol=0.05)


def test_probability_of_improvement_against_one_published_score_per_game():
    ours = np.array([[1.0, 0.2, 5.0], [3.0, 0.4, 5.0], [2.0, 0.9, 6.0]])  # [3 runs, 3 games]
    published = np.array([[2.0, 1.0, 5.0]])  # one run per game
    # game 1: 3 beats, 2 ties, 1 loses -> 1.5/3; game 2: 0/3; game 3: 5, 5 tie, 6 wins -> 2/3
    interval = stats.probability_of_improvement(ours, published, reps=300, seed=0)
    assert interval.point == pytest.approx((0.5 + 0.0 + 2 / 3) / 3)
    assert 0.0 <= interval.low <= interval.point <= interval.high <= 1.0
    # one run each: every replicate is the data itself
    same = stats.probability_of_improvement(ours[:1], published)
    assert same.low == same.point == same.high == pytest.approx((0.0 + 0.0 + 0.5) / 3)


def test_performance_profile_is_the_fraction_of_runs_above_each_threshold():
    taus = np.array([0.0, 1.0, 2.5, 10.0])
    profile, low, high = stats.performance_profile(SCORES, taus, reps=300, seed=0)
    # 12 runs: 11 above 0, 6 above 1, 3 above 2.5 (2.9, 3.3, 7.1), none above 10
    np.testing.assert_allclose(profile, [11 / 12, 6 / 12, 3 / 12, 0.0])
    assert np.all(low <= profile) and np.all(profile <= high)
    assert low[-1] == high[-1] == 0.0


def test_intervals_are_reproducible_and_leave_numpys_generator_alone():
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    a = stats.aggregate_intervals(SCORES, reps=300, seed=4, names=("mean", "iqm"))
    assert np.random.rand() == expected_next
    b = stats.aggregate_intervals(SCORES, reps=300, seed=4, names=("iqm",))
    assert list(a) == ["mean", "iqm"] and a["iqm"] == b["iqm"]
    assert stats.Interval(1.23456, 1.0, 1.5).format(2) == "1.23 [1.00, 1.50]"


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


def test_compare_passes_its_settings_to_every_interval():
    a, b = np.array([0.0, 2.0, 3.0, 7.0]), np.array([1.0, 1.5, 4.0])
    c = stats.compare(a, b, reps=300, confidence=0.5, seed=7)
    assert c.difference == stats.difference_of_means(a, b, reps=300, confidence=0.5, seed=7)
    assert c.a == stats.bootstrap_mean(a, reps=300, confidence=0.5, seed=7)
    assert c.b == stats.bootstrap_mean(b, reps=300, confidence=0.5, seed=7)
    assert c.confidence == 0.5
    # a plain list of integers is read as the same returns
    assert stats.compare([0, 2, 3, 7], [1, 1, 2], reps=300, seed=7).difference == (
        stats.difference_of_means(np.array([0.0, 2, 3, 7]), np.array([1.0, 1, 2]), reps=300, seed=7)
    )


def test_intervals_default_to_seed_0_so_a_report_regenerates_its_figures():
    m = np.array([[0.0, 1.0], [2.0, 5.0], [3.0, 4.0], [7.5, 0.5], [1.2, 9.0], [4.4, 2.2]])
    default = stats.bootstrap(m, lambda s: s.mean(axis=0), reps=300)
    seeded = stats.bootstrap(m, lambda s: s.mean(axis=0), reps=300, seed=0)
    other = stats.bootstrap(m, lambda s: s.mean(axis=0), reps=300, seed=1)
    np.testing.assert_array_equal(default, seeded)
    assert not np.array_equal(default, other)


@pytest.mark.parametrize(
    "values, decimals",
    [([123.0], 1), ([10.0], 1), ([9.99], 2), ([1.5], 2), ([1.0], 2), ([0.99], 3)],
)
def test_digits_show_about_three_significant_digits(values, decimals):
    assert stats.digits(np.array(values + [np.nan, -0.001])) == decimals


def test_bootstrap_mean_takes_its_confidence():
    values = np.array([0.0, 1.0, 3.0, 7.0, 15.0, 31.0])
    wide = stats.bootstrap_mean(values, reps=2000, confidence=0.95, seed=2)
    narrow = stats.bootstrap_mean(values, reps=2000, confidence=0.5, seed=2)
    assert narrow.point == wide.point == pytest.approx(values.mean())
    assert wide.low < narrow.low < narrow.point < narrow.high < wide.high


def test_score_matrix_holds_floats_whatever_the_input():
    m = stats.score_matrix([[1, 2, 3], [4, 5]])
    assert m.dtype == np.float64
    np.testing.assert_array_equal(m, [[1.0, 4.0], [2.0, 5.0]])


def test_human_normalized_score_in_double_precision():
    hns = stats.human_normalized(np.float32(16_777_217), np.float32(1.0), np.float32(3.0))
    assert hns.dtype == np.float64
    np.testing.assert_allclose(
        stats.human_normalized([2.0, 5.0], [1.0, 1.0], [3.0, 5.0]), [0.5, 1.0]
    )


def test_comparison_in_words():
    c = stats.compare(np.array([10.0, 11, 12, 13]), np.array([0.0, 1, 2, 3]), reps=500)
    assert c.against("ppo") == "better than ppo"
    assert c.format(1).startswith("11.5 vs 1.5, difference +10.0 [95% CI ")
    tied = stats.compare(np.array([9.0, 9, 9]), np.array([9.0, 9, 9]))
    assert tied.against("dqn") == "not distinguishable from dqn"
    few = stats.compare(np.array([1.0]), np.array([0.0, 0, 0]))
    assert few.against("dqn") == "not comparable with dqn (too few seeds)"
