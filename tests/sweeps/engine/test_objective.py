"""The objective against an MLflow server that cannot be reached: a trained result is kept, an outage spends
no budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from optuna.trial import TrialState

from sweeps.config.sweep import load_sweep
from sweeps.engine.objective import tracking_unreachable
from sweeps.engine.study import create, open_sweep
from sweeps.engine.worker import run_worker
from sweeps.names import SPENT_ATTR
from tests.sweeps.helpers import CONF


def _as_mlflow_raises(error: Exception) -> MlflowException:
    """What ``mlflow.utils.rest_utils`` raises once its retries are spent: a new error inside the handler."""
    try:
        raise error
    except Exception as exc:
        try:
            raise MlflowException(f"API request failed with exception {exc}")  # noqa: B904
        except MlflowException as wrapped:
            return wrapped


def _unreachable(*args: object, **kwargs: object) -> None:
    raise _as_mlflow_raises(requests.exceptions.ConnectionError("refused"))


def test_an_unreachable_server_is_told_apart_from_other_errors() -> None:
    assert tracking_unreachable(_as_mlflow_raises(requests.exceptions.ConnectionError("refused")))
    assert tracking_unreachable(_as_mlflow_raises(requests.exceptions.RetryError("503 x 10")))
    assert not tracking_unreachable(_as_mlflow_raises(ValueError("bad param")))
    assert not tracking_unreachable(RuntimeError("CUDA out of memory"))


def _sweep(tmp_path: Path, data: Path) -> str:
    sweep = load_sweep(
        CONF / "quickstart.yaml",
        ["data.name=mnist", f"data.dir={data}", "data.train_subset=128", "data.holdout_size=64"]
        + ["trainer.max_epochs=1", "study.n_trials=1", "search.optimizer=[momentum]", "study.pruner=none"],
    )
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    create(sweep, url, f"sqlite:///{tmp_path / 'mlflow.db'}")
    return url


def test_a_trained_result_outlives_mlflow_failing_at_the_end(
    tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _sweep(tmp_path, tiny_data)

    monkeypatch.setattr(MlflowClient, "set_tag", _unreachable)  # the objective's last call after training
    assert run_worker("quickstart", url) == 1
    study, _ = open_sweep("quickstart", url)
    [trial] = study.get_trials()
    assert trial.state == TrialState.COMPLETE and 0 <= trial.value <= 1


def test_an_mlflow_outage_during_training_gives_the_budget_back(
    tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _sweep(tmp_path, tiny_data)

    monkeypatch.setattr(
        MlflowClient, "log_batch", _unreachable
    )  # per-epoch metrics, and closing the failed run
    run_worker("quickstart", url)
    study, _ = open_sweep("quickstart", url)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed and not any(t.user_attrs.get(SPENT_ATTR) for t in failed)
