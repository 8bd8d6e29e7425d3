"""The embedded SQLite storage, made safe for concurrent workers on one machine.

Optuna's defaults (and WAL alone) let two workers pop the same queued trial, because Python's sqlite3 runs the
read of Optuna's read-check-write steps outside any transaction; a deferred ``BEGIN`` makes most asks fail
with "database is locked". ``BEGIN IMMEDIATE`` on every transaction with a long busy timeout gives neither;
WAL keeps readers outside the workers (a dashboard, the sqlite3 shell) from holding up a commit. The README's
Storage section has the measurements.
"""

from __future__ import annotations

from typing import Any

from sweeps.engine.storage.reconnect import ReconnectingStorage

SQLITE_BUSY_TIMEOUT_S = 30
"""How long a SQLite writer waits for the lock before failing; transactions here last milliseconds."""


class SQLiteStorage(ReconnectingStorage):
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
