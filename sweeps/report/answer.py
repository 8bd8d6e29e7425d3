"""The report's first lines: who leads, by how much (with the paired interval where there are seeds to pair),
how sure that is, and, where nothing could be tested, the command that would make it testable. A newcomer
reads these before any table, so they are the same, in the same order, on the terminal, in ``report.md``
and on the page."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from sweeps.engine.storage.urls import in_shell, is_default
from sweeps.report.evidence import LABELS, LEVEL, Evidence, aligned, final_of
from sweeps.report.results import Results
from sweeps.report.stats import best_first, interval

RETRAIN_SEEDS = 5
"""Seeds the suggested retrain uses: enough for a paired t-test to separate a clear gap, few enough to run."""


def answer(
    results: Results, evidence: Evidence, command: Sequence[str] = (), storage: str | None = None
) -> list[str]:
    """The leading sentences, most important first; ``command`` is the ``sweeps run`` arguments that made
    the sweep (spec file and overrides) in ``storage`` (default: the default storage), from which the
    suggested command is built."""
    name, phase = next(iter(evidence.phases.items()))
    order = best_first({n: found.mean for n, found in phase.ranked.items()}, results.higher_is_better)
    metric = evidence.ranked_on
    where = f"{LABELS[name].lower()}, {phase.split} split"
    if len(order) < 2:
        only = order[0] if order else "no optimizer"
        return [f"{only} is the only optimizer with a result ({where}): there is nothing to compare it with."]
    leader, runner = order[:2]
    entries = results.phases[name]
    values = aligned({k: entries[k] for k in (leader, runner)}, final_of(results.ranked_curve))
    sign = 1.0 if results.higher_is_better else -1.0
    found = interval(sign * (values[leader] - values[runner]), LEVEL)
    comparison = phase.comparison
    margin = (
        f"{leader} leads {runner} by {found.mean:.4f} {metric}"
        if round(found.mean, 4) > 0
        else f"{leader} and {runner} tie on {metric}"  # as far as the 4 digits shown tell
    )
    if comparison is None or found.n < 2:
        lead = f"{margin} on one seed each ({where})"
        return [f"{lead}: untested.", f"To rank them: {_retrain_command(command, storage)}"]
    lead = (
        f"{margin} [{LEVEL:.0%} interval of the difference {found.low:+.4f} to {found.high:+.4f}]"
        f" on {found.n} paired seeds ({where})"
    )
    pair = comparison.pair(leader, runner)
    tested = f"({evidence.test_name}, Holm p = {pair.p_adjusted:.3g})"
    if pair.winner == leader:
        return [f"{lead}: the lead is significant {tested}."]
    needed = comparison.seeds_needed
    more = f"; about {needed} paired seeds would separate them if the gap holds" if needed else ""
    return [f"{lead}: not significant {tested}{more}."]


def _retrain_command(command: Sequence[str], storage: str | None) -> str:
    """``sweeps run`` as the sweep was made, asking for retrains on several seeds, quoted: the sweep
    continues with them (a retrain always trains 3 or more seeds, so only a search-only sweep needs this).
    A sweep outside the default storage is named, or the command would start a new one there."""
    spec, *overrides = command or ["SPEC"]
    kept = [o for o in overrides if not o.startswith("study.retrain_seeds=")]
    text = shlex.join(["sweeps", "run", spec, *kept, f"study.retrain_seeds={RETRAIN_SEEDS}"])
    if storage is None or is_default(storage):
        return f"`{text}`"
    return in_shell(text, storage, quote="`")
