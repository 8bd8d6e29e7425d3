"""``sweeps run``: create the study, start one worker process per GPU (or split the CPU cores), and show
live progress from the storage until the budget is spent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from sweeps.objective import CONFIG_ATTR, SEARCH, WORKER_ATTR, phase
from sweeps.spec import SweepConfig
from sweeps.storage import STORAGE_ENV


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: its GPU (``CUDA_VISIBLE_DEVICES``) or none, and its share of the CPU threads."""

    index: int
    gpu: str
    threads: int


def plan(workers: int | None, per_gpu: int, gpus: int, cores: int, threads: int | None = None) -> list[Slot]:
    """``per_gpu`` workers on each visible GPU (``workers`` caps the total); on CPU, ``workers`` (default 1)
    processes splitting the cores."""
    if gpus:
        devices = [str(g) for g in range(gpus) for _ in range(per_gpu)][: workers or None]
    else:
        devices = [""] * (workers or 1)
    threads = threads or max(1, cores // len(devices))
    return [Slot(i, gpu, threads) for i, gpu in enumerate(devices)]


def start(slot: Slot, name: str, storage_url: str, logs: Path) -> subprocess.Popen:
    """One ``sweeps worker`` process. The storage URL goes by environment, not argv, where ``ps`` would show
    its password; the worker reads the MLflow URI from the study."""
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / f"worker-{slot.index}.log").open("ab")
    command = [sys.executable, "-m", "sweeps", "worker", "--study", name]
    command += ["--index", str(slot.index), "--threads", str(slot.threads)]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": slot.gpu, STORAGE_ENV: storage_url}
    # A session of its own: a terminal's Ctrl-C reaches the launcher only, which sends each worker exactly one
    # SIGINT (a second one would interrupt the worker while it records the stopped trial).
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


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


def supervise(
    procs: list[subprocess.Popen],
    study: optuna.Study,
    sweep: SweepConfig,
    console: Console,
    refresh: float = 1.0,
) -> int:
    """Show progress until every worker exits; Ctrl-C stops the workers cleanly (their trials end as failed
    or killed, nothing stays RUNNING). Returns the number of workers that exited with an error."""
    try:
        with Live(summary(study, sweep), console=console, refresh_per_second=4, transient=False) as live:
            while any(p.poll() is None for p in procs):
                time.sleep(refresh)
                live.update(summary(study, sweep))
            live.update(summary(study, sweep))
    except KeyboardInterrupt:
        console.print("[yellow]stopping workers ...[/]")
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        fail_running(study, {str(p.pid) for p in procs})
        raise
    return sum(p.returncode != 0 for p in procs)


def fail_running(study: optuna.Study, pids: set[str]) -> None:
    """Trials our stopped workers left RUNNING (killed before they could record anything) end as FAIL."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get(WORKER_ATTR, ""))
        if worker.split(":")[1:2] and worker.split(":")[1] in pids:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
