"""Opening a study's storage the same way in every process, and creating or loading a study by name.

The study is created once, by whoever launches the sweep, before any worker starts: processes creating a
fresh SQLite file at the same time race on Optuna's schema tables.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from sweeps.engine.retry import Backoff
from sweeps.engine.storage.heartbeat import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, MAX_RETRY
from sweeps.engine.storage.reconnect import ReconnectingStorage
from sweeps.engine.storage.urls import normalise
from sweeps.masking import mask
from sweeps.tracking.uris import SQLITE

POSTGRES_CONNECT_TIMEOUT_S = 10
"""How long one connection attempt may take: an unreachable host fails the attempt, and the backoff (not a
hung socket) decides when to try again."""


SQLITE_BUSY_TIMEOUT_S = 30
"""How long a SQLite writer waits for the lock before failing; transactions here last milliseconds."""


class SQLiteStorage(ReconnectingStorage):
    """The embedded SQLite storage, made safe for concurrent workers on one machine, also after being pickled
    to another process.

    Optuna's defaults (and WAL alone) let two workers pop the same queued trial, because Python's sqlite3
    runs the read of Optuna's read-check-write steps outside any transaction; a deferred ``BEGIN`` makes most
    asks fail with "database is locked". ``BEGIN IMMEDIATE`` on every transaction with a long busy timeout
    gives neither; WAL keeps readers outside the workers (a dashboard, the sqlite3 shell) from holding up a
    commit. The README's Storage section has the measurements.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _serialise_sqlite_writes(self.engine)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        _serialise_sqlite_writes(self.engine)


def _serialise_sqlite_writes(engine: Any) -> None:
    """``BEGIN IMMEDIATE`` holds the write lock from a transaction's first read to its commit (the busy
    timeout is set in ``connect_args``). Optuna has already opened (and pooled) connections to create its
    tables; the pool is emptied so that every later connection gets these settings, and one connection is made
    at once so that the file is in WAL mode (which persists in the file) before any worker opens it."""
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


class StudyNotFoundError(LookupError):
    """``load_study`` of a name the storage does not hold; the message lists the studies it does hold."""


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
    url = normalise(url)
    sqlite = url.startswith(SQLITE)
    if sqlite:  # SQLite creates the file on opening, not the folder it goes in
        Path(url.removeprefix(SQLITE)).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        # pre-ping replaces a pooled connection the server dropped (restart, failover, idle cut) instead of
        # failing the worker's next query with it. No server-side prepared statements: through PgBouncer's
        # transaction pooling (``sweeps.engine.storage.pooler``) the next transaction may run on another
        # server connection, which does not have them.
        engine_kwargs = {
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S, "prepare_threshold": None},
        }
    with warnings.catch_warnings(action="ignore", category=optuna.exceptions.ExperimentalWarning):
        beats = (
            {
                "heartbeat_interval": heartbeat_interval,
                "grace_period": grace_period,
                "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            }
            if heartbeat
            else {}
        )
        storage = (SQLiteStorage if sqlite else ReconnectingStorage)(
            url,
            engine_kwargs=engine_kwargs,
            backoff=Backoff.from_env(),
            skip_compatibility_check=True,
            **beats,
        )
    _check_schema(storage)
    return storage


def _check_schema(storage: RDBStorage) -> None:
    """Optuna's own schema check, on one connection at a time.

    Optuna's holds a transaction open while it asks for a second connection; through PgBouncer with more
    workers starting than it has server connections, every server connection ends up held by a worker
    waiting for a second one, and all of them fail after PgBouncer's query wait timeout.
    """
    current, head = storage.get_current_version(), storage.get_head_version()
    if current != head:
        raise RuntimeError(
            f"the study storage {mask(storage.url)} has Optuna schema {current}, this Optuna "
            f"({optuna.__version__}) needs {head}: upgrade it with `optuna storage upgrade --storage URL`"
            " (or use this storage's Optuna version)"
        )


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
                f"study {name!r} in {mask(storage.url)} exists with directions {existing}, "
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
        raise StudyNotFoundError(f"no study {name!r} in {mask(storage.url)}; {held}") from None
