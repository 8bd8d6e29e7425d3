"""Heartbeats of an ask-and-tell worker's trials, which Optuna beats only inside ``Study.optimize``: without
them a killed worker's trial would stay RUNNING for ever."""

from __future__ import annotations

import logging
import os
import threading
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.storages import BaseStorage

from sweeps.compat import ask, pop_queued, storage_of, trial_id
from sweeps.engine.retry import first_line

HEARTBEAT_INTERVAL_S = int(os.environ.get("SWEEPS_HEARTBEAT_INTERVAL", 10))
GRACE_PERIOD_S = int(os.environ.get("SWEEPS_GRACE_PERIOD", 60))
"""A beat every 10 s costs one tiny write per worker; 60 s of silence (six missed beats, more than the SQLite
busy timeout plus one interval) is what it takes to call a trial dead, so a live worker stalled in a long
call or a lock wait is never failed, while a killed one's trial is retried within a minute. Both can be set
per machine with $SWEEPS_HEARTBEAT_INTERVAL and $SWEEPS_GRACE_PERIOD (seconds)."""

MAX_RETRY = 2
"""A killed worker's trial runs at most three times: a trial whose parameters get its worker OOM-killed
should not take the whole sweep down with it."""

_logger = logging.getLogger(__name__)


@contextmanager
def running_trial(
    study: optuna.Study, fail_stale: bool = True, queued: bool = False
) -> Iterator[optuna.Trial | None]:
    """``study.ask()`` for an ask-and-tell worker, with what ``Study.optimize`` does around it; tell after.

    First stale trials are failed (the retry callback queues each again, so this ask may pick one up); then
    the trial's heartbeat is recorded at once and every interval while the block runs, by the one heartbeat
    thread of this worker's storage (:class:`Heartbeat`). Without a heartbeat Optuna never finds a trial
    stale, so a killed ask-and-tell worker's trial would stay RUNNING for ever. Tell the trial inside the
    block, so that it keeps beating while a tell waits for the database to come back. With ``queued`` (a
    budget of queued trials) only a queued trial is taken: None when another worker took the last one.
    """
    storage = storage_of(study)
    # None: a storage without heartbeats (Optuna's journal) or opened without one
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if fail_stale:  # off for a caller that has just done it
        with warnings.catch_warnings(action="ignore", category=optuna.exceptions.ExperimentalWarning):
            optuna.storages.fail_stale_trials(study)
    trial = pop_queued(study) if queued else ask(study)
    if trial is None or interval is None:
        yield trial
        return
    heartbeat = Heartbeat.of(storage, interval)
    heartbeat.add(trial_id(trial))
    try:
        yield trial
    finally:
        heartbeat.remove(trial_id(trial))


class Heartbeat:
    """One thread per worker (per study it loaded) beating for all of the worker's running trials.

    A pack of 256 trials would otherwise start 256 threads, each writing to the database every interval.
    The thread runs while the worker has a running trial and ends with the last one. A beat that fails (the
    database briefly away) is logged and tried again at the next interval, where Optuna's own heartbeat
    thread would die and let a live trial be failed.
    """

    _of: weakref.WeakKeyDictionary[BaseStorage, Heartbeat] = weakref.WeakKeyDictionary()
    _registry = threading.Lock()

    def __init__(self, storage: BaseStorage, interval: int) -> None:
        self.storage = storage
        self.interval = interval
        self._trials: set[int] = set()
        self._lock = threading.Lock()
        self._emptied = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    @classmethod
    def of(cls, storage: BaseStorage, interval: int) -> Heartbeat:
        """The heartbeat of ``storage`` (a study's, :func:`sweeps.compat.storage_of`), made on first use."""
        with cls._registry:
            if storage not in cls._of:
                cls._of[storage] = cls(storage, interval)
            return cls._of[storage]

    def add(self, trial: int) -> None:
        """Beat for trial id ``trial`` at once and from now on; starts the thread if none runs. A first beat
        lost to a database blip is tried again by the thread: the trial was taken, so it must run."""
        self._beat(trial)
        with self._lock:
            self._trials.add(trial)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
                self._thread.start()

    def remove(self, trial: int) -> None:
        """Stop beating for trial id ``trial``; the thread ends once no trial is left."""
        with self._lock:
            self._trials.discard(trial)
            if not self._trials:
                self._emptied.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._trials:
                    self._emptied.wait(self.interval)
                if not self._trials:
                    self._thread = None
                    return
                trials = sorted(self._trials)
            for trial in trials:
                self._beat(trial)

    def _beat(self, trial: int) -> None:
        try:
            self.storage.record_heartbeat(trial)
        except optuna.exceptions.StorageInternalError as error:
            _logger.warning(
                "heartbeat of trial id %d not recorded (%s); trying again in %d s",
                trial,
                first_line(error),
                self.interval,
            )
