"""``sweeps run``: create the study, start its workers (here: one process per GPU, or splitting the CPU cores;
elsewhere through a scheduler, :mod:`sweeps.engine.slurm` and :mod:`sweeps.engine.raycluster`), and show live
progress from the storage until the budget is spent."""

from __future__ import annotations

import os
import platform
import runpy
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from sweeps.config.imports import ALLOW_ENV
from sweeps.config.sweep import SweepConfig
from sweeps.engine import study as sweep_study
from sweeps.engine.storage.urls import STORAGE_ENV
from sweeps.names import JOBS_ATTR, WORKER_ATTR
from sweeps.tracking.uris import TRACKING_ENV


@dataclass(frozen=True)
class JobStates:
    """What a scheduler says of the jobs that run a sweep's workers: ``SLURM job 1234`` with its tasks
    counted by state (``pending``, ``running``, ...), or why it could not be asked."""

    name: str
    counts: Mapping[str, int]
    note: str = ""


class View(Protocol):
    """How a running sweep is shown: the engine says what happens, the caller decides how it looks (the
    CLI's live view, :class:`sweeps.cli.live.LiveView`). Entered while the workers run."""

    def __enter__(self) -> View: ...

    def __exit__(self, *exc: object) -> None: ...

    def update(self, jobs: Sequence[JobStates]) -> None:
        """Show the sweep as it is now, with what the scheduler says of its ``jobs``."""

    def say(self, message: str) -> None:
        """One line about what the launcher does (stopping workers, starting the retrains)."""


Say = Callable[[str], None]


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


@dataclass(frozen=True)
class Join:
    """What every worker of a sweep is started with, whoever starts it: ``sweeps worker`` joining study
    ``name`` (in a process of its own here, in an array task's or a Ray actor's process elsewhere), its
    stores, where its log goes, its pack size and the packages its targets may be imported from."""

    name: str
    storage_url: str
    tracking_uri: str
    logs: Path
    pack: int | None = None
    allow_imports: str | None = None

    def args(self, index: int, threads: int | None = None) -> list[str]:
        """The arguments of ``sweeps worker`` for worker ``index``."""
        args = ["--study", self.name, "--index", str(index)]
        args += ["--threads", str(threads)] if threads else []
        return args + (["--pack", str(self.pack)] if self.pack else [])

    def env(self) -> dict[str, str]:
        """What a worker gets by environment, not argv, where ``ps`` would show a password: the storage URL
        and the sweep's MLflow store, which replaces any ``MLFLOW_TRACKING_URI`` the user exported (it would
        send the trials' runs elsewhere), and the packages its targets may be imported from."""
        allowed = {ALLOW_ENV: self.allow_imports} if self.allow_imports is not None else {}
        return {STORAGE_ENV: self.storage_url, TRACKING_ENV: self.tracking_uri} | allowed


def worker_main(args: Sequence[str]) -> int:
    """``sweeps worker ARGS`` in this process, as ``python -m sweeps worker ARGS`` runs it: how an array task
    or a Ray actor, whose process the scheduler starts, runs the worker. Returns its exit code; the process's
    own signal handlers are back afterwards. The worker listens for a stop at once: the scheduler's handlers
    (submitit's ignores SIGTERM) would otherwise swallow one that comes while it imports."""
    from sweeps.engine.preemption import STOP

    argv, handlers = sys.argv, {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR2)}
    STOP.listen()
    sys.argv = ["sweeps", "worker", *args]
    try:
        runpy.run_module("sweeps", run_name="__main__", alter_sys=True)
    except SystemExit as exit:  # the command line always ends this way
        return exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    finally:
        sys.argv = argv
        if threading.current_thread() is threading.main_thread():
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
    return 0


def start(slot: Slot, join: Join) -> subprocess.Popen:
    """One ``sweeps worker`` process on the slot's GPU, its output in ``<logs>/worker-<i>.log``."""
    join.logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sweeps", "worker", *join.args(slot.index, slot.threads)]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": slot.gpu} | join.env()
    with (join.logs / f"worker-{slot.index}.log").open("ab") as log:  # the child keeps its own copy
        # A session of its own: a terminal's Ctrl-C reaches the launcher only, which sends each worker
        # exactly one SIGINT (a second one would interrupt the worker while it records the stopped trial).
        out = {"stdout": log, "stderr": subprocess.STDOUT}
        return subprocess.Popen(command, env=env, start_new_session=True, **out)


class Workers(Protocol):
    """How a launcher's workers start, are polled and are stopped: local processes, a SLURM job array, Ray
    actors. Everything else (the live view, Ctrl-C, the parent run's end, the retrains) is :func:`run`'s."""

    join: Join
    refresh: float
    """Seconds between two polls."""

    def start(self) -> dict[str, Any] | None:
        """Start one round of workers; returns the scheduler job to record on the study, if any."""

    def poll(self) -> list[JobStates]:
        """Ask the scheduler about the workers once; what it says, for the live view."""

    def alive(self) -> bool:
        """Whether any worker may still run a trial (as of the last poll)."""

    def failed(self) -> int:
        """How many workers exited with an error, once none is alive."""

    def stop(self, say: Say) -> None:
        """Stop every worker (Ctrl-C), saying so, and wait for them to go."""

    def drop_pending(self) -> None:
        """The study has nothing left to run: workers still waiting for the scheduler are not needed."""

    def owns(self, worker: str) -> bool:
        """Whether a trial's worker label (``WORKER_ATTR``) names one of these workers."""


@dataclass
class Processes:
    """Workers as processes of this machine, one per slot."""

    slots: list[Slot]
    join: Join
    refresh: float = 1.0
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self) -> None:
        self.procs = [start(slot, self.join) for slot in self.slots]

    def poll(self) -> list[JobStates]:
        return []

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def failed(self) -> int:
        return sum(p.returncode != 0 for p in self.procs)

    def stop(self, say: Say) -> None:
        """Each worker gets one SIGINT: its trial ends failed or killed, nothing stays RUNNING."""
        say("stopping workers ...")
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()

    def drop_pending(self) -> None:
        """Local workers start at once."""

    def owns(self, worker: str) -> bool:
        """The whole ``host:pid`` label matches: another machine's worker may have the same pid."""
        return any(worker.split(":")[:2] == [platform.node(), str(p.pid)] for p in self.procs)


def supervise(workers: Workers, study: optuna.Study, view: View) -> int:
    """Show progress until every worker is done; Ctrl-C stops the workers cleanly (their trials end as failed
    or killed, or are given back; nothing stays RUNNING). Returns the number of workers that exited with an
    error."""
    try:
        with view:
            view.update(workers.poll())
            while workers.alive():
                time.sleep(workers.refresh)
                jobs = workers.poll()
                view.update(jobs)
                if any(job.counts.get("pending") for job in jobs) and not _busy(study):
                    workers.drop_pending()
            view.update(workers.poll())
    except KeyboardInterrupt:
        workers.stop(view.say)
        fail_running(study, workers.owns)
        raise
    return workers.failed()


def _busy(study: optuna.Study) -> bool:
    """Whether a trial waits or runs: the budget is not done."""
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))


def fail_running(study: optuna.Study, owns: Callable[[str], bool]) -> None:
    """Trials our stopped workers left RUNNING (killed before they could record anything) end as FAIL."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owns(str(t.user_attrs.get(WORKER_ATTR, ""))):
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)


def record_job(study: optuna.Study, job: dict[str, Any] | None) -> None:
    """The scheduler job a launcher submitted, kept on the study for ``sweeps status``."""
    if job is not None:
        study.set_user_attr(JOBS_ATTR, [*study.user_attrs.get(JOBS_ATTR, []), job])


@dataclass(frozen=True)
class Outcome:
    """How a launched sweep ended: ``failed`` workers exited with an error, or every search trial failed
    (``all_failed``, the commonest reason in ``reason``), or the workers were stopped from outside with
    ``left`` trials waiting (preempted or cancelled, not requeued); the workers' logs are in ``logs``."""

    failed: int
    all_failed: bool
    reason: str
    logs: Path
    left: int = 0


def run(
    created: optuna.Study, sweep: SweepConfig, tracking_uri: str, workers: Workers, view: View
) -> Outcome:
    """Run the sweep with ``workers`` until its budget is spent, then (with ``study.retrain_seeds``) queue
    the retrains and run them too. The parent run ends with the sweep: ``FINISHED``, ``FAILED`` when a worker
    exited with an error or every search trial failed, ``KILLED`` on Ctrl-C (``KeyboardInterrupt`` is raised
    again for the caller). The time it ran counts against ``study.timeout``."""
    logs = workers.join.logs
    try:
        while True:
            record_job(created, workers.start())
            try:
                failed = supervise(workers, created, view)
            except KeyboardInterrupt:
                sweep_study.close_lost_runs(created, tracking_uri)
                sweep_study.end_parent(created, tracking_uri, "KILLED")
                raise
            all_failed, reason = sweep_study.search_failed(created)
            if failed or all_failed:
                sweep_study.end_parent(created, tracking_uri, "FAILED")
                return Outcome(failed, all_failed, reason, logs)
            left = sweep_study.waiting(created)
            if left:
                sweep_study.end_parent(created, tracking_uri, "KILLED")
                return Outcome(0, False, "", logs, left)
            if not sweep_study.queue_retrains(created, sweep):
                sweep_study.end_parent(created, tracking_uri)
                return Outcome(0, False, "", logs)
            view.say(
                "search done; retraining each optimizer's default and best config"
                f" on {sweep.study.retrain_seeds} seeds"
            )
    finally:
        sweep_study.count_running_time(created)
