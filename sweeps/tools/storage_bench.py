"""``sweeps bench-storage``: how each Optuna storage takes N concurrent workers on one study.

For each backend a fresh study is created once, with half the trial budget queued as WAITING trials (the path
a retried trial takes, and the one where two workers can race for the same trial). Then N spawned worker
processes open the storage and load the study, are released together once all have, and each runs its
share of ask → tiny objective (sleep) → tell, exactly as a sweep worker does
(``sweeps.engine.storage.heartbeat.running_trial``, heartbeat on where the backend has one).

Reported per backend: trials/s from the release to the last tell; errors by kind; whether every trial was
recorded exactly once (no trial number told twice, no told trial missing, nothing left RUNNING or WAITING,
COMPLETE count == target); ask/tell latencies, each worker's first ask (imports, first queries: a one-off
start-up cost) apart from the steady-state ones.

Backends: ``journal`` (Optuna's JournalStorage on a JournalFileBackend), ``sqlite`` (``open_storage`` on a
fresh file), ``postgres`` (``open_storage`` on ``--postgres-url``; skipped with the reason when unreachable;
its study is deleted afterwards).
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import statistics
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sweeps.engine.storage.heartbeat import running_trial
from sweeps.engine.storage.rdb import create_study_once, load_study, open_storage
from sweeps.tracking.uris import mask

BACKENDS = ("journal", "sqlite", "postgres")
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class WorkerReport:
    told: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ask_ms: list[float] = field(default_factory=list)
    tell_ms: list[float] = field(default_factory=list)
    finished: float = 0.0


@dataclass
class BackendResult:
    backend: str
    storage: str
    workers: int
    target: int
    skipped: str | None = None
    seconds: float = 0.0
    trials_per_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    complete: int = 0
    duplicates: int = 0
    missing: int = 0
    left_over: dict[str, int] = field(default_factory=dict)
    first_ask_ms: float = 0.0
    ask_ms: dict[str, float] = field(default_factory=dict)
    tell_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.skipped is None
            and not self.errors
            and not self.duplicates
            and not self.missing
            and not self.left_over
            and self.complete == self.target
        )


def run_backend(
    backend: str, workers: int, trials: int, sleep_ms: float, directory: Path, postgres_url: str
) -> BackendResult:
    """Measure one backend: a fresh study, ``workers`` processes, ``trials`` trials in all."""
    location = {
        "journal": str(directory / "journal.log"),
        "sqlite": f"sqlite:///{directory / 'optuna.db'}",
        "postgres": postgres_url,
    }[backend]
    result = BackendResult(backend, mask(location), workers, trials)
    try:
        storage = _open(backend, location)
    except sqlalchemy.exc.OperationalError as error:
        result.skipped = f"unreachable: {mask(str(error.orig or error)).strip().splitlines()[0]}"
        return result
    name = f"storage-bench-{uuid.uuid4().hex[:8]}"
    if backend == "journal":
        study = optuna.create_study(storage=storage, study_name=name)
    else:
        study, _ = create_study_once(storage, name, ["minimize"])
    try:
        for i in range(trials // 2):
            study.enqueue_trial({"x": i / trials})
        reports, seconds = _run_workers(backend, location, name, workers, trials, sleep_ms / 1000)
        _score(result, study, reports, seconds)
    finally:
        if backend == "postgres":
            optuna.delete_study(study_name=name, storage=storage)
    return result


def _run_workers(
    backend: str, location: str, name: str, workers: int, trials: int, sleep_s: float
) -> tuple[list[WorkerReport], float]:
    """Start the workers, release them together once all have loaded the study, collect their reports."""
    context = multiprocessing.get_context("spawn")
    ready, start, reports = context.Queue(), context.Event(), context.Queue()
    shares = [trials // workers + (i < trials % workers) for i in range(workers)]
    processes = [
        context.Process(
            target=_worker, args=(backend, location, name, share, sleep_s, ready, start, reports), daemon=True
        )
        for share in shares
    ]
    for process in processes:
        process.start()
    for _ in processes:
        _next(ready, processes)
    start.set()
    started = time.monotonic()
    collected = [WorkerReport(**_next(reports, processes)) for _ in processes]
    for process in processes:
        process.join()
    return collected, max(report.finished for report in collected) - started


def _next(channel: Any, processes: list[Any]) -> Any:
    """The next item from ``channel``; fails (instead of waiting for ever) once a worker has died."""
    while True:
        try:
            return channel.get(timeout=1)
        except queue.Empty:
            dead = [process.exitcode for process in processes if process.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(
                    f"a worker process exited with {dead[0]}; its traceback is above"
                ) from None


def _worker(
    backend: str,
    location: str,
    name: str,
    n_trials: int,
    sleep_s: float,
    ready: Any,
    start: Any,
    reports: Any,
) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _open(backend, location)
    if backend == "journal":
        study = optuna.load_study(study_name=name, storage=storage)
    else:
        study = load_study(storage, name)
    ready.put(True)
    start.wait()
    report = WorkerReport()
    for _ in range(n_trials):
        begun = time.monotonic()
        try:
            with running_trial(study) as trial:
                asked = time.monotonic()
                x = trial.suggest_float("x", 0.0, 1.0)
                time.sleep(sleep_s)
            told = time.monotonic()
            study.tell(trial, x)
        except Exception as error:  # counted and reported: the bench measures what goes wrong
            report.errors.append(_kind(error))
            continue
        report.ask_ms.append((asked - begun) * 1000)
        report.tell_ms.append((time.monotonic() - told) * 1000)
        report.told.append(trial.number)
    report.finished = time.monotonic()
    reports.put(asdict(report))


def _open(backend: str, location: str) -> BaseStorage:
    if backend == "journal":
        return JournalStorage(JournalFileBackend(location))
    return open_storage(location)


def _kind(error: BaseException) -> str:
    cause = error.__cause__ or error
    first_line = (str(cause).strip().splitlines() or [""])[0]
    return mask(f"{type(cause).__name__}: {first_line}")[:120]


def _score(result: BackendResult, study: optuna.Study, reports: list[WorkerReport], seconds: float) -> None:
    told = [number for report in reports for number in report.told]
    stored = study.get_trials(deepcopy=False)
    complete = {trial.number for trial in stored if trial.state == TrialState.COMPLETE}
    result.seconds = round(seconds, 3)
    result.trials_per_s = round(len(told) / seconds, 1) if seconds > 0 else 0.0
    result.errors = dict(Counter(error for report in reports for error in report.errors))
    result.complete = len(complete)
    result.duplicates = len(told) - len(set(told))
    result.missing = len(set(told) - complete)
    result.left_over = dict(
        Counter(trial.state.name for trial in stored if trial.state != TrialState.COMPLETE)
    )
    result.first_ask_ms = round(
        max((report.ask_ms[0] for report in reports if report.ask_ms), default=0.0), 1
    )
    result.ask_ms = _spread([ms for report in reports for ms in report.ask_ms[1:]])
    result.tell_ms = _spread([ms for report in reports for ms in report.tell_ms])


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "max": round(ordered[-1], 1),
    }


def _table(results: list[BackendResult]) -> str:
    header = (
        f"{'backend':<9}{'trials/s':>9}{'seconds':>9}{'complete':>10}{'dup':>5}{'missing':>8}"
        f"{'errors':>8}{'1st ask ms':>11}{'ask p50/p99/max ms':>22}{'tell p50/p99/max ms':>22}  verdict"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        if r.skipped:
            lines.append(f"{r.backend:<9}  skipped: {r.skipped}")
            continue
        ask = "/".join(f"{r.ask_ms.get(k, 0):g}" for k in ("p50", "p99", "max"))
        tell = "/".join(f"{r.tell_ms.get(k, 0):g}" for k in ("p50", "p99", "max"))
        verdict = "ok" if r.ok else "FAILED " + json.dumps({"errors": r.errors, "left_over": r.left_over})
        lines.append(
            f"{r.backend:<9}{r.trials_per_s:>9}{r.seconds:>9}{r.complete:>6}/{r.target:<3}{r.duplicates:>5}"
            f"{r.missing:>8}{sum(r.errors.values()):>8}{r.first_ask_ms:>11}{ask:>22}{tell:>22}  {verdict}"
        )
    return "\n".join(lines)


def run(
    backends: list[str], workers: int, trials: int, sleep_ms: float, postgres_url: str, folder: Path | None
) -> list[BackendResult]:
    """Each backend in turn, its files in a temporary folder (under ``folder`` if given)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory(prefix="storage-bench-", dir=folder) as tmp:
        for backend in backends:
            directory = Path(tmp) / backend
            directory.mkdir()
            results.append(run_backend(backend, workers, trials, sleep_ms, directory, postgres_url))
    return results


def summary(results: list[BackendResult], workers: int, trials: int, sleep_ms: float) -> str:
    """The table, then every figure as JSON."""
    head = f"{workers} workers, {trials} trials, objective sleeps {sleep_ms:g} ms"
    rows = json.dumps([{**asdict(r), "ok": r.ok} for r in results], indent=2)
    return f"{head}\n{_table(results)}\n{rows}"
