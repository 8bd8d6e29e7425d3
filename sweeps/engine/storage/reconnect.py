"""A storage that outlives its database going away: every call that loses its connection is tried again with
capped exponential backoff (``sweeps.engine.retry``) for up to ``$SWEEPS_RECONNECT_TIMEOUT`` seconds (default
300), logged at each attempt. A URL that never answered fails at once instead (a typo should not wait five
minutes)."""

from __future__ import annotations

import functools
import threading
import time
from datetime import timedelta
from typing import Any

import optuna
from optuna.storages import RDBStorage

from sweeps.compat import RDB_PRIVATE_CALLS, StaleTrialsHook, never_beaten
from sweeps.engine.retry import Backoff, retry

_RECONNECTED = (
    tuple(name for name in vars(optuna.storages.BaseStorage) if name[0] != "_" and name != "remove_session")
    + RDB_PRIVATE_CALLS
)
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


def _reconnects_calls(cls: type[RDBStorage]) -> type[RDBStorage]:
    """Wrap each of ``_RECONNECTED`` on the subclass (Optuna's own class is left as it is)."""
    for name in _RECONNECTED:
        setattr(cls, name, _reconnecting(getattr(cls, name)))
    return cls


@_reconnects_calls
class ReconnectingStorage(StaleTrialsHook, RDBStorage):
    """An ``RDBStorage`` whose calls wait for a lost database to come back (see the module docstring).

    Not retried: ``record_heartbeat``, whose loop tries again every interval by itself and must never hold
    up the end of a trial. A retried write whose first attempt committed before its connection dropped is
    safe where Optuna's writes are upserts (params, attrs, intermediate values); a tell that finds its trial
    already finished raises ``UpdateFinishedTrialError``, which the worker checks (``sweeps.engine.worker``).

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

    def stale_trial_ids(self, study_id: int, found: list[int]) -> list[int]:
        if time.monotonic() - self.outage_at < (self.grace_period or 0):
            return []
        # Also RUNNING trials that never got a heartbeat, started longer than the grace ago. Optuna skips
        # them, but a worker beats its trial at once after taking it, so such a trial was lost: its worker
        # died in between, or the reply to the write that took it was lost and the write, tried again, found
        # it taken and moved on to another. Either way it would stay RUNNING for ever.
        grace = timedelta(seconds=self.grace_period or 2 * (self.heartbeat_interval or 0))
        return found + never_beaten(self, study_id, grace)

    def _disconnected(self, error: BaseException) -> bool:
        lost = _lost_connection(error)
        if lost:
            self.outage_at = time.monotonic()
        return lost


def _lost_connection(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it; Optuna wraps SQLAlchemy's errors) says the database connection
    failed or dropped, as opposed to a bad statement or a conflict, which retrying would not fix.

    A ``PendingRollbackError`` is judged by the error it was raised while handling: Optuna's trial read
    catches a dropped connection and tries a slower query in the same session, which then refuses to run
    until the lost transaction is rolled back (Optuna rolls back as the call ends, so a retry starts clean).
    """
    from sqlalchemy import exc

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, exc.OperationalError | exc.InterfaceError | exc.DisconnectionError):
            return True
        if isinstance(cause, exc.DBAPIError) and cause.connection_invalidated:
            return True
        during = cause.__context__ if isinstance(cause, exc.PendingRollbackError) else None
        cause = cause.__cause__ or during
    return False
