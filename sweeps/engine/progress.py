"""The live view of a sweep (``sweeps run`` while it runs, ``sweeps status`` later): trials by state against
the budget, the best so far, and what each worker is running, read from the storage."""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from rich.console import Group
from rich.table import Table

from sweeps.config.sweep import SweepConfig
from sweeps.names import CONFIG_ATTR, SEARCH, WORKER_ATTR, phase


def summary(study: optuna.Study, sweep: SweepConfig) -> Group:
    """Trials by state against the budget, the best so far, and what each worker is running."""
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state for t in trials)
    budget = sweep.study.n_trials
    if budget and sweep.study.per_optimizer:
        budget *= len(sweep.search.optimizers)
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{sweep.study.name}[/]",
        f"done {counts[TrialState.COMPLETE]}",
        f"pruned {counts[TrialState.PRUNED]}",
        f"failed {counts[TrialState.FAIL]}",
        f"running {counts[TrialState.RUNNING]}",
        f"waiting {counts[TrialState.WAITING]}",
        f"budget {budget if budget else '—'}",
        *_retrains(trials, sweep),
    )
    parts: list = [head]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete and len(study.directions) == 1:  # the trials in hand, not another storage read
        best = (max if study.direction == StudyDirection.MAXIMIZE else min)(complete, key=lambda t: t.value)
        parts.append(f"best: {sweep.study.metric} {best.value:.4f} in trial {best.number}: {_config(best)}")
    running = Table("worker", "trial", "config", box=None)
    for t in trials:
        if t.state == TrialState.RUNNING:
            running.add_row(str(t.user_attrs.get(WORKER_ATTR, "?")), str(t.number), _config(t))
    if running.row_count:
        parts.append(running)
    return Group(*parts)


def _retrains(trials: list[FrozenTrial], sweep: SweepConfig) -> list[str]:
    """``retrained k/n`` once the search is over: n is a default and a tuned trial per optimizer."""
    retrains = [t for t in trials if phase(t) != SEARCH]
    if not sweep.study.retrain_seeds or not retrains:
        return []
    done = sum(t.state == TrialState.COMPLETE for t in retrains)
    return [f"retrained {done}/{2 * len(sweep.search.optimizers)}"]


def _config(trial: FrozenTrial) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in trial.user_attrs.get(CONFIG_ATTR, {}).items()
    )
