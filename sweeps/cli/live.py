"""The live view of a sweep (``sweeps run`` while it runs, ``sweeps status`` later): trials by state against
the budget, the best so far, and what each worker is running, read from the storage. The engine says what
happens (:class:`sweeps.engine.launcher.View`); how it looks is decided here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sweeps.config.sweep import SweepConfig
from sweeps.engine.launcher import JobStates
from sweeps.engine.study import best_search, fail_reason
from sweeps.names import CONFIG_ATTR, PREEMPTED_ATTR, SEARCH, WORKER_ATTR, phase, trial_optimizer


def summary(study: optuna.Study, sweep: SweepConfig, jobs: Sequence[JobStates] = ()) -> Group:
    """Trials by state against the budget, why trials failed, trials preempted, the best search trial so far,
    what each worker is running and the scheduler's jobs. Read from the trials in hand (one storage read per
    refresh). Lines wrap at spaces in a narrow terminal, and optimizer names are never cut."""
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state for t in trials)
    budget = sweep.study.n_trials
    if budget and sweep.study.per_optimizer:
        budget *= len(sweep.search.optimizers)
    head = [
        f"[bold]{sweep.study.name}[/]",
        f"done {counts[TrialState.COMPLETE]}",
        f"pruned {counts[TrialState.PRUNED]}",
        f"failed {counts[TrialState.FAIL]}",
        f"running {counts[TrialState.RUNNING]}",
        f"waiting {counts[TrialState.WAITING]}",
        f"budget {budget if budget else '—'}",
        *_retrains(trials, sweep),
    ]
    parts: list = [Text.from_markup("  ".join(head))]
    parts += _failures(trials)
    preempted = sum(t.user_attrs.get(PREEMPTED_ATTR, 0) for t in trials)
    if preempted:
        parts.append(Text(f"preempted {preempted}× (given back at an epoch end and resumed: not failures)"))
    best = best_search(study, trials)
    if best is not None:
        split = "test split" if sweep.data.val_split == "test" else "hold-out of the train split"
        found = f"{sweep.study.metric} {best.value:.4f} in trial {best.number}: {_config(best)}"
        parts.append(Text(f"best (search, {split}): {found}"))
    running = Table("worker", "trial", "optimizer", "config", box=None)
    running.columns[2].no_wrap = True
    running.columns[2].min_width = max((len(n) for n in sweep.search.optimizers), default=9)
    for t in trials:
        if t.state == TrialState.RUNNING:
            worker = str(t.user_attrs.get(WORKER_ATTR, "?"))
            running.add_row(worker, str(t.number), trial_optimizer(t), _config(t, skip="optimizer"))
    if running.row_count:
        parts.append(running)
    for job in jobs:
        states = ", ".join(f"{n} {state}" for state, n in job.counts.items())
        parts.append(Text(f"{job.name}: {states or job.note}"))
    return Group(*parts)


def _failures(trials: list[FrozenTrial]) -> list[Text]:
    """Why trials failed: the last failure's reason, then each reason with its count (most common first)."""
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if not failed:
        return []
    last = max(failed, key=lambda t: t.datetime_complete or t.datetime_start or datetime.min)
    lines = [Text(f"last failure (trial {last.number}): {fail_reason(last)}")]
    for reason, n in Counter(fail_reason(t) for t in failed).most_common(5):
        lines.append(Text(f"  {n}× {reason}"))
    return lines


def _retrains(trials: list[FrozenTrial], sweep: SweepConfig) -> list[str]:
    """``retrained k/n`` once the search is over: n is a default and a tuned trial per optimizer."""
    retrains = [t for t in trials if phase(t) != SEARCH]
    if not sweep.study.retrain_seeds or not retrains:
        return []
    done = sum(t.state == TrialState.COMPLETE for t in retrains)
    return [f"retrained {done}/{2 * len(sweep.search.optimizers)}"]


def _config(trial: FrozenTrial, skip: str = "") -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in trial.user_attrs.get(CONFIG_ATTR, {}).items()
        if k != skip
    )


class LiveView:
    """:class:`sweeps.engine.launcher.View` on a terminal: the summary redrawn in place while the workers run,
    its last state left on screen (with a line end in a file or pipe, where ``Live`` leaves none)."""

    def __init__(self, study: optuna.Study, sweep: SweepConfig, console: Console) -> None:
        self.study, self.sweep, self.console = study, sweep, console
        self.live = Live(console=console, refresh_per_second=4)

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.live.stop()
        if kind is None and not self.console.is_terminal:
            self.console.line()

    def update(self, jobs: Sequence[JobStates]) -> None:
        self.live.update(summary(self.study, self.sweep, jobs))

    def say(self, message: str) -> None:
        self.console.print(message, soft_wrap=True, highlight=False)
