"""``sweeps run``: create the study, start one worker process per GPU (or split the CPU cores), and show
live progress from the storage until the budget is spent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
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
from sweeps.tracking.uris import TRACKING_ENV


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: its GPU (a ``CUDA_VISIBLE_DEVICES`` entry) or none, and its share of the CPU
    threads."""

    index: int
    gpu: str
    threads: int


def visible_gpus(environ: Mapping[str, str], count: int) -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them: the user's own list (indices or
    UUIDs) when set, so that ``CUDA_VISIBLE_DEVICES=2,3`` puts workers on GPUs 2 and 3, else 0..count-1."""
    chosen = environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is None:
        return [str(g) for g in range(count)]
    return [g.strip() for g in chosen.split(",") if g.strip()][:count]


def plan(
    workers: int | None, per_gpu: int, gpus: Sequence[str], cores: int, threads: int | None = None
) -> list[Slot]:
    """``per_gpu`` workers on each of ``gpus`` (``workers`` caps the total); on CPU, ``workers`` (default 1)
    processes splitting the cores."""
    devices = [g for g in gpus for _ in range(per_gpu)][: workers or None] if gpus else [""] * (workers or 1)
    threads = threads or max(1, cores // len(devices))
    return [Slot(i, gpu, threads) for i, gpu in enumerate(devices)]


def start(
    slot: Slot, name: str, storage_url: str, tracking_uri: str, logs: Path, pack: int | None = None
) -> subprocess.Popen:
    """One ``sweeps worker`` process. The storage URL and the sweep's MLflow store go by environment, not
    argv, where ``ps`` would show a password; the MLflow store replaces any ``MLFLOW_TRACKING_URI`` the user
    exported, which would otherwise send the trials' runs elsewhere."""
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sweeps", "worker", "--study", name]
    command += ["--index", str(slot.index), "--threads", str(slot.threads)]
    command += ["--pack", str(pack)] if pack else []
    env = os.environ | {
        "CUDA_VISIBLE_DEVICES": slot.gpu,
        STORAGE_ENV: storage_url,
        TRACKING_ENV: tracking_uri,
    }
    with (logs / f"worker-{slot.index}.log").open("ab") as log:  # the child keeps its own copy
        # A session of its own: a terminal's Ctrl-C reaches the launcher only, which sends each worker
        # exactly one SIGINT (a second one would interrupt the worker while it records the stopped trial).
        out = {"stdout": log, "stderr": subprocess.STDOUT}
        return subprocess.Popen(command, env=env, start_new_session=True, **out)


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
        if not console.is_terminal:  # Live leaves its last view without a line end in a file or pipe
            console.line()
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
    """How a launched sweep ended: ``failed`` workers exited with an error, or every search trial failed
    (``all_failed``, the commonest reason in ``reason``); the workers' logs are in ``logs``."""

    failed: int
    all_failed: bool
    reason: str
    logs: Path


def run(
    created: optuna.Study,
    sweep: SweepConfig,
    storage_url: str,
    tracking_uri: str,
    slots: list[Slot],
    console: Console,
    pack: int | None = None,
) -> Outcome:
    """Run the sweep with local workers until its budget is spent, then (with ``study.retrain_seeds``) queue
    the retrains and run them too. The parent run ends with the sweep: ``FINISHED``, ``FAILED`` when a worker
    exited with an error or every search trial failed, ``KILLED`` on Ctrl-C (``KeyboardInterrupt`` is raised
    again for the caller). The time it ran counts against ``study.timeout``."""
    logs = Path("sweeps-logs") / sweep.study.name
    try:
        while True:
            procs = [start(s, sweep.study.name, storage_url, tracking_uri, logs, pack) for s in slots]
            try:
                failed = supervise(procs, created, sweep, console)
            except KeyboardInterrupt:
                sweep_study.close_lost_runs(created, tracking_uri)
                sweep_study.end_parent(created, tracking_uri, "KILLED")
                raise
            all_failed, reason = sweep_study.search_failed(created)
            if failed or all_failed:
                sweep_study.end_parent(created, tracking_uri, "FAILED")
                return Outcome(failed, all_failed, reason, logs)
            if not sweep_study.queue_retrains(created, sweep):
                sweep_study.end_parent(created, tracking_uri)
                return Outcome(0, False, "", logs)
            console.print(
                "search done; retraining each optimizer's default and best config"
                f" on {sweep.study.retrain_seeds} seeds"
            )
    finally:
        sweep_study.count_running_time(created)
