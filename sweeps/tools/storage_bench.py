"""``sweeps bench-storage``: how each Optuna storage takes N concurrent workers on one study.

For each backend a fresh study is created once, with half the trial budget queued as WAITING trials (the path
a retried trial takes, and the one where two workers can race for the same trial). Then N workers (spawned
processes, or ``--threads`` threads in each of fewer processes, each with its own storage and connection
pool as a worker process has) open the storage and load the study, are released together once all have,
and each runs its share of ask → tiny objective (sleep) → tell, exactly as a sweep worker does
(``sweeps.engine.storage.heartbeat.running_trial``, heartbeat on where the backend has one).

Reported per backend: trials/s from the release to the last tell; errors by kind (a worker that could not
even open the storage counts one, and its share is missing); storage calls the reconnecting storage had to
retry; whether every trial was recorded exactly once (no trial number told twice, no told trial missing,
nothing left RUNNING or WAITING, COMPLETE count == target); for PostgreSQL the peak of the run's server
connections (``pg_stat_activity`` rows with the run's application name, sampled every 50 ms); ask/tell
latencies, each worker's first ask (imports, first queries: a one-off start-up cost) apart from the
steady-state ones.

Backends: ``journal`` (Optuna's JournalStorage on a JournalFileBackend), ``sqlite`` (``open_storage`` on a
fresh file), ``postgres`` (``open_storage`` on ``--postgres-url``; skipped with the reason when unreachable;
its study is deleted afterwards), ``pgbouncer`` (the same database through the storage proxy,
``sweeps.engine.storage.pooler``, started for the run on ``--proxy-port`` with ``--pool-size`` server
connections).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import queue
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sweeps.engine.storage.heartbeat import running_trial
from sweeps.engine.storage.pooler import DEFAULT_POOL_SIZE, DEFAULT_PORT, ProxyError, storage_proxy
from sweeps.engine.storage.rdb import create_study_once, load_study, open_storage
from sweeps.masking import mask

BACKENDS = ("journal", "sqlite", "postgres", "pgbouncer")
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Load:
    """What each backend is put under: ``workers`` workers, ``threads`` to a process, sharing ``trials``
    trials whose objective sleeps ``sleep_ms``; PostgreSQL at ``postgres_url``; the pgbouncer backend's proxy
    on ``proxy_port`` with ``pool_size`` server connections."""

    workers: int
    trials: int
    sleep_ms: float = 0.0
    postgres_url: str = DEFAULT_POSTGRES_URL
    threads: int = 1
    proxy_port: int = DEFAULT_PORT
    pool_size: int = DEFAULT_POOL_SIZE


@dataclass(frozen=True)
class _Job:
    """What a worker process needs: the study to load, its objective's sleep, and the channels that release
    the workers together and bring their reports back."""

    backend: str
    location: str
    name: str
    sleep_s: float
    ready: Any
    start: Any
    reports: Any


@dataclass
class WorkerReport:
    told: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ask_ms: list[float] = field(default_factory=list)
    tell_ms: list[float] = field(default_factory=list)
    finished: float = 0.0
    retries: int = 0


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
    retries: int = 0
    peak_connections: int | None = None
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


def run_backend(backend: str, load: Load, directory: Path) -> BackendResult:
    """Measure one backend under ``load`` on a fresh study."""
    tag = f"storage-bench-{uuid.uuid4().hex[:8]}"
    location = {
        "journal": str(directory / "journal.log"),
        "sqlite": f"sqlite:///{directory / 'optuna.db'}",
    }.get(backend, _tagged(load.postgres_url, tag))
    result = BackendResult(backend, mask(location), load.workers, load.trials)
    on_postgres = backend in ("postgres", "pgbouncer")
    with ExitStack() as stack:
        try:
            connections = (
                stack.enter_context(_PeakConnections(load.postgres_url, tag)) if on_postgres else None
            )
            if backend == "pgbouncer":
                proxy = storage_proxy(location, port=load.proxy_port, pool_size=load.pool_size)
                location = stack.enter_context(proxy).url
                result.storage = mask(location)
            storage = _open(backend, location)
        except (sqlalchemy.exc.OperationalError, OSError, ProxyError) as error:
            orig = getattr(error, "orig", None) or error
            result.skipped = f"unreachable: {mask(str(orig)).strip().splitlines()[0]}"
            return result
        if backend == "journal":
            study = optuna.create_study(storage=storage, study_name=tag)
        else:
            study, _ = create_study_once(storage, tag, ["minimize"])
        try:
            for i in range(load.trials // 2):
                study.enqueue_trial({"x": i / load.trials})
            reports, seconds = _run_workers(backend, location, tag, load)
            _score(result, study, reports, seconds)
            if connections is not None:
                result.peak_connections = connections.peak
        finally:
            if on_postgres:
                optuna.delete_study(study_name=tag, storage=storage)
    return result


def _tagged(url: str, tag: str) -> str:
    """``url`` whose connections show ``tag`` as their application name in ``pg_stat_activity``; PgBouncer
    passes it on to the server connection a client's transaction runs on."""
    from sqlalchemy.engine import make_url

    return make_url(url).update_query_dict({"application_name": tag}).render_as_string(hide_password=False)


class _PeakConnections:
    """The most server connections of this run (those showing ``tag``) seen at once while the block runs."""

    def __init__(self, url: str, tag: str) -> None:
        from sqlalchemy.engine import make_url

        self.conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.tag = tag
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> _PeakConnections:
        import psycopg

        self._connection = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
        self._thread = threading.Thread(target=self._sample, name="peak-connections", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._connection.close()

    def _sample(self) -> None:
        count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        while not self._stop.wait(0.05):
            row = self._connection.execute(count, (self.tag,)).fetchone()
            self.peak = max(self.peak, int(row[0]) if row else 0)


def _run_workers(backend: str, location: str, name: str, load: Load) -> tuple[list[WorkerReport], float]:
    """Start the workers, release them together once all have loaded the study, collect their reports."""
    context = multiprocessing.get_context("spawn")
    ready, start, reports = context.Queue(), context.Event(), context.Queue()
    job = _Job(backend, location, name, load.sleep_ms / 1000, ready, start, reports)
    workers, threads, trials = load.workers, load.threads, load.trials
    shares = [trials // workers + (i < trials % workers) for i in range(workers)]
    processes = [
        context.Process(target=_process, args=(job, shares[i : i + threads]), daemon=True)
        for i in range(0, workers, threads)
    ]
    for process in processes:
        process.start()
    for _ in shares:
        _next(ready, processes)
    start.set()
    started = time.monotonic()
    collected = [WorkerReport(**_next(reports, processes)) for _ in shares]
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


class _Retries(logging.Handler):
    """Counts, per thread, the storage calls ``sweeps.engine.retry`` logged as failed and tried again."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[int] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.thread or 0] += 1


def _process(job: _Job, shares: list[int]) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    retries = _Retries()
    logging.getLogger("sweeps.engine.retry").addHandler(retries)
    workers = [threading.Thread(target=_worker, args=(job, share, retries)) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _worker(job: _Job, n_trials: int, retries: _Retries) -> None:
    report = WorkerReport()
    try:
        storage = _open(job.backend, job.location)
        study = (
            optuna.load_study(study_name=job.name, storage=storage)
            if job.backend == "journal"
            else load_study(storage, job.name)
        )
    except Exception as error:  # counted: at scale, opening is where a database runs out of connections
        report.errors.append(_kind(error))
        n_trials = 0
    job.ready.put(True)
    job.start.wait()
    for _ in range(n_trials):
        begun = time.monotonic()
        try:
            with running_trial(study) as trial:
                asked = time.monotonic()
                x = trial.suggest_float("x", 0.0, 1.0)
                time.sleep(job.sleep_s)
            told = time.monotonic()
            study.tell(trial, x)
        except Exception as error:  # counted and reported: the bench measures what goes wrong
            report.errors.append(_kind(error))
            continue
        report.ask_ms.append((asked - begun) * 1000)
        report.tell_ms.append((time.monotonic() - told) * 1000)
        report.told.append(trial.number)
    report.finished = time.monotonic()
    report.retries = retries.counts[threading.get_ident()]
    job.reports.put(asdict(report))


def _open(backend: str, location: str) -> BaseStorage:
    if backend == "journal":
        return JournalStorage(JournalFileBackend(location))
    return open_storage(location)


def _kind(error: BaseException) -> str:
    """The error's type and message on one line; a long message keeps its end, which says why (a driver's
    "connection to server ... failed: FATAL: sorry, too many clients already")."""
    cause = error.__cause__ or error
    text = mask(f"{type(cause).__name__}: {' '.join(str(cause).split())}")
    return text if len(text) <= 120 else f"{type(cause).__name__}: ...{text[-100:]}"


def _score(result: BackendResult, study: optuna.Study, reports: list[WorkerReport], seconds: float) -> None:
    told = [number for report in reports for number in report.told]
    stored = study.get_trials(deepcopy=False)
    complete = {trial.number for trial in stored if trial.state == TrialState.COMPLETE}
    result.seconds = round(seconds, 3)
    result.trials_per_s = round(len(told) / seconds, 1) if seconds > 0 else 0.0
    result.errors = dict(Counter(error for report in reports for error in report.errors))
    result.retries = sum(report.retries for report in reports)
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
        f"{'backend':<10}{'trials/s':>9}{'seconds':>9}{'complete':>10}{'dup':>5}{'missing':>8}"
        f"{'errors':>8}{'retries':>8}{'peak conn':>10}{'1st ask ms':>11}{'ask p50/p99/max ms':>24}"
        f"{'tell p50/p99/max ms':>24}  verdict"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        if r.skipped:
            lines.append(f"{r.backend:<10}  skipped: {r.skipped}")
            continue
        ask = "/".join(f"{r.ask_ms.get(k, 0):g}" for k in ("p50", "p99", "max"))
        tell = "/".join(f"{r.tell_ms.get(k, 0):g}" for k in ("p50", "p99", "max"))
        verdict = "ok" if r.ok else "FAILED " + json.dumps({"errors": r.errors, "left_over": r.left_over})
        peak = "-" if r.peak_connections is None else r.peak_connections
        lines.append(
            f"{r.backend:<10}{r.trials_per_s:>9}{r.seconds:>9}{r.complete:>6}/{r.target:<3}{r.duplicates:>5}"
            f"{r.missing:>8}{sum(r.errors.values()):>8}{r.retries:>8}{peak:>10}{r.first_ask_ms:>11}"
            f"{ask:>24}{tell:>24}  {verdict}"
        )
    return "\n".join(lines)


def run(backends: list[str], load: Load, folder: Path | None) -> list[BackendResult]:
    """Each backend in turn, its files in a temporary folder (under ``folder`` if given)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory(prefix="storage-bench-", dir=folder) as tmp:
        for backend in backends:
            (Path(tmp) / backend).mkdir()
            results.append(run_backend(backend, load, Path(tmp) / backend))
    return results


def summary(results: list[BackendResult], load: Load) -> str:
    """The table, then every figure as JSON."""
    processes = -(-load.workers // load.threads)
    head = (
        f"{load.workers} workers in {processes} processes, {load.trials} trials, objective sleeps"
        f" {load.sleep_ms:g} ms"
    )
    rows = json.dumps([{**asdict(r), "ok": r.ok} for r in results], indent=2)
    return f"{head}\n{_table(results)}\n{rows}"
