"""The report's conclusions in sentences: per phase the groups, whether the two best are separated (and if
not, how many seeds might), what tuning bought, and how the published seed-table order fares. Each sentence
states only what the tests support."""

from __future__ import annotations

from itertools import pairwise

from sweeps.names import TUNED
from sweeps.report.evidence import LABELS, Evidence, PhaseEvidence
from sweeps.report.results import Results
from sweeps.report.stats import Comparison
from sweeps.report.tables import PUBLISHED_RANK, is_seed_setting


def verdict(results: Results, evidence: Evidence) -> list[str]:
    """The sentences, most important first."""
    lines = [line for phase in evidence.phases.values() for line in _phase(evidence, phase)]
    lines += _gains(results, evidence)
    published = _published_order(results, evidence)
    return lines + ([published] if published else [])


def groups(comparison: Comparison) -> str:
    """``1: adam, rmsprop · 3: sgd``, best group first, by mean within a group."""
    by_rank: dict[int, list[str]] = {}
    for name in comparison.names:
        by_rank.setdefault(comparison.ranks[name], []).append(name)
    return " · ".join(f"{rank}: {', '.join(names)}" for rank, names in sorted(by_rank.items()))


def _phase(evidence: Evidence, phase: PhaseEvidence) -> list[str]:
    label = LABELS[phase.phase]
    comparison = phase.comparison
    if comparison is None:  # one seed each: the answer says so, with the command that tests them
        return []
    test = evidence.test_name
    lines = [
        f"{label}: groups on {evidence.ranked_on} ({phase.split} split, {len(phase.seeds)} paired seeds,"
        f" {test}, Holm over {len(comparison.pairs)} pairs, α = {evidence.alpha:g}): {groups(comparison)}."
    ]
    smallest = 2 / 2 ** len(phase.seeds)
    if evidence.test == "wilcoxon" and smallest >= evidence.alpha:
        lines.append(
            f"{label}: with {len(phase.seeds)} seeds the Wilcoxon test's smallest p is {smallest:.3g}, not"
            f" below α = {evidence.alpha:g}: it can separate no pair; use the paired t-test or more seeds."
        )
    first, second = comparison.names[:2]
    pair = comparison.pair(first, second)
    gap = f"{first} − {second} = {pair.test.mean_difference:+.4f}, Holm p = {pair.p_adjusted:.3g}"
    if comparison.top_separated:
        return [*lines, f"{label}: {pair.winner} is ahead of the next best ({gap})."]
    if comparison.seeds_needed:
        why = (
            f"about {comparison.seeds_needed} paired seeds would separate them with 80 % power if the"
            " observed difference holds"
        )
    elif pair.test.mean_difference == 0:
        why = "their seeds give the same values"
    else:
        why = "more seeds than are worth training would be needed to separate them"
    return [*lines, f"{label}: {first} and {second} cannot be told apart ({gap}); {why}."]


def _gains(results: Results, evidence: Evidence) -> list[str]:
    """What tuning bought, by its paired gain's interval; an optimizer whose best search trial was its
    default kept the default, and its gain is zero by construction, not by test."""
    if not evidence.gains:
        return []
    kept = [n for n in evidence.gains if results.kept_default(n)]
    tested = {n: g for n, g in evidence.gains.items() if n not in kept}
    helped = [n for n, g in tested.items() if g.n > 1 and g.low > 0]
    hurt = [n for n, g in tested.items() if g.n > 1 and g.high < 0]
    unclear = [n for n in tested if n not in helped and n not in hurt]
    parts = [
        f"helped {', '.join(f'{n} ({tested[n].mean:+.4f})' for n in helped)}" if helped else "",
        f"hurt {', '.join(hurt)}" if hurt else "",
        f"made no difference the seeds can show for {', '.join(unclear)}" if unclear else "",
        f"found nothing better than the default for {', '.join(kept)}" if kept else "",
    ]
    return [f"Tuning (gain interval clear of 0): {'; '.join(p for p in parts if p)}."]


def _published_order(results: Results, evidence: Evidence) -> str | None:
    """The published order's consecutive steps, each as the seeds see it, for the phase that ran the
    seed table's setting (the retrained defaults, or a seed-table sweep's own trials)."""
    for name, entries in results.phases.items():
        phase = evidence.phases[name]
        if phase.comparison is None or name == TUNED or not is_seed_setting(results, entries):
            continue
        order = sorted((n for n in entries if n in PUBLISHED_RANK), key=PUBLISHED_RANK.__getitem__)
        steps = []
        for better, worse in pairwise(order):
            winner = phase.comparison.pair(better, worse).winner
            seen = "confirmed" if winner == better else "reversed" if winner == worse else "not separated"
            steps.append(f"{better} > {worse}: {seen}")
        return f"Published order, on these seeds ({LABELS[name].lower()}): {'; '.join(steps)}."
    return None
