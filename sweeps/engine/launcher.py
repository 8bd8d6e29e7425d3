"""``sweeps run``: create the study, start one worker process per GPU (or split the CPU cores), and show
live progress from the storage until the budget is spent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.live import Live

from sweeps.config.sweep import SweepConfig
from sweeps.engine import study as sweep_study
from sweeps.engine.progress import summary
from sweeps.engine.storage.urls import STORAGE_ENV
from sweeps.names import WORKER_ATTR


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
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)


@dataclass(frozen=True)
class Outcome:
    """How a launched sweep ended: ``failed`` workers exited with an error (their logs are in ``logs``)."""

    failed: int
    logs: Path


def run(
    created: optuna.Study,
    sweep: SweepConfig,
    storage_url: str,
    slots: list[Slot],
    console: Console,
) -> Outcome:
    """Run the sweep with local workers until its budget is spent, then (with ``study.retrain_seeds``) queue
    the retrains and run them too; the parent run ends with the sweep. Ctrl-C stops every worker cleanly
    and ends the parent ``KILLED`` (``KeyboardInterrupt`` is raised again for the caller)."""
    logs = Path("sweeps-logs") / sweep.study.name
    while True:
        procs = [start(s, sweep.study.name, storage_url, logs) for s in slots]
        try:
            failed = supervise(procs, created, sweep, console)
        except KeyboardInterrupt:
            sweep_study.end_parent(created, "KILLED")
            raise
        if failed:
            return Outcome(failed, logs)
        if not sweep_study.queue_retrains(created, sweep):
            sweep_study.end_parent(created)
            return Outcome(0, logs)
        console.print(
            "search done; retraining each optimizer's default and best config"
            f" on {sweep.study.retrain_seeds} seeds"
        )
