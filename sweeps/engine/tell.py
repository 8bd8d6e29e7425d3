"""Telling Optuna how a trial ended, the same for a trial run alone and for a member of a pack."""

from __future__ import annotations

import logging

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from sweeps.compat import set_waiting
from sweeps.engine.preemption import Preempted
from sweeps.engine.retry import first_line
from sweeps.names import FAIL_REASON_ATTR, GIVEN_BACK_ATTR

_logger = logging.getLogger(__name__)


def state_of(trial: optuna.Trial, error: Exception) -> TrialState:
    """The state of a trial whose objective raised ``error``: PRUNED when pruned, WAITING (given back) when
    preempted, else FAIL with the error's first line kept as the trial's fail reason (logged with its
    traceback)."""
    if isinstance(error, Preempted):
        _logger.info("trial %d %s", trial.number, error)
        return TrialState.WAITING
    if isinstance(error, optuna.TrialPruned):
        _logger.info("trial %d pruned: %s", trial.number, error)
        return TrialState.PRUNED
    trial.set_user_attr(FAIL_REASON_ATTR, f"{type(error).__name__}: {first_line(error)}"[:500])
    _logger.warning("trial %d failed: %r", trial.number, error, exc_info=error)
    return TrialState.FAIL


def interrupted(study: optuna.Study, trial: optuna.Trial) -> None:
    """A trial stopped by Ctrl-C: FAIL, its budget slot given back."""
    trial.set_user_attr(FAIL_REASON_ATTR, "interrupted")
    tell(study, trial, None, TrialState.FAIL)


def tell(study: optuna.Study, trial: optuna.Trial, value: object, state: TrialState | None) -> FrozenTrial:
    """``study.tell``, where a trial found already finished is no error: either this tell's own write
    committed before its connection dropped (so the storage tried again), or another worker failed the
    trial during an outage longer than the heartbeat grace. The stored trial is the truth either way; the
    second case is logged, its params being queued again by the heartbeat retry. WAITING gives the trial
    back (:func:`give_back`)."""
    if state == TrialState.WAITING:
        return give_back(study, trial)
    try:
        return study.tell(trial, value, state)
    except (UpdateFinishedTrialError, ValueError):  # Optuna: "Cannot tell a FAIL trial", or a lost race
        stored = study.tell(trial, value, state, skip_if_finished=True)  # raises again if not finished
    if stored.state == TrialState.FAIL and state != TrialState.FAIL:
        _logger.warning("trial %d was failed by another worker while the database was away", trial.number)
    return stored


def give_back(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    """A preempted trial back in the queue as it was: WAITING, with its number, params, user attrs (its
    checkpoint key, its MLflow run) and retry budget; the next worker to ask resumes it, and reopens its run
    (``GIVEN_BACK_ATTR``)."""
    trial.set_user_attr(GIVEN_BACK_ATTR, trial.number)
    return set_waiting(study, trial)
