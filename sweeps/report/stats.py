"""The statistics behind a shoot-out report: intervals over seeds, paired tests between optimizers with Holm's
correction, group ranks, how many seeds a close race would need, tunability and performance profiles.

Every optimizer is retrained on the same list of seeds (seed i gives all of them the same initialisation and
data order), so per-seed results are paired: testing the per-seed differences cancels the seed-to-seed noise
that both optimizers share, which an unpaired test would count against the difference.

Pure functions over plain numbers (numpy, scipy.stats and the standard library only), so the report can use
them without a sweep, a store or a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal, TypeAlias

import numpy as np
from scipy import stats

Values: TypeAlias = Sequence[float] | np.ndarray
TestMethod = Literal["t", "wilcoxon"]

# Values whose spread is below this fraction of their size count as identical: scipy warns of cancellation.
_SAME = 1e-12
DEFAULT_TAUS = tuple(round(1.0 + 0.1 * i, 1) for i in range(31))
TABLE_TAUS = (1.0, 1.5, 2.0, 4.0)


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its confidence interval; bounds (and std) are NaN with fewer than two seeds,
    which leave no spread to estimate."""

    mean: float
    std: float
    low: float
    high: float
    n: int
    level: float


@dataclass(frozen=True)
class PairedTest:
    """A test of a − b over the seeds both sides ran; ``mean_difference`` keeps the direction the p-value
    drops."""

    statistic: float
    p_value: float
    n: int
    method: str
    mean_difference: float


@dataclass(frozen=True)
class Pair:
    """Two optimizers, ``a`` ahead of ``b`` by mean, their test of a − b, and the significantly better one
    after Holm (None when the seeds cannot tell them apart)."""

    a: str
    b: str
    test: PairedTest
    p_adjusted: float
    winner: str | None


@dataclass(frozen=True)
class Comparison:
    """A shoot-out's verdict: ``names`` best mean first, intervals, every pair, and group ranks in which
    optimizers that cannot be told apart share a rank."""

    names: tuple[str, ...]
    intervals: Mapping[str, Interval]
    pairs: tuple[Pair, ...]
    ranks: Mapping[str, int]
    higher_is_better: bool
    alpha: float
    top_separated: bool
    seeds_needed: int | None

    def pair(self, first: str, second: str) -> Pair:
        """The pair of these two, in whichever order they are named."""
        for pair in self.pairs:
            if {pair.a, pair.b} == {first, second}:
                return pair
        raise KeyError(f"no pair of {first!r} and {second!r}")


@dataclass(frozen=True)
class Tunability:
    """The share of search trials within ``within`` (relative) of the optimizer's own best, and the
    learning rates they span: how forgiving the optimizer is to tune."""

    within: float
    share: float
    trials: int
    lr_min: float | None
    lr_max: float | None


@dataclass(frozen=True)
class Profile:
    """A performance profile: per optimizer and workload the time ratio to the fastest (inf: never reached
    the target), and per optimizer ρ(τ) over ``taus``; ``dropped`` names workloads nobody reached."""

    taus: tuple[float, ...]
    ratios: Mapping[str, Mapping[str, float]]
    rho: Mapping[str, tuple[float, ...]]
    workloads: tuple[str, ...]
    dropped: tuple[str, ...]

    def table(self, taus: Sequence[float] = TABLE_TAUS) -> dict[str, dict[float, float]]:
        """ρ at a few chosen τ, rows optimizers and columns τ, for a report's table."""
        return {name: {tau: _share_within(row, tau) for tau in taus} for name, row in self.ratios.items()}


def interval(values: Values, level: float = 0.95) -> Interval:
    """The mean over seeds with a Student t ``level`` confidence interval; NaN seeds (never reached a target)
    drop. Not a bootstrap: on the 3 to 30 seeds of a shoot-out its interval is too narrow (it never reaches
    beyond the values seen), while t widens as seeds get fewer.
    """
    if not 0 < level < 1:
        raise ValueError(f"confidence level must lie strictly between 0 and 1, got {level}")
    x = _drop_nan(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0, level)
    if _constant(x):
        bound = float(x[0]) if n > 1 else math.nan
        return Interval(float(x[0]), 0.0 if n > 1 else math.nan, bound, bound, n, level)
    mean, std = float(np.mean(x)), float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return Interval(mean, std, mean - half, mean + half, n, level)


def paired_test(a: Values, b: Values, method: TestMethod = "t") -> PairedTest:
    """Whether a and b differ, from their per-seed differences; seeds missing (NaN) on either side drop.

    Paired t is the default because the exact two-sided Wilcoxon p-value cannot go below 2 / 2**n: 0.0625
    with n ≤ 5, so on few seeds Wilcoxon can never separate two optimizers at 0.05 however clear the gap,
    and Holm's correction across many pairs only raises the bar. Wilcoxon is there for many seeds with
    outliers. All-zero differences give p = 1 (scipy returns NaN or warns); constant non-zero ones give an
    infinite t and p = 0 (scipy warns of cancellation).
    """
    if method not in ("t", "wilcoxon"):
        raise ValueError(f"paired test method must be 't' or 'wilcoxon', got {method!r}")
    x, y = _paired(a, b)
    d = x - y
    n = len(d)
    if n == 0:
        return PairedTest(math.nan, math.nan, 0, method, math.nan)
    if not d.any():
        return PairedTest(0.0, 1.0, n, method, 0.0)
    mean_difference = float(np.mean(d))
    if method == "wilcoxon":
        result = stats.wilcoxon(x, y)
        return PairedTest(float(result.statistic), float(result.pvalue), n, method, mean_difference)
    if n < 2:
        return PairedTest(math.nan, math.nan, n, method, mean_difference)
    if _constant(d):
        return PairedTest(math.copysign(math.inf, d[0]), 0.0, n, method, float(d[0]))
    result = stats.ttest_rel(x, y)
    return PairedTest(float(result.statistic), float(result.pvalue), n, method, mean_difference)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values in the given order: controls the chance of any false separation
    across all pairs, uniformly more powerful than Bonferroni. Written here because scipy has no Holm.

    NaN p-values (untestable pairs) stay NaN and do not count as tests.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    steps = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted.tolist()


def compare(
    samples: Mapping[str, Values], higher_is_better: bool, alpha: float = 0.05, method: TestMethod = "t"
) -> Comparison:
    """Per-optimizer intervals, a paired test for every pair with Holm across all of them, and group ranks.

    rank(i) = 1 + the number of optimizers significantly better than i (Holm-adjusted p < alpha, and a
    paired mean difference in their favour), so optimizers the seeds cannot tell apart share a rank
    ("1", "1", "3"); written by hand because scipy has no such ranking. Because each pair has its own
    noise and counts only the seeds both ran, a rank need not follow the order of the means. When the top
    two by mean are not separated, ``seeds_needed`` says how many paired seeds would separate them (see
    :func:`seeds_needed`).
    """
    if len(samples) < 2:
        raise ValueError(f"compare needs at least two optimizers, got {len(samples)}")
    intervals = {name: interval(values) for name, values in samples.items()}
    sign = 1.0 if higher_is_better else -1.0
    names = tuple(best_first({name: found.mean for name, found in intervals.items()}, higher_is_better))
    tests = [(a, b, paired_test(samples[a], samples[b], method)) for a, b in combinations(names, 2)]
    adjusted = holm([test.p_value for _, _, test in tests])
    pairs = tuple(
        Pair(a, b, test, p, _winner(a, b, test, p, alpha, sign))
        for (a, b, test), p in zip(tests, adjusted, strict=True)
    )
    ranks = {
        name: 1 + sum(p.winner not in (None, name) and name in (p.a, p.b) for p in pairs) for name in names
    }
    top_separated = pairs[0].winner is not None
    needed = None if top_separated else seeds_needed(samples[names[0]], samples[names[1]], alpha)
    return Comparison(names, intervals, pairs, ranks, higher_is_better, alpha, top_separated, needed)


def best_first(means: Mapping[str, float], higher_is_better: bool) -> list[str]:
    """The names by their means, best first; those without one (NaN) last."""
    sign = 1.0 if higher_is_better else -1.0
    return sorted(means, key=lambda name: (math.isnan(means[name]), -sign * means[name]))


def seeds_needed(
    a: Values, b: Values, alpha: float = 0.05, power: float = 0.8, cap: int = 1000
) -> int | None:
    """The number of paired seeds at which a two-sided paired t-test at ``alpha`` would separate a and b
    with probability ``power``, if their per-seed differences keep the observed effect d = mean / sd.

    Power at n is that of the noncentral t with n − 1 degrees of freedom and noncentrality d·√n; n is
    searched upward from 2. None when the observed mean difference is 0 (no n separates them), there are
    fewer than two paired seeds, or ``cap`` seeds are not enough; 2 when the gap is the same on every seed.
    The observed d from a handful of seeds is itself noisy, so this is a guide to the order of magnitude,
    and it ignores the Holm correction.
    """
    x, y = _paired(a, b)
    d = x - y
    if len(d) < 2 or not d.any():
        return None
    if _constant(d):
        return 2
    effect = abs(float(np.mean(d))) / float(np.std(d, ddof=1))
    n = np.arange(2, cap + 1)
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    noncentrality = effect * np.sqrt(n)
    reached = stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)
    enough = np.flatnonzero(reached >= power)
    return int(n[enough[0]]) if len(enough) else None


def tunability(
    values: Values,
    lrs: Sequence[float | None] | None,
    higher_is_better: bool,
    within: Sequence[float] = (0.01, 0.05),
) -> tuple[Tunability, ...]:
    """Per relative distance in ``within``, the share of one optimizer's search trials that land that close
    to its own best, and their learning-rate range (Choi et al. 2019; Schmidt et al. 2021): an optimizer
    whose good trials are many and span a wide lr range is cheap to tune, whatever its best.

    Close means value ≥ best − w·|best| when higher is better, value ≤ best + w·|best| otherwise (the
    |best| keeps the direction for negative metrics). NaN values (failed trials) drop; lrs that are None
    or NaN count for the share but not the range, which is None when no close trial has one.
    """
    v = np.asarray(values, dtype=float)
    lr = np.full(v.shape, math.nan) if lrs is None else np.array(lrs, dtype=float)
    if lr.shape != v.shape:
        raise ValueError(f"tunability needs one lr per trial, got {len(lr)} for {len(v)} trials")
    if any(w < 0 for w in within):
        raise ValueError(f"relative distances must be non-negative, got {tuple(within)}")
    kept = ~np.isnan(v)
    v, lr = v[kept], lr[kept]
    if not len(v):
        return tuple(Tunability(w, math.nan, 0, None, None) for w in within)
    best = float(v.max() if higher_is_better else v.min())
    result = []
    for w in within:
        close = v >= best - w * abs(best) if higher_is_better else v <= best + w * abs(best)
        known = lr[close & ~np.isnan(lr)]
        low, high = (float(known.min()), float(known.max())) if len(known) else (None, None)
        result.append(Tunability(w, float(close.mean()), int(close.sum()), low, high))
    return tuple(result)


def gain(
    default_values: Values, tuned_values: Values, level: float = 0.95, higher_is_better: bool = True
) -> Interval:
    """What tuning bought, per seed (tuned − default, sign flipped for losses so a positive gain always means
    tuning helped), with its interval: pairing on seeds removes the noise the two runs of a seed share.
    Seeds missing on either side drop."""
    x, y = _paired(tuned_values, default_values)
    return interval((x - y) if higher_is_better else (y - x), level)


def performance_profile(
    times: Mapping[str, Mapping[str, float]], taus: Sequence[float] = DEFAULT_TAUS
) -> Profile:
    """A Dolan–Moré performance profile (as in AlgoPerf) of times to target, per workload then optimizer.

    On each workload an optimizer's ratio is its time over the fastest one's; ρ(τ) is the share of
    workloads on which its ratio is ≤ τ, so ρ(1) is how often it wins and ρ at large τ how often it gets
    there at all. A NaN, infinite or missing time means the target was never reached (ratio inf); a
    workload nobody reached has no fastest time and is dropped (listed in ``dropped``). Written by hand
    because scipy has no performance profile.
    """
    optimizers = list(dict.fromkeys(name for row in times.values() for name in row))
    ratios: dict[str, dict[str, float]] = {name: {} for name in optimizers}
    workloads, dropped = [], []
    for workload, row in times.items():
        t = np.array([row.get(name, math.nan) for name in optimizers], dtype=float)
        t[np.isnan(t)] = math.inf
        if np.any(t <= 0):
            raise ValueError(f"times to target must be positive, got {dict(row)} on {workload!r}")
        best = t.min()
        if math.isinf(best):
            dropped.append(workload)
            continue
        workloads.append(workload)
        for name, ratio in zip(optimizers, t / best, strict=True):
            ratios[name][workload] = float(ratio)
    rho = {name: tuple(_share_within(row, tau) for tau in taus) for name, row in ratios.items()}
    return Profile(tuple(taus), ratios, rho, tuple(workloads), tuple(dropped))


def _drop_nan(values: Values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"expected one value per seed, got an array of shape {x.shape}")
    return x[~np.isnan(x)]


def _paired(a: Values, b: Values) -> tuple[np.ndarray, np.ndarray]:
    """a and b over the seeds both have: a seed one side lacks is no pair."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"paired samples need one value per seed on both sides, got {x.shape} and {y.shape}")
    both = ~(np.isnan(x) | np.isnan(y))
    return x[both], y[both]


def _constant(x: np.ndarray) -> bool:
    return bool(np.ptp(x) <= _SAME * np.max(np.abs(x)))


def _winner(a: str, b: str, test: PairedTest, p_adjusted: float, alpha: float, sign: float) -> str | None:
    if not p_adjusted < alpha or test.mean_difference == 0:
        return None
    return a if sign * test.mean_difference > 0 else b


def _share_within(ratios: Mapping[str, float], tau: float) -> float:
    if not ratios:
        return math.nan
    return sum(ratio <= tau for ratio in ratios.values()) / len(ratios)
