"""The shoot-out statistics on constructed numbers whose answers are known or computed independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sweeps.report.stats import (
    compare,
    gain,
    holm,
    interval,
    paired_test,
    performance_profile,
    seeds_needed,
    tunability,
)

# Any warning (scipy's cancellation or degenerate-data ones above all) fails the test: none may leak out.
pytestmark = [  # no scipy warning may leak out of a report (scipy's are RuntimeWarning or UserWarning kin);
    # not every warning: a pipe an earlier test left open is collected, with its ResourceWarning, at any time
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("error::UserWarning"),
]

SEEDS = 10


def _noisy(center: float, scale: float, seed: int) -> np.ndarray:
    return center + np.random.default_rng(seed).normal(0.0, scale, SEEDS)


# --- intervals ---------------------------------------------------------------------------------------------


def test_t_interval_equals_the_textbook_formula() -> None:
    x = [0.81, 0.84, 0.79, 0.86, 0.83]
    n = len(x)
    mean = sum(x) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in x) / (n - 1))
    half = 2.7764451051977987 * s / math.sqrt(n)  # Student t, 97.5 % quantile, 4 degrees of freedom

    result = interval(x)

    assert result.n == n
    assert result.mean == pytest.approx(mean)
    assert result.std == pytest.approx(s)
    assert (result.low, result.high) == pytest.approx((mean - half, mean + half))


def test_a_wider_level_gives_a_wider_interval() -> None:
    x = [0.81, 0.84, 0.79, 0.86, 0.83]
    narrow, wide = interval(x, level=0.8), interval(x, level=0.99)
    assert wide.low < narrow.low < narrow.mean < narrow.high < wide.high


def test_interval_drops_nan_seeds() -> None:
    with_nan = interval([0.8, math.nan, 0.9, 0.85, math.nan])
    assert with_nan == interval([0.8, 0.9, 0.85])
    assert with_nan.n == 3


def test_one_seed_gives_its_value_and_no_bounds() -> None:
    result = interval([0.87, math.nan])
    assert result.n == 1
    assert result.mean == 0.87
    assert all(math.isnan(v) for v in (result.std, result.low, result.high))


def test_no_seed_gives_nan() -> None:
    for values in ([], [math.nan, math.nan]):
        result = interval(values)
        assert result.n == 0
        assert all(math.isnan(v) for v in (result.mean, result.std, result.low, result.high))


def test_identical_values_give_a_zero_width_interval() -> None:
    result = interval([0.1, 0.1, 0.1])  # np.mean would give 0.10000000000000002
    assert (result.mean, result.std, result.low, result.high) == (0.1, 0.0, 0.1, 0.1)


def test_interval_rejects_a_bad_level() -> None:
    with pytest.raises(ValueError, match="level"):
        interval([1.0, 2.0], level=95)


# --- paired tests and Holm ---------------------------------------------------------------------------------


def test_paired_t_equals_the_textbook_formula() -> None:
    a = np.array([0.91, 0.88, 0.93, 0.90, 0.89, 0.92])
    b = np.array([0.87, 0.88, 0.90, 0.85, 0.88, 0.89])
    d = a - b
    n = len(d)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(n))
    p = 2 * scipy_stats.t.sf(abs(t), n - 1)

    result = paired_test(a, b)

    assert result.n == n
    assert result.statistic == pytest.approx(t)
    assert result.p_value == pytest.approx(p)
    assert result.mean_difference == pytest.approx(d.mean())


def test_wilcoxon_equals_scipy() -> None:
    a = [0.91, 0.88, 0.93, 0.90, 0.89, 0.92, 0.95]
    b = [0.87, 0.89, 0.90, 0.85, 0.88, 0.89, 0.90]
    expected = scipy_stats.wilcoxon(a, b)
    result = paired_test(a, b, method="wilcoxon")
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_wilcoxon_cannot_separate_five_seeds_where_paired_t_does() -> None:
    """Five seeds, all won: the exact Wilcoxon p is 2 / 2**5 = 0.0625, the reason paired t is the default."""
    a = [0.90, 0.91, 0.89, 0.92, 0.90]
    b = [0.80, 0.82, 0.80, 0.81, 0.79]
    assert paired_test(a, b, method="wilcoxon").p_value == pytest.approx(0.0625)
    assert paired_test(a, b).p_value < 0.001


@pytest.mark.parametrize("method", ["t", "wilcoxon"])
def test_all_zero_differences_give_p_one(method: str) -> None:
    x = [0.9, 0.8, 0.85]
    result = paired_test(x, x, method=method)
    assert (result.statistic, result.p_value, result.mean_difference, result.n) == (0.0, 1.0, 0.0, 3)


def test_a_constant_gap_is_infinitely_significant() -> None:
    a = np.array([0.9, 0.95, 0.93])
    result = paired_test(a, a - 0.1)
    assert result.statistic == math.inf
    assert result.p_value == 0.0
    assert result.mean_difference == pytest.approx(0.1)


def test_paired_test_drops_seeds_missing_on_either_side() -> None:
    a = [0.91, math.nan, 0.93, 0.90, 0.89]
    b = [0.87, 0.88, 0.90, math.nan, 0.88]
    assert paired_test(a, b) == paired_test([0.91, 0.93, 0.89], [0.87, 0.90, 0.88])
    assert paired_test(a, b).n == 3


def test_paired_test_needs_the_same_seeds() -> None:
    with pytest.raises(ValueError, match="one value per seed"):
        paired_test([0.9, 0.8], [0.9, 0.8, 0.7])


def test_holm_on_a_hand_worked_example() -> None:
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_leaves_nan_untested() -> None:
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    adjusted = holm([0.01, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])
    assert holm([]) == []


# --- comparisons and group ranks ---------------------------------------------------------------------------


def test_identical_optimizers_share_rank_one() -> None:
    values = _noisy(0.9, 0.01, seed=1)
    result = compare({"adam": values, "adamw": values.copy()}, higher_is_better=True)
    pair = result.pair("adam", "adamw")
    assert pair.test.p_value == 1.0 and pair.p_adjusted == 1.0
    assert pair.winner is None
    assert result.ranks == {"adam": 1, "adamw": 1}
    assert not result.top_separated
    assert result.seeds_needed is None  # no difference at all: no number of seeds separates them


def test_a_clear_winner_over_ten_seeds() -> None:
    sgd, adam = _noisy(0.80, 0.005, seed=2), _noisy(0.90, 0.005, seed=3)
    result = compare({"sgd": sgd, "adam": adam}, higher_is_better=True)
    assert result.names == ("adam", "sgd")
    assert result.ranks == {"adam": 1, "sgd": 2}
    assert result.top_separated and result.seeds_needed is None
    assert result.pair("sgd", "adam").winner == "adam"
    assert result.pair("adam", "sgd").p_adjusted < 1e-6
    assert result.intervals["adam"].mean == pytest.approx(float(np.mean(adam)))


def _three_way(noise: float) -> dict[str, np.ndarray]:
    """a and b a hair apart relative to their per-seed noise, c clearly worse than both."""
    base = np.array([0.90, 0.88, 0.91, 0.89, 0.92, 0.90])
    wobble = noise * np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    return {
        "c": base - 0.1 + np.array([0.001, -0.002, 0.0, 0.002, -0.001, 0.0]),
        "b": base,
        "a": base + 0.003 + wobble,
    }


def test_two_indistinguishable_and_one_worse_rank_1_1_3() -> None:
    result = compare(_three_way(noise=0.01), higher_is_better=True)
    assert result.names == ("a", "b", "c")
    assert result.ranks == {"a": 1, "b": 1, "c": 3}
    assert result.pair("a", "b").winner is None
    assert result.pair("a", "c").winner == "a" and result.pair("b", "c").winner == "b"
    assert not result.top_separated
    assert isinstance(result.seeds_needed, int) and result.seeds_needed > 6


def test_more_noise_needs_more_seeds() -> None:
    quiet, loud = compare(_three_way(0.01), True), compare(_three_way(0.02), True)
    assert loud.ranks == {"a": 1, "b": 1, "c": 3}
    assert quiet.seeds_needed is not None and loud.seeds_needed is not None
    assert loud.seeds_needed > 2 * quiet.seeds_needed  # twice the noise: about four times the seeds


@pytest.mark.parametrize(("shift", "expected"), [(1.0, 10), (0.5, 34)])
def test_seeds_needed_matches_the_power_tables(shift: float, expected: int) -> None:
    """Differences with sd 1 and mean 1 (0.5): the standard paired-t tables give 10 (34) pairs for 80 %
    power at a two-sided 0.05."""
    a = np.array([-1.0, 0.0, 1.0]) + shift
    assert seeds_needed(a, np.zeros(3)) == expected


def test_seeds_needed_gives_up_at_the_cap() -> None:
    a = np.array([0.9, 0.8, 0.9, 0.8]) + 0.001
    assert seeds_needed(a, [0.8, 0.9, 0.8, 0.9], cap=50) is None


def test_lower_is_better_ranks_losses() -> None:
    high_loss, low_loss = _noisy(0.40, 0.005, seed=4), _noisy(0.30, 0.005, seed=5)
    result = compare({"sgd": high_loss, "adam": low_loss}, higher_is_better=False)
    assert result.names == ("adam", "sgd")
    assert result.ranks == {"adam": 1, "sgd": 2}
    assert result.pair("adam", "sgd").winner == "adam"


def test_compare_tolerates_a_missing_seed() -> None:
    adam, sgd = _noisy(0.90, 0.005, seed=6), _noisy(0.80, 0.005, seed=7)
    adam[3] = math.nan
    result = compare({"adam": adam, "sgd": sgd}, higher_is_better=True)
    assert result.intervals["adam"].n == SEEDS - 1
    assert result.pair("adam", "sgd").test.n == SEEDS - 1
    assert result.ranks == {"adam": 1, "sgd": 2}


def test_holm_keeps_close_calls_together() -> None:
    """Raw p below 0.05 for a over c and b over c, but not after Holm across the three pairs: one group."""
    base = np.array([0.90, 0.88, 0.91, 0.89, 0.92, 0.90])
    samples = {
        "a": base + 0.005 + 0.005 * np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]),
        "b": base,
        "c": base - 0.005 + 0.005 * np.array([1.0, 1.0, -1.0, -1.0, 0.0, 0.0]),
    }
    result = compare(samples, higher_is_better=True)
    assert result.pair("a", "c").test.p_value < 0.05 and result.pair("b", "c").test.p_value < 0.05
    assert result.pair("a", "c").p_adjusted > 0.05 and result.pair("b", "c").p_adjusted > 0.05
    assert result.ranks == {"a": 1, "b": 1, "c": 1}


def test_ranks_follow_the_paired_seeds_not_the_means() -> None:
    """a's mean is higher only because its NaN seed hides b's bad one; on the seeds both ran, b wins."""
    a = [math.nan, 0.80, 0.81, 0.82, 0.80, 0.81]
    b = [0.10, 0.85, 0.87, 0.86, 0.86, 0.85]
    result = compare({"a": a, "b": b}, higher_is_better=True)
    assert result.names == ("a", "b")
    assert result.pair("a", "b").winner == "b"
    assert result.ranks == {"a": 2, "b": 1}
    assert result.top_separated


def test_compare_needs_two_optimizers() -> None:
    with pytest.raises(ValueError, match="two optimizers"):
        compare({"adam": [0.9, 0.91]}, higher_is_better=True)


# --- gain from tuning --------------------------------------------------------------------------------------


def test_gain_is_the_interval_of_per_seed_improvements() -> None:
    default = [0.80, 0.82, math.nan, 0.79]
    tuned = [0.85, 0.88, 0.90, 0.83]
    result, by_hand = gain(default, tuned), interval([0.05, 0.06, 0.04])
    assert result.n == 3
    assert (result.mean, result.std, result.low, result.high) == pytest.approx(
        (by_hand.mean, by_hand.std, by_hand.low, by_hand.high)
    )


def test_gain_on_losses_is_positive_when_tuning_lowers_them() -> None:
    result = gain([0.50, 0.52, 0.49], [0.40, 0.41, 0.40], higher_is_better=False)
    assert result.mean == pytest.approx(0.1)
    assert result.low > 0


# --- tunability --------------------------------------------------------------------------------------------


def test_tunability_shares_and_lr_ranges_by_hand() -> None:
    values = [0.900, 0.895, 0.885, 0.870, 0.860, 0.850, 0.800, math.nan, 0.100]
    lrs = [1e-3, 3e-3, 3e-2, 1e-2, None, 0.3, 0.1, 1e-4, 1.0]
    # 8 trials with a value, best 0.900. Within 1 %: ≥ 0.891 → 0.900, 0.895 (0.885 just misses).
    # Within 5 %: ≥ 0.855 → also 0.885, 0.870 and 0.860 (no lr); 0.850 just misses.
    one, five = tunability(values, lrs, higher_is_better=True)
    assert (one.within, one.share, one.trials, one.lr_min, one.lr_max) == (0.01, 2 / 8, 2, 1e-3, 3e-3)
    assert (five.within, five.share, five.trials, five.lr_min, five.lr_max) == (0.05, 5 / 8, 5, 1e-3, 3e-2)


def test_tunability_of_losses_without_lrs() -> None:
    losses = [0.300, 0.302, 0.305, 0.330, 0.365, 0.500]
    # best 0.300; within 1 %: ≤ 0.303 → 2 of 6; within 20 %: ≤ 0.360 → 4 of 6
    one, twenty = tunability(losses, None, higher_is_better=False, within=(0.01, 0.2))
    assert (one.share, twenty.share) == (2 / 6, 4 / 6)
    assert one.lr_min is None and twenty.lr_max is None


# --- performance profiles ----------------------------------------------------------------------------------


def test_performance_profile_by_hand() -> None:
    times = {
        "mnist": {"adam": 10.0, "sgd": 25.0, "lion": 15.0},  # ratios 1, 2.5, 1.5
        "fashion": {"adam": 30.0, "sgd": 15.0, "lion": math.nan},  # 2, 1, inf (lion never reached it)
        "kmnist": {"adam": 8.0, "sgd": 8.0, "lion": 32.0},  # 1, 1, 4
        "cifar": {"adam": math.inf, "sgd": math.nan, "lion": math.nan},  # nobody: dropped
    }
    profile = performance_profile(times, taus=(1.0, 1.5, 2.0, 3.0, 4.0))

    assert profile.workloads == ("mnist", "fashion", "kmnist")
    assert profile.dropped == ("cifar",)
    assert profile.ratios["sgd"] == {"mnist": 2.5, "fashion": 1.0, "kmnist": 1.0}
    assert profile.ratios["lion"] == {"mnist": 1.5, "fashion": math.inf, "kmnist": 4.0}
    assert profile.rho == {
        "adam": pytest.approx((2 / 3, 2 / 3, 1.0, 1.0, 1.0)),
        "sgd": pytest.approx((2 / 3, 2 / 3, 2 / 3, 1.0, 1.0)),
        "lion": pytest.approx((0.0, 1 / 3, 1 / 3, 1 / 3, 2 / 3)),
    }
    assert profile.table() == {
        "adam": pytest.approx({1.0: 2 / 3, 1.5: 2 / 3, 2.0: 1.0, 4.0: 1.0}),
        "sgd": pytest.approx({1.0: 2 / 3, 1.5: 2 / 3, 2.0: 2 / 3, 4.0: 1.0}),
        "lion": pytest.approx({1.0: 0.0, 1.5: 1 / 3, 2.0: 1 / 3, 4.0: 2 / 3}),
    }


def test_performance_profile_rejects_non_positive_times() -> None:
    with pytest.raises(ValueError, match="positive"):
        performance_profile({"mnist": {"adam": 0.0, "sgd": 3.0}})
