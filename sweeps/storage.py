"""Where Optuna studies live: one URL names the storage, and every process opens it the same way.

The embedded default is one SQLite file. ``python -m sweeps.storage_bench --workers 8 --trials 200`` on the
2-core development machine (zero-length objective, so coordination is all that is measured): Optuna's
JournalStorage file backend 83-113 trials/s, this SQLite 15-31, PostgreSQL 12-22, each with all 200 trials
recorded exactly once and no error; with a 1 s objective 7.8 / 7.1 / 6.1 trials/s of the ideal 8. The journal
is faster, but in Optuna 5 it has no heartbeat: a killed worker's trial would stay RUNNING for ever (and one
killed while holding the journal's lock file stalls the others for that lock's 30 s grace). SQLite keeps
Optuna's heartbeat, so such a trial is failed and queued again with its parameters; its ~20-50 ms of storage
time per trial is noise next to a training trial. PostgreSQL (``postgresql+psycopg://``) is for workers
spread over several machines.

What SQLite needs for concurrent workers (measured with the same bench, 8 workers, half the trials queued):
Optuna's defaults, and WAL alone, ran 9-53 of 200 trials twice, because Python's sqlite3 runs the read of
Optuna's read-check-write steps (pop a WAITING trial, fail a stale one) outside any transaction, so two
workers pop the same queued trial ("Cannot tell a COMPLETE trial"); a real deferred ``BEGIN`` made 192 of 200
asks fail with "database is locked" (a reader cannot upgrade to writer once another has written).
``BEGIN IMMEDIATE`` on every transaction with a long busy timeout: no error, no duplicate. WAL is kept so
that readers outside the workers (a dashboard, the sqlite3 shell) never hold up a commit;
``synchronous=NORMAL`` gained nothing measurable and is not used.

The study is created once, by whoever launches the sweep, before any worker starts: processes creating a
fresh SQLite file at the same time race on Optuna's schema tables.

A storage that opened once outlives its database going away: every call that loses its connection is tried
again with capped exponential backoff (``sweeps.retry``) for up to ``$SWEEPS_RECONNECT_TIMEOUT`` seconds
(default 300), logged at each attempt; SQLAlchemy's ``pool_pre_ping`` swaps the dead pooled connections for
new ones. A URL that never answered fails at once instead (a typo should not wait five minutes).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # no public name; RDB and cached storages implement it

from sweeps.retry import Backoff, first_line, retry
from sweeps.tracking import SQLITE, absolute_sqlite, mask

DEFAULT_STORAGE = "sqlite:///optuna.db"
"""Embedded store: one SQLite file in the working directory; no server, 8 worker processes on this machine
(not over a network filesystem: SQLite's locks and WAL need the workers on the machine with the disk)."""

STORAGE_ENV = "SWEEPS_STORAGE"

HEARTBEAT_INTERVAL_S = int(os.environ.get("SWEEPS_HEARTBEAT_INTERVAL", 10))
GRACE_PERIOD_S = int(os.environ.get("SWEEPS_GRACE_PERIOD", 60))
"""A beat every 10 s costs one tiny write per worker; 60 s of silence (six missed beats, more than the SQLite
busy timeout plus one interval) is what it takes to call a trial dead, so a live worker stalled in a long
call or a lock wait is never failed, while a killed one's trial is retried within a minute. Both can be set
per machine with $SWEEPS_HEARTBEAT_INTERVAL and $SWEEPS_GRACE_PERIOD (seconds)."""

MAX_RETRY = 2
"""A killed worker's trial runs at most three times: a trial whose parameters get its worker OOM-killed
should not take the whole sweep down with it."""

SQLITE_BUSY_TIMEOUT_S = 30
"""How long a SQLite writer waits for the lock before failing; transactions here last milliseconds."""

POSTGRES_CONNECT_TIMEOUT_S = 10
"""How long one connection attempt may take: an unreachable host fails the attempt, and the backoff (not a
hung socket) decides when to try again."""

_POSTGRES = "postgresql+psycopg://"
_POSTGRES_ALIASES = ("postgresql://", "postgres://")

_logger = logging.getLogger(__name__)


class StudyNotFoundError(LookupError):
    """``load_study`` of a name the storage does not hold; the message lists the studies it does hold."""


def storage_url(flag: str | None = None) -> str:
    """``--storage`` beats ``SWEEPS_STORAGE``, which beats the embedded default; returned normalised.

    A relative SQLite path is made absolute, so that every worker (whatever its working directory) opens the
    same file. ``postgresql://`` and ``postgres://`` get psycopg 3's driver name (SQLAlchemy would otherwise
    look for psycopg2). Any other scheme is refused with a ``ValueError`` naming the URL, password masked.
    """
    return _normalise(flag or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE)


def describe(url: str) -> str:
    """The storage URL fit for printing and logging: any password masked."""
    return mask(url)


def open_storage(
    url: str,
    heartbeat: bool = True,
    *,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int = GRACE_PERIOD_S,
) -> RDBStorage:
    """Open the RDB storage at ``url`` (normalised as by ``storage_url``) ready for concurrent workers.

    With ``heartbeat`` (for processes that run trials), a trial whose heartbeat has been silent for
    ``grace_period`` seconds is failed when any worker next asks for a trial (``running_trial`` or
    ``Study.optimize``), and ``RetryHeartbeatStaleTrialCallback`` queues it again as a WAITING trial with the
    same parameters (system attr ``failed_trial`` names the original). Without it (reports, status), nothing
    is beaten or failed. The interval and grace are seconds (Optuna wants integers); tests pass small ones.
    """
    url = _normalise(url)
    sqlite = url.startswith(SQLITE)
    if sqlite:
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        # pre-ping replaces a pooled connection the server dropped (restart, failover, idle cut) instead of
        # failing the worker's next query with it.
        engine_kwargs = {
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        beats: dict[str, Any] = {}
        if heartbeat:
            beats = {
                "heartbeat_interval": heartbeat_interval,
                "grace_period": grace_period,
                "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            }
        return (_SQLiteStorage if sqlite else ReconnectingStorage)(
            url, engine_kwargs=engine_kwargs, backoff=Backoff.from_env(), **beats
        )


@contextmanager
def running_trial(study: optuna.Study, fail_stale: bool = True) -> Iterator[optuna.Trial]:
    """``study.ask()`` for an ask-and-tell worker, with what ``Study.optimize`` does around it; tell after.

    First stale trials are failed (the retry callback queues each again, so this ask may pick one up); then
    the trial's heartbeat is recorded at once and every interval while the block runs. Without a heartbeat
    Optuna never finds a trial stale, so a killed ask-and-tell worker's trial would stay RUNNING for ever.
    A beat that fails (the database briefly away) is logged and tried again at the next interval, where
    Optuna's own heartbeat thread would die and let a live trial be failed. Tell the trial inside the block,
    so that it keeps beating while a tell waits for the database to come back.
    """
    storage = study._storage
    interval = storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        if fail_stale:  # off for a caller that has just done it
            optuna.storages.fail_stale_trials(study)
        trial = study.ask()
    if interval is None:
        yield trial
        return
    storage.record_heartbeat(trial._trial_id)
    stop = threading.Event()
    beating = threading.Thread(
        target=_beat,
        args=(storage, trial._trial_id, interval, stop),
        name=f"heartbeat-trial-{trial.number}",
        daemon=True,
    )
    beating.start()
    try:
        yield trial
    finally:
        stop.set()
        beating.join()


def create_study_once(
    storage: RDBStorage,
    name: str,
    directions: Sequence[str],
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    user_attrs: Mapping[str, Any] | None = None,
) -> tuple[optuna.Study, bool]:
    """Create study ``name`` or, when it exists, load it (re-running a sweep resumes it); ``(study, is_new)``.

    ``user_attrs`` (e.g. the MLflow parent run id) are set only on a new study, so the first launcher's values
    stay. Two launchers racing get one creator and one loader. An existing study with other directions is
    refused: resuming it would mix trials optimised the other way.
    """
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, directions=list(directions), sampler=sampler, pruner=pruner
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = load_study(storage, name, sampler, pruner)
        existing = [direction.name.lower() for direction in study.directions]
        if existing != [direction.lower() for direction in directions]:
            raise ValueError(
                f"study {name!r} in {describe(storage.url)} exists with directions {existing}, "
                f"not {list(directions)}; choose another study name"
            ) from None
        return study, False
    for key, value in (user_attrs or {}).items():
        study.set_user_attr(key, value)
    return study, True


def load_study(
    storage: RDBStorage,
    name: str,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Load an existing study; a missing one raises ``StudyNotFoundError`` naming it, the storage and the
    studies the storage does hold (Optuna's own error says only "Record does not exist")."""
    try:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        held = f"studies there: {', '.join(names)}" if names else "it holds no study"
        raise StudyNotFoundError(f"no study {name!r} in {describe(storage.url)}; {held}") from None


def _normalise(url: str) -> str:
    for alias in _POSTGRES_ALIASES:
        if url.startswith(alias):
            url = _POSTGRES + url.removeprefix(alias)
    if url.startswith(_POSTGRES):
        return url
    if url.startswith(SQLITE):
        return absolute_sqlite(url)
    raise ValueError(
        f"unsupported storage URL {describe(url)!r}: use sqlite:///PATH (embedded) or "
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    )


class ReconnectingStorage(RDBStorage):
    """An ``RDBStorage`` whose calls wait for a lost database to come back (see the module docstring).

    Not retried: ``record_heartbeat``, whose loop tries again every interval by itself and must never hold
    up the end of a trial. A retried write whose first attempt committed before its connection dropped is
    safe where Optuna's writes are upserts (params, attrs, intermediate values); a tell that finds its trial
    already finished raises ``UpdateFinishedTrialError``, which the worker checks (``sweeps.worker``).

    After an outage, heartbeats of live workers were missed too; for one grace period this process finds no
    trial stale, so that a long outage does not get every running trial failed by the first worker back.
    """

    def __init__(self, *args: Any, backoff: Backoff, **kwargs: Any) -> None:
        self.backoff = backoff
        self.outage_at = -float("inf")
        super().__init__(*args, **kwargs)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as error:
            self._disconnected(error)
            raise

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if time.monotonic() - self.outage_at < (self.grace_period or 0):
            return []
        return super()._get_stale_trial_ids(study_id)

    def _disconnected(self, error: BaseException) -> bool:
        lost = _lost_connection(error)
        if lost:
            self.outage_at = time.monotonic()
        return lost


_RECONNECTED = tuple(
    name for name in vars(optuna.storages.BaseStorage) if name[0] != "_" and name != "remove_session"
) + ("_create_new_trial", "_set_trial_param", "_get_trials", "_get_best_trial_id", "_get_stale_trial_ids")
"""Every storage call of Optuna's ``Study``, and the private ones its cache layer calls on an RDB storage."""

_retrying = threading.local()


def _reconnecting(method: Any) -> Any:
    @functools.wraps(method)
    def call(self: ReconnectingStorage, *args: Any, **kwargs: Any) -> Any:
        if getattr(_retrying, "active", False):  # a call nested in a retried one: the outer one retries
            return method(self, *args, **kwargs)
        _retrying.active = True
        try:
            return retry(
                lambda: method(self, *args, **kwargs),
                self._disconnected,
                f"storage {method.__name__}",
                self.backoff,
            )
        finally:
            _retrying.active = False

    return call


for _name in _RECONNECTED:
    setattr(ReconnectingStorage, _name, _reconnecting(getattr(ReconnectingStorage, _name)))


def _lost_connection(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it; Optuna wraps SQLAlchemy's errors) says the database connection
    failed or dropped, as opposed to a bad statement or a conflict, which retrying would not fix."""
    from sqlalchemy import exc

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, exc.OperationalError | exc.InterfaceError | exc.DisconnectionError):
            return True
        if isinstance(cause, exc.DBAPIError) and cause.connection_invalidated:
            return True
        cause = cause.__cause__
    return False


class _SQLiteStorage(ReconnectingStorage):
    """An ``RDBStorage`` whose connections serialise writes, also after being pickled to another process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _serialise_sqlite_writes(self.engine)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        _serialise_sqlite_writes(self.engine)


def _serialise_sqlite_writes(engine: Any) -> None:
    """WAL, a long busy timeout (set in ``connect_args``) and ``BEGIN IMMEDIATE`` for every transaction, so
    that a transaction holds the write lock from its first read to its commit.

    Optuna has already opened (and pooled) connections to create its tables; the pool is emptied so that
    every later connection gets these settings, and one connection is made at once so that the file is in
    WAL mode (which persists in the file) before any worker opens it.
    """
    from sqlalchemy import event  # imported with the first SQLite storage, not by every ``sweeps`` command

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 stops emitting its own (deferred, DML-only) BEGIN
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()
    engine.connect().close()


def _beat(storage: BaseHeartbeat, trial_id: int, interval: int, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            storage.record_heartbeat(trial_id)
        except optuna.exceptions.StorageInternalError as error:
            _logger.warning(
                "heartbeat of trial id %d not recorded (%s); trying again in %d s",
                trial_id,
                first_line(error),
                interval,
            )
