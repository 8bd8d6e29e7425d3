"""A worker's trial loop against real storages: results survive a database outage, errors fail only the
trial, MLflow bookkeeping that fails does not stop the worker, and a spec from the database calls nothing
but what its fields name."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.engine.storage.rdb import create_study_once, open_storage
from sweeps.engine.worker import _not_fatal, parent_best, run_trial, run_worker
from sweeps.names import PHASE_ATTR, TUNED
from tests.sweeps.helpers import (
    database_url,
    free_ports,
    fresh_database,
    invoke,
    take_down,
    tampered_study,
)


def sqlite_study(tmp_path: Path) -> optuna.Study:
    return create_study_once(open_storage(f"sqlite:///{tmp_path / 'optuna.db'}"), "s", ["maximize"])[0]


@pytest.mark.postgres
def test_a_result_finished_while_the_database_is_away_is_stored_once_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fresh_database("sweeps_worker") as database:
        study, _ = create_study_once(
            open_storage(database_url(database), heartbeat_interval=1, grace_period=3), "s", ["maximize"]
        )
        outage = []

        def objective(trial: optuna.Trial) -> float:
            trial.suggest_float("lr", 1e-3, 1e-1, log=True)
            outage.append(take_down(database, 4))  # longer than the grace: the trial must not be failed
            return 0.875

        with caplog.at_level(logging.WARNING):
            told = run_trial(study, objective)
        outage[0].join()
        assert told.state == TrialState.COMPLETE and told.value == 0.875
        assert [(t.state, t.value) for t in study.trials] == [(TrialState.COMPLETE, 0.875)]
        assert "storage set_trial_state_values failed" in caplog.text or "storage get_trial" in caplog.text


def test_an_objective_error_fails_only_its_trial(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    study = sqlite_study(tmp_path)

    def broken(trial: optuna.Trial) -> float:
        raise RuntimeError("out of luck")

    def pruned(trial: optuna.Trial) -> float:
        trial.report(0.1, step=1)
        raise optuna.TrialPruned("pruned at epoch 1")

    with caplog.at_level(logging.WARNING, logger="sweeps.engine.tell"):
        states = [run_trial(study, objective).state for objective in (broken, pruned, lambda trial: 0.5)]
    assert states == [TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE]
    assert "trial 0 failed: RuntimeError('out of luck')" in caplog.text
    assert study.trials[1].value == 0.1  # Optuna's tell: a pruned trial keeps its last reported value


def test_an_interrupted_trial_is_failed_and_the_interrupt_goes_on(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path)

    def interrupted(trial: optuna.Trial) -> float:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trial(study, interrupted)
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_mlflow_bookkeeping_that_fails_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    (port,) = free_ports(1)  # a port nothing listens on: the tracking server is down
    study = sqlite_study(tmp_path)
    trial = run_trial(study, lambda trial: 0.5)
    objective = SimpleNamespace(
        tracking_uri=f"http://127.0.0.1:{port}",
        parent_run_id="0" * 32,
        sweep=SimpleNamespace(study=SimpleNamespace(metric="best_val_acc")),
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="sweeps.engine.tell"):
        _not_fatal("the parent run's best trial", parent_best, objective, study, trial)
    assert time.monotonic() - started < 30
    assert "the parent run's best trial skipped" in caplog.text


def test_the_parent_shows_the_best_search_trial_never_a_retrain(tmp_path: Path, store: object) -> None:
    """A retrain is scored on the test split: it must not pass for the search's best."""
    study = sqlite_study(tmp_path)
    search = run_trial(study, lambda trial: 0.8)
    study.enqueue_trial({}, user_attrs={PHASE_ATTR: TUNED})
    retrain = run_trial(study, lambda trial: 0.95)
    client = store.client  # type: ignore[attr-defined]
    parent = client.create_run(client.create_experiment("e")).info.run_id
    objective = SimpleNamespace(
        tracking_uri=store.uri,  # type: ignore[attr-defined]
        parent_run_id=parent,
        sweep=SimpleNamespace(study=SimpleNamespace(metric="best_val_acc")),
    )

    parent_best(objective, study, retrain)

    tags, metrics = client.get_run(parent).data.tags, client.get_run(parent).data.metrics
    assert tags["best.trial"] == str(search.number) and metrics["best_best_val_acc"] == 0.8


def test_a_study_whose_spec_names_os_system_fails_its_trial_with_nothing_called(
    tmp_path: Path, tiny_data: Path
) -> None:
    marker = tmp_path / "called"
    # what anyone who can write the database can do
    url, created = tampered_study(
        tmp_path, tiny_data, target="os:system", kwargs={"command": f"touch {marker}"}
    )
    run_worker("quickstart", url)

    assert not marker.exists()
    [trial] = created.get_trials()
    assert trial.state == TrialState.FAIL
    shown = invoke("status", "quickstart", "--storage", url)
    assert shown.exit_code == 0
    assert "model.target: os:system is not an nn.Module or a LightningModule class" in " ".join(
        shown.stdout.split()
    )
