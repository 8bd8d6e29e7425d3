"""Each library internal ``sweeps.compat`` relies on still exists and behaves as the engine assumes, on the
installed Optuna and MLflow (the versions ``pyproject.toml`` bounds)."""

from __future__ import annotations

import time
import warnings
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from sweeps import compat


@pytest.fixture
def storage(tmp_path: Path) -> RDBStorage:
    return RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")


def test_a_study_keeps_its_storage_and_a_trial_its_id(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=7, grace_period=20)
    study = optuna.create_study(storage=storage, study_name="s")
    compat.ask(study)
    trial = compat.ask(study)
    kept = compat.storage_of(study)  # Optuna's cache in front of the RDB storage, heartbeats passed through
    assert isinstance(kept, BaseStorage) and kept.get_heartbeat_interval() == 7
    kept.record_heartbeat(compat.trial_id(trial))
    study_id = storage.get_study_id_from_name("s")
    assert compat.trial_id(trial) == storage.get_trial_id_from_study_id_trial_number(study_id, 1)


def test_optuna_calls_the_private_rdb_methods_a_reconnecting_storage_wraps(tmp_path: Path) -> None:
    """Were one of them renamed or no longer called, a lost connection in it would not be retried."""
    called: Counter[str] = Counter()

    def counting(name: str) -> Any:
        method = getattr(RDBStorage, name)

        def call(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
            called[name] += 1
            return method(self, *args, **kwargs)

        return call

    counted = type("Counted", (RDBStorage,), {name: counting(name) for name in compat.RDB_PRIVATE_CALLS})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = counted(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1, grace_period=2)
        study = optuna.create_study(storage=storage)
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        optuna.storages.fail_stale_trials(study)
    assert study.best_trial.number in (0, 1)
    assert set(called) == set(compat.RDB_PRIVATE_CALLS)


def test_pop_queued_takes_the_queued_trials_in_order_then_none_and_makes_no_trial(
    storage: RDBStorage,
) -> None:
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial({"x": 0.25})
    study.enqueue_trial({"x": 0.5})
    done = compat.pop_queued(study)
    study.tell(done, done.suggest_float("x", 0, 1))
    popped = compat.pop_queued(study)

    assert (done.number, popped.number) == (0, 1) and popped.suggest_float("x", 0, 1) == 0.5
    assert compat.pop_queued(study) is None  # the queue is empty: no fresh trial, unlike ask
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.RUNNING]


def test_ask_on_a_storage_with_heartbeats_warns_of_nothing(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage)
    with pytest.warns(UserWarning, match=compat.OPTIMIZE_ONLY_WARNING):
        study.ask()  # the warning compat.ask silences is still Optuna's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compat.ask(study).number == 1


def test_a_trial_set_waiting_is_asked_again_with_its_number_and_params(storage: RDBStorage) -> None:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    x = trial.suggest_float("x", 0, 1)
    trial.set_user_attr("key", "kept")
    assert compat.set_waiting(study, trial).state == TrialState.WAITING
    again = study.ask()
    assert (again.number, again.params, again.user_attrs) == (trial.number, {"x": x}, {"key": "kept"})


def test_fail_stale_trials_fails_the_trials_the_hook_chooses(tmp_path: Path) -> None:
    class Hooked(compat.StaleTrialsHook, RDBStorage):
        def stale_trial_ids(self, study_id: int, found: list[int]) -> list[int]:
            assert found == []  # nothing beaten, nothing stale by Optuna's own reckoning
            return [chosen]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = Hooked(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1, grace_period=2)
        study = optuna.create_study(storage=storage)
        kept, failed = compat.ask(study), compat.ask(study)
        chosen = compat.trial_id(failed)
        optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.FAIL]
    assert kept.number == 0


def test_never_beaten_lists_running_trials_without_a_heartbeat_past_the_grace(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage)
    beaten, silent, done = compat.ask(study), compat.ask(study), compat.ask(study)
    storage.record_heartbeat(compat.trial_id(beaten))
    study.tell(done, 1.0)
    study_id = storage.get_study_id_from_name(study.study_name)
    assert compat.never_beaten(storage, study_id, timedelta(hours=1)) == []
    time.sleep(1.1)
    assert compat.never_beaten(storage, study_id, timedelta(seconds=1)) == [compat.trial_id(silent)]


def test_the_artifact_repository_deletes_a_runs_artifacts(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(name)
        client.log_artifact(run.info.run_id, str(tmp_path / name), "checkpoints/trial-0")
    repository = compat.artifact_repository(run.info.artifact_uri, uri)
    repository.delete_artifacts("checkpoints/trial-0/a.txt")
    listed = client.list_artifacts(run.info.run_id, "checkpoints/trial-0")
    assert [Path(a.path).name for a in listed] == ["b.txt"]


def test_lightnings_checkpoint_state_is_what_save_checkpoint_writes(tmp_path: Path) -> None:
    import lightning as L
    import torch
    from lightning.pytorch.demos.boring_classes import BoringModel

    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=0, logger=False, enable_progress_bar=False
    )
    trainer.fit(BoringModel())
    state = compat.checkpoint_state(trainer)
    trainer.save_checkpoint(tmp_path / "saved.ckpt")
    saved = torch.load(tmp_path / "saved.ckpt", weights_only=False)
    core = {"epoch", "global_step", "state_dict", "optimizer_states", "loops", "callbacks"}
    assert core <= set(state) & set(saved) and state["epoch"] == saved["epoch"] == 1  # after epoch 0
    assert all(torch.equal(state["state_dict"][k], v) for k, v in saved["state_dict"].items())
