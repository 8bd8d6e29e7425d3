"""Heartbeats of an ask-and-tell worker's trials, which Optuna beats only inside ``Study.optimize``: without
them a killed worker's trial would stay RUNNING for ever."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.storages import BaseStorage

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
def running_trial(study: optuna.Study, fail_stale: bool = True) -> Iterator[optuna.Trial]:
    """``study.ask()`` for an ask-and-tell worker, with what ``Study.optimize`` does around it; tell after.

    First stale trials are failed (the retry callback queues each again, so this ask may pick one up); then
    the trial's heartbeat is recorded at once and every interval while the block runs. Without a heartbeat
    Optuna never finds a trial stale, so a killed ask-and-tell worker's trial would stay RUNNING for ever.
    A beat that fails (the database briefly away) is logged and tried again at the next interval, where
    Optuna's own heartbeat thread would die and let a live trial be failed. Tell the trial inside the block,
    so that it keeps beating while a tell waits for the database to come back.
    """
    storage = study._storage  # Optuna has no public accessor for a study's storage
    # None: a storage without heartbeats (Optuna's journal) or opened without one
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        if fail_stale:  # off for a caller that has just done it
            optuna.storages.fail_stale_trials(study)
        trial = study.ask()
    if interval is None:
        yield trial
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    storage.record_heartbeat(trial_id)
    stop = threading.Event()
    beating = threading.Thread(
        target=_beat,
        args=(storage, trial_id, interval, stop),
        name=f"heartbeat-trial-{trial.number}",
        daemon=True,
    )
    beating.start()
    try:
        yield trial
    finally:
        stop.set()
        beating.join()


def _beat(storage: BaseStorage, trial_id: int, interval: int, stop: threading.Event) -> None:
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
