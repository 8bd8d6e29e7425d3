"""What a sweep's seeds support, computed once from its results: per optimizer and phase the intervals of
final and best accuracy and loss and of the time to a target, group ranks from paired tests, the gain from
tuning and how easily each optimizer is tuned. Tables, figures and the verdict read it; nothing here formats.

Seeds are matched by number: the engine trains every optimizer of a phase on the same list of seeds, so the
values of seed i are a pair (the same initialisation and data order), and a seed one optimizer lacks is no
pair. Intervals are Student t (``stats.interval`` says why not the bootstrap on a few seeds).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from sweeps.names import DEFAULT, SEARCH, TUNED
from sweeps.report.results import Entry, Results, measured_on
from sweeps.report.stats import (
    Comparison,
    Interval,
    TestMethod,
    Tunability,
    compare,
    gain,
    interval,
    tunability,
)

LEVEL = 0.95
WITHIN = (0.01, 0.05)
TARGET_SHARE = 0.95
TEST_NAMES = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}
LABELS = {TUNED: "Tuned", DEFAULT: "Default", SEARCH: "Best search trial"}
"""Each phase as the sentences name it."""
K = TypeVar("K")


@dataclass(frozen=True)
class PhaseEvidence:
    """One phase (tuned, default or search): where it was measured, the seeds it ran, per optimizer and
    quantity an interval, the interval of the quantity optimizers are ranked on, and, with two optimizers
    and at least two seeds, their comparison on it."""

    phase: str
    split: str
    seeds: tuple[int, ...]
    intervals: Mapping[str, Mapping[str, Interval]]
    ranked: Mapping[str, Interval]
    comparison: Comparison | None


@dataclass(frozen=True)
class Evidence:
    """Everything the report states about confidence, with the settings it was computed under."""

    ranked_on: str
    higher_is_better: bool
    alpha: float
    test: TestMethod
    target: float
    phases: Mapping[str, PhaseEvidence]
    gains: Mapping[str, Interval]
    tunability: Mapping[str, tuple[Tunability, ...]]
    searched: Mapping[str, int]

    @property
    def quantities(self) -> tuple[str, ...]:
        return (*QUANTITIES, seconds_to(self.target))

    @property
    def test_name(self) -> str:
        return TEST_NAMES[self.test]


def final_of(curve: str) -> Callable[[Entry], np.ndarray]:
    return lambda e: e.column(curve, e.epochs)


QUANTITIES: Mapping[str, Callable[[Entry], np.ndarray]] = {
    "final acc": final_of("val_acc"),
    "best acc": lambda e: e.best("val_acc", higher_is_better=True),
    "final loss": final_of("val_loss"),
    "best loss": lambda e: e.best("val_loss", higher_is_better=False),
}
"""Per-seed quantities every optimizer gets an interval of; the time to the target is added per report."""


def seconds_to(target: float) -> str:
    return f"s to {target:.2f}"


def target_accuracy(results: Results) -> float:
    """95 % of the best final mean accuracy, floored to 0.01: near enough the best that reaching it means
    something, low enough that the good optimizers all do, so their times compare."""
    finals = [interval(e.column("val_acc", e.epochs)).mean for e in results.headline.values()]
    finals = [f for f in finals if not math.isnan(f)]
    return math.floor(max(finals) * TARGET_SHARE * 100) / 100 if finals else float("nan")


def aligned(entries: Mapping[K, Entry], values: Callable[[Entry], np.ndarray]) -> dict[K, np.ndarray]:
    """Per entry, ``values`` over the union of the entries' seeds in seed order (NaN where missing)."""
    by_seed = {key: entry.by_seed(values(entry)) for key, entry in entries.items()}
    seeds = sorted({seed for row in by_seed.values() for seed in row})
    return {key: np.array([row.get(s, math.nan) for s in seeds]) for key, row in by_seed.items()}


def band(entry: Entry, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per epoch, ``metric``'s mean over the seeds and its interval's bounds (NaN with one seed): the
    learning curves' bands. A curve the module never logged is all NaN: an empty line, without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        found = [interval(entry.column(metric, e), LEVEL) for e in range(1, entry.epochs + 1)]
    return (
        np.array([f.mean for f in found]),
        np.array([f.low for f in found]),
        np.array([f.high for f in found]),
    )


def weigh(
    results: Results, target: float | None = None, alpha: float = 0.05, test: TestMethod = "t"
) -> Evidence:
    """The evidence of a sweep; ``target`` accuracy defaults to :func:`target_accuracy`."""
    target = target_accuracy(results) if target is None else target
    ranked = final_of(results.ranked_curve)
    higher = results.higher_is_better
    quantities = {**QUANTITIES, seconds_to(target): lambda e: e.seconds_to_each(target)}
    phases = {}
    for name, entries in results.phases.items():
        samples = {q: aligned(entries, values) for q, values in quantities.items()}
        ranks = aligned(entries, ranked)
        paired = len(ranks) > 1 and max(e.seeds for e in entries.values()) > 1
        phases[name] = PhaseEvidence(
            name,
            measured_on(results.sweep, name),
            tuple(sorted({s for e in entries.values() for s in e.seed_ids})),
            {o: {q: interval(samples[q][o], LEVEL) for q in quantities} for o in entries},
            {o: interval(ranks[o], LEVEL) for o in entries},
            compare(ranks, higher, alpha, test) if paired else None,
        )
    gains = {}
    for name in (n for n in results.tuned if n in results.default):
        default, tuned = aligned({0: results.default[name], 1: results.tuned[name]}, ranked).values()
        gains[name] = gain(default, tuned, LEVEL, higher)
    searched, tunable = _tunability(results)
    return Evidence(
        f"final {results.ranked_curve}", higher, alpha, test, target, phases, gains, tunable, searched
    )


def _tunability(results: Results) -> tuple[dict[str, int], dict[str, tuple[Tunability, ...]]]:
    """Per optimizer with a completed search trial: how many trials spent its budget, and the share of them
    within 1 % and 5 % of its best. A pruned or failed trial is a miss: it counts, and lands nowhere."""
    miss = -math.inf if results.higher_is_better else math.inf
    searched, found = {}, {}
    for name in results.sweep.search.optimizers:
        mine = [t for t in results.trials if t.optimizer == name]
        if not any(not math.isnan(t.value) for t in mine):
            continue
        values = [miss if math.isnan(t.value) else t.value for t in mine]
        searched[name] = len(mine)
        found[name] = tunability(values, [t.lr for t in mine], results.higher_is_better, WITHIN)
    return searched, found
