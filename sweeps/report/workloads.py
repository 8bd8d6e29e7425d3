"""Several sweeps compared as workloads, as AlgoPerf does: on each, every optimizer's time to that workload's
own target accuracy, and over all of them a performance profile — for each optimizer, the share of workloads
on which it gets to the target within a factor τ of the fastest.

A workload is one sweep (one data set, network and budget); its target is that sweep's (``--target-acc``, or
95 % of its best tuned mean). An optimizer's time on a workload is the median over its seeds of the training
seconds to the target, a seed that never gets there counting as infinitely slow, so an optimizer that misses
on half its seeds or more never reaches that workload's target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweeps.names import SEARCH, TUNED
from sweeps.report.evidence import Evidence
from sweeps.report.results import Entry, Results
from sweeps.report.stats import TABLE_TAUS, Profile, performance_profile
from sweeps.report.tables import Report
from sweeps.report.verdict import groups


@dataclass(frozen=True)
class Workload:
    """One sweep of the comparison, with what its seeds support."""

    name: str
    results: Results
    evidence: Evidence

    @property
    def times(self) -> dict[str, float]:
        """Per optimizer, its headline entry's (tuned where retrained) time to this workload's target."""
        return {o: time_to_target(e, self.evidence.target) for o, e in self.results.headline.items()}


def time_to_target(entry: Entry, target: float) -> float:
    """Median training seconds to ``target`` over the seeds, never reaching it counting as infinite."""
    times = entry.seconds_to_each(target)
    return float(np.median(np.where(np.isnan(times), math.inf, times)))


def profile(workloads: Sequence[Workload]) -> Profile:
    """The performance profile of the workloads' headline entries."""
    return performance_profile({w.name: w.times for w in workloads})


def workload_table(workloads: Sequence[Workload], found: Profile) -> Report:
    """Per workload: data set, split, seeds, target, the fastest optimizer and its time, and the groups."""
    display, rows = [], []
    for w in workloads:
        entries = w.results.headline
        times = w.times
        fastest = min(times, key=times.__getitem__)
        reached = math.isfinite(times[fastest])
        phase = w.evidence.phases.get(TUNED if w.results.tuned else SEARCH)
        ranked = groups(phase.comparison) if phase and phase.comparison else "untested (one seed)"
        seeds = max(e.seeds for e in entries.values())
        split = phase.split if phase else next(iter(entries.values())).split
        display.append(
            {
                "workload": w.name,
                "data set": w.results.sweep.data.label,
                "split": split,
                "seeds": str(seeds),
                "target acc": f"{w.evidence.target:.2f}",
                "fastest": fastest if reached else "— (nobody reached it)",
                "seconds": f"{times[fastest]:.1f}" if reached else "—",
                "groups": ranked,
            }
        )
        rows.append(
            {
                "workload": w.name,
                "dataset": w.results.sweep.data.label,
                "split": split,
                "seeds": seeds,
                "target_acc": w.evidence.target,
                "fastest": fastest if reached else None,
                "seconds": times[fastest],
                "in_profile": w.name in found.workloads,
                "groups": ranked,
            }
        )
    notes = (
        "Each workload is one sweep; its target is its own (95 % of its best tuned mean final accuracy,"
        " floored to 0.01, unless --target-acc). seconds: the median over seeds of the training time to"
        " the target, a seed that never reaches it counting as infinite.",
        "groups: the workload's group ranks (see its own report for the test and the seeds).",
    )
    return Report("workloads", "Workloads", pd.DataFrame(display), pd.DataFrame(rows), notes)


def profile_table(found: Profile) -> Report:
    """Per optimizer, ρ(τ) at a few τ and its time ratio to the fastest on each workload."""
    at = found.table(TABLE_TAUS)
    display, rows = [], []
    for name, ratios in found.ratios.items():
        shown = {"optimizer": name} | {f"ρ({tau:g})": f"{at[name][tau]:.2f}" for tau in TABLE_TAUS}
        row: dict[str, object] = {"optimizer": name} | {f"rho_{tau:g}": at[name][tau] for tau in TABLE_TAUS}
        for workload, ratio in ratios.items():
            shown[f"× on {workload}"] = f"{ratio:.2f}" if math.isfinite(ratio) else "never"
            row[f"ratio_{workload}"] = ratio
        display.append(shown)
        rows.append(row)
    notes = [
        f"ρ(τ): the share of the {len(found.workloads)} workloads on which the optimizer reached the target"
        " within τ times the fastest optimizer's time; ρ(1) is how often it was fastest, ρ at large τ how"
        " often it got there at all. × on a workload: its time over the fastest's (never: the median seed"
        " did not reach the target). Split and seeds of each workload: the Workloads table.",
    ]
    if found.dropped:
        notes.append(f"Left out, no optimizer reached its target: {', '.join(found.dropped)}.")
    return Report("profile", "Performance profile", pd.DataFrame(display), pd.DataFrame(rows), tuple(notes))
