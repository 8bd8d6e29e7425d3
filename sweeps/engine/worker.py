"""A worker: joins a sweep's study and runs trials until the budget queue is empty (or the timeout).

It outlives a blip of either server. The study storage waits for its database to come back
(``sweeps.engine.storage.reconnect``), and a trial is told inside its heartbeat, so a finished trial's
value waits for the database too rather than being lost. MLflow's own HTTP retries (``sweeps worker`` sets
them) wait out a tracking-server restart; MLflow bookkeeping outside a trial (closing lost runs, the parent's
best) that still fails is logged and left for the next trial, never fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import optuna
from mlflow import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from sweeps.engine.checkpoints import store_for, sweep_up
from sweeps.engine.objective import Objective
from sweeps.engine.packs import run_pack
from sweeps.engine.placement import placement, worker_label
from sweeps.engine.preemption import STOP
from sweeps.engine.retry import first_line
from sweeps.engine.storage.heartbeat import HEARTBEAT_INTERVAL_S, running_trial
from sweeps.engine.study import (
    best_search,
    close_lost_runs,
    deadline,
    end_parent,
    finished,
    open_sweep,
    search_failed,
    tracking_store,
    waiting,
)
from sweeps.engine.tell import interrupted, state_of, tell
from sweeps.names import CONFIG_ATTR, EXPERIMENT_ATTR, PARENT_ATTR
from sweeps.tracking import runs

_logger = logging.getLogger(__name__)


def run_worker(
    name: str, storage_url: str, tracking_uri: str | None = None, index: int = 0, pack: int | None = None
) -> int:
    """Run trials of study ``name``, each as soon as the previous ends, or ``pack`` at a time (default: the
    spec's ``study.pack``) as packs (:mod:`sweeps.engine.packs`); returns how many ran.

    Optuna's heartbeat marks a killed worker's trial FAIL and its retry callback re-queues the trial with the
    same params, which any worker then picks up here; so a worker that finds nothing waiting stays while
    another's trial runs, in case that worker died. A worker told to stop (:mod:`sweeps.engine.preemption`)
    gives its trials back and returns; one told while it still started returns at once, having taken
    nothing (and not ending the sweep's parent run, which an empty queue would seem to finish)."""
    if STOP.requested:
        return 0
    study, sweep = open_sweep(name, storage_url, worker=index)
    attrs = study.user_attrs
    where = placement()
    label = worker_label(where)
    ends = deadline(study, sweep)
    uri = tracking_store(study, tracking_uri)
    store = store_for(storage_url, name, uri, attrs[PARENT_ATTR])
    objective = Objective(
        sweep, uri, attrs[EXPERIMENT_ATTR], attrs[PARENT_ATTR], label, ends, store, placement=where
    )
    size = pack or sweep.study.pack
    queued = sweep.study.n_trials is not None  # the budget is a queue of trials
    ran = 0
    while time.time() < ends and not STOP.requested:
        optuna.storages.fail_stale_trials(study)
        _not_fatal("closing lost MLflow runs", close_lost_runs, study, objective.tracking_uri)
        if queued and not waiting(study):
            if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                break
            # Another worker's trial runs, and that worker may be dead: once its heartbeat is stale the
            # trial is failed and queued again above, and this worker runs it, so the budget is all spent.
            time.sleep(HEARTBEAT_INTERVAL_S)
            continue
        if size > 1:
            told = run_pack(study, objective, size)
        else:  # none when another worker took the last queued trial first
            told = [t for t in [run_trial(study, objective, queued)] if t is not None]
        complete = [t for t in told if t.state == TrialState.COMPLETE]
        if complete:  # one write of the best per round, however many trials it told
            _not_fatal("the parent run's best trial", parent_best, objective, study, complete[-1])
        _not_fatal("deleting finished trials' checkpoints", sweep_up, study, store)
        ran += len(told)
    if finished(study, sweep):
        status = "FAILED" if search_failed(study)[0] else "FINISHED"
        _not_fatal("ending the parent run", end_parent, study, objective.tracking_uri, status)
    return ran


def run_trial(study: optuna.Study, objective: Objective, queued: bool = False) -> FrozenTrial | None:
    """One trial, as ``Study.optimize(n_trials=1, catch=(Exception,))`` runs it, but told while its heartbeat
    still beats: a tell that waits for the database keeps its trial alive, and its value is stored once the
    database is back. An objective's error fails the trial (logged) and the worker goes on. With ``queued``
    only a queued trial runs: None when none was left."""
    # the loop failed stale trials just before
    with running_trial(study, fail_stale=False, queued=queued) as trial:
        if trial is None:
            return None
        value, state = None, None
        try:
            value = objective(trial)
        except Exception as error:
            state = state_of(trial, error)
        except KeyboardInterrupt:
            interrupted(study, trial)
            raise
        return tell(study, trial, value, state)


def _not_fatal(what: str, step: Callable[..., None], *args: object) -> None:
    """MLflow bookkeeping that a later trial does again (idempotent): an error, once MLflow's own retries
    are spent, is logged instead of stopping the worker."""
    try:
        step(*args)
    except Exception as error:
        _logger.warning("%s skipped (%s); done again after the next trial", what, first_line(error))


def parent_best(objective: Objective, study: optuna.Study, trial: FrozenTrial) -> None:
    """After a complete trial, write the study's best trial so far onto the parent run."""
    best = best_search(study) if trial.state == TrialState.COMPLETE else None
    if best is not None:  # None also with two objectives
        runs.record_best(
            MlflowClient(objective.tracking_uri),
            objective.parent_run_id,
            objective.sweep.study.metric,
            best.value,
            best.number,
            best.user_attrs.get(CONFIG_ATTR, {}),
        )
