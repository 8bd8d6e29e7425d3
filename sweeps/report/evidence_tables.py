"""The tables of the evidence: per phase the intervals of every quantity and the pairwise tests behind the
group ranks, and per optimizer how easily it is tuned. Display cells and CSV numbers, like ``tables``."""

from __future__ import annotations

import math

import pandas as pd

from sweeps.names import DEFAULT, SEARCH, TUNED
from sweeps.report.evidence import LEVEL, WITHIN, Evidence, PhaseEvidence
from sweeps.report.results import Results, measured_on
from sweeps.report.stats import Comparison, Tunability
from sweeps.report.tables import Report, cell, group_rule, numbers

PHASES = {
    TUNED: "Tuned (each optimizer's best search config, retrained)",
    DEFAULT: "Default (each optimizer's untuned preset, retrained)",
    SEARCH: "Best search trial per optimizer",
}


def interval_table(evidence: Evidence, phase: PhaseEvidence) -> Report:
    """Per optimizer of one phase, mean ± std [interval] of final and best accuracy and loss and of the
    seconds to the target accuracy."""
    k = len(phase.seeds)
    display, rows = [], []
    for name, found in phase.intervals.items():
        shown = {"optimizer": name}
        row: dict[str, object] = {"optimizer": name, "phase": phase.phase, "split": phase.split, "seeds": k}
        for quantity in evidence.quantities:
            seconds = quantity.startswith("s to")
            shown[quantity] = cell(found[quantity], k, digits=1 if seconds else 4)
            row |= numbers(quantity.replace(" ", "_"), found[quantity])
        display.append(shown)
        rows.append(row)
    notes = (
        f"mean ± std [{LEVEL:.0%} Student t interval] over the seeds {', '.join(map(str, phase.seeds))},"
        f" measured on the {phase.split} split; (n/k): only n of the k seeds have a value (for the time:"
        f" reached {evidence.target:.2f} val accuracy).",
        "final: the last epoch; best: the best epoch of each seed (picked on the same split, so optimistic).",
    )
    title = f"{PHASES[phase.phase]}: intervals ({phase.split} split, {k} paired seeds)"
    return Report(f"intervals_{phase.phase}", title, pd.DataFrame(display), pd.DataFrame(rows), notes)


def pairs_table(evidence: Evidence, phase: PhaseEvidence, comparison: Comparison) -> Report:
    """Every pair of one phase's optimizers (its ``comparison``): the paired difference of the ranked
    quantity, the test, its Holm-adjusted p-value and whether the seeds separate them."""
    display, rows = [], []
    for pair in comparison.pairs:
        test = pair.test
        same = {"a": pair.a, "b": pair.b, "split": phase.split}
        display.append(
            {
                **same,
                "seeds": str(test.n),
                "mean a − b": f"{test.mean_difference:+.4f}",
                "statistic": f"{test.statistic:.3g}",
                "p": f"{test.p_value:.3g}",
                "Holm p": f"{pair.p_adjusted:.3g}",
                "verdict": f"{pair.winner} better" if pair.winner else "not separated",
            }
        )
        rows.append(
            {
                "phase": phase.phase,
                **same,
                "seeds": test.n,
                "mean_difference": test.mean_difference,
                "test": test.method,
                "statistic": test.statistic,
                "p_value": test.p_value,
                "p_holm": pair.p_adjusted,
                "winner": pair.winner,
            }
        )
    notes = (f"a − b: the mean over paired seeds of {evidence.ranked_on}; {group_rule(evidence, phase)}",)
    title = f"{PHASES[phase.phase]}: pairwise tests"
    return Report(
        f"pairs_{phase.phase}", title, pd.DataFrame(display), pd.DataFrame(rows), notes, terminal=False
    )


def tunability_table(results: Results, evidence: Evidence) -> Report:
    """Per optimizer: its search trials, the share of them within 1 % and 5 % of its own best and their
    learning rates, and (with retrains) the gain from tuning."""
    split = measured_on(results.sweep, SEARCH)
    metric = results.sweep.study.metric
    display, rows = [], []
    for name, levels in evidence.tunability.items():
        total = evidence.searched[name]
        shown = {"optimizer": name, "trials": str(total)}
        row: dict[str, object] = {"optimizer": name, "split": split, "trials": total}
        for level in levels:
            pct = f"{level.within:.0%}"
            shown[f"within {pct}"] = f"{level.share:.0%} ({level.trials}/{total})"
            shown[f"lr within {pct}"] = _lr_range(level)
            key = f"within_{round(level.within * 100)}pct"
            row |= {key: level.share, f"{key}_trials": level.trials}
            row |= {f"{key}_lr_min": level.lr_min, f"{key}_lr_max": level.lr_max}
        gained = evidence.gains.get(name)
        if evidence.gains:
            seeds = results.sweep.study.retrain_seeds
            shown["gain default → tuned (test)"] = cell(gained, seeds, std=False) if gained else "—"
            row |= numbers("gain", gained) if gained else {}
        display.append(shown)
        rows.append(row)
    shares = " and ".join(f"{w:.0%}" for w in WITHIN)
    notes = [
        f"Search trials that spent budget, scored by {metric} on the {split} split: the share within {shares}"
        " of the optimizer's own best (relative), and the learning rates of those trials. Pruned and failed"
        " trials count as misses. Many close trials over a wide lr range: easy to tune.",
    ]
    if evidence.gains:
        notes.append(
            f"gain: tuned − default {evidence.ranked_on} per paired test-split seed, mean"
            f" [{LEVEL:.0%} t interval]; > 0 means tuning helped."
        )
    title = f"Tunability (search trials, {split} split)"
    return Report("tunability", title, pd.DataFrame(display), pd.DataFrame(rows), tuple(notes))


def _lr_range(level: Tunability) -> str:
    if level.lr_min is None or level.lr_max is None:
        return "—"
    if math.isclose(level.lr_min, level.lr_max):
        return f"{level.lr_min:.3g}"
    return f"{level.lr_min:.3g} – {level.lr_max:.3g}"
