"""Every use of Optuna's, MLflow's and Lightning's internals, in one place, each checked by
``tests/sweeps/test_compat``.

The engine asks and tells trials itself (with heartbeats, give-backs and reconnects ``Study.optimize`` does
not offer), so it leans on names the libraries do not promise to keep. Each is reached only through this
module, and the test checks that each still exists and still behaves as assumed; the upper bounds of
``optuna``, ``mlflow`` and ``lightning`` in ``pyproject.toml`` are the versions that test passed on. Imports
are lazy, so that ``sweeps.tracking`` using the MLflow half does not import Optuna.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import lightning as L
    import optuna
    from optuna.storages import BaseStorage, RDBStorage
    from optuna.trial import FrozenTrial

RDB_PRIVATE_CALLS = (
    "_create_new_trial",
    "_set_trial_param",
    "_get_trials",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
)
"""Private ``RDBStorage`` methods that Optuna's own cache layer and ``fail_stale_trials`` call directly, not
through the public ones: a storage that retries every call must wrap these too."""

OPTIMIZE_ONLY_WARNING = "Heartbeat of storage is supposed to be used with Study.optimize"
"""What ``Study.ask`` warns when the storage has a heartbeat; the engine beats the heartbeat itself."""


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study was loaded from (Optuna has no public accessor)."""
    return study._storage


def trial_id(trial: optuna.Trial) -> int:
    """The storage's id of a trial (unlike its number, unique across studies); ``Trial`` keeps it private."""
    return trial._trial_id


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` without the warning that heartbeats belong to ``Study.optimize``: an ask-and-tell
    worker beats them itself (``sweeps.engine.storage.heartbeat``)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", OPTIMIZE_ONLY_WARNING)
        return study.ask()


def pop_queued(study: optuna.Study) -> optuna.Trial | None:
    """``Study.ask`` without its fallback: a queued (WAITING) trial, claimed as ``ask`` claims one, or None
    when none is left. Two workers that both saw the last queued trial would otherwise leave a fresh trial
    behind, made by the loser's ``ask`` and failed unrun."""
    import optuna

    study._thread_local.cached_all_trials = None  # as ask does: the sampler reads the study afresh
    found = study._pop_waiting_trial_id()
    return None if found is None else optuna.Trial(study, found)


def set_waiting(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    """Move a RUNNING trial back to WAITING, params and attrs kept: the next ask pops it again, under the same
    number. Optuna moves trials only forward through ``tell``; its storage's state write does the step back,
    as popping a queued trial does the step forward."""
    from optuna.trial import TrialState

    storage = storage_of(study)
    storage.set_trial_state_values(trial_id(trial), TrialState.WAITING)
    return storage.get_trial(trial_id(trial))


class StaleTrialsHook:
    """Mixin for an ``RDBStorage`` subclass: ``stale_trial_ids`` decides which trials ``fail_stale_trials``
    fails, given the ones Optuna found (it asks the storage's private ``_get_stale_trial_ids``)."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self.stale_trial_ids(study_id, super()._get_stale_trial_ids(study_id))  # type: ignore[misc]

    def stale_trial_ids(self, study_id: int, found: list[int]) -> list[int]:
        return found


def never_beaten(storage: RDBStorage, study_id: int, grace: timedelta) -> list[int]:
    """Ids of the study's RUNNING trials without any heartbeat that started more than ``grace`` ago (Optuna's
    heartbeat table has no public query)."""
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    session = storage.scoped_session()
    try:
        unbeaten = (
            session.query(models.TrialModel)
            .outerjoin(models.TrialHeartbeatModel)
            .filter(models.TrialModel.study_id == study_id)
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .filter(models.TrialHeartbeatModel.trial_id.is_(None))
            .all()
        )
        now = datetime.now()  # datetime_start reads as naive local time
        return [t.trial_id for t in unbeaten if t.datetime_start and now - t.datetime_start > grace]
    finally:
        session.close()


def artifact_repository(artifact_uri: str, tracking_uri: str) -> Any:
    """MLflow's artifact repository of a run's ``artifact_uri``: it deletes artifacts, ``MlflowClient``
    cannot."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)


def checkpoint_state(trainer: L.Trainer) -> dict[str, Any]:
    """The checkpoint ``Trainer.save_checkpoint`` would write, as a dict in memory: a pack cuts each trial's
    file out of it, which the public call (one file, whole) cannot do."""
    return trainer._checkpoint_connector.dump_checkpoint(False)  # a save, with optimizer and callback states
