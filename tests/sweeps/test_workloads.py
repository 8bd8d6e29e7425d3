"""A user's own workload end to end (``tests/workload``: a network, a LightningModule for another task, a data
module and an optimizer, outside ``models/``): train, sweep, shoot-out and report through the real CLI, and
every way of naming it wrongly refused before anything is created."""

from __future__ import annotations

import math
import os
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.sweeps.helpers import REPO, invoke, logged_model, squash, sweeps_process

WORKLOAD = REPO / "tests" / "workload" / "conf"
ON_PATH = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
"""The workload imports as ``tests.workload``, as from a checkout's root."""


def sweeps(*args: str, cwd: Path) -> str:
    process = sweeps_process(*args, cwd=cwd, env=ON_PATH)
    out, _ = process.communicate(timeout=900)
    assert process.returncode == 0, out
    return out


@pytest.mark.slow
@pytest.mark.long
def test_the_users_workload_trains_sweeps_shoots_out_and_reports(tmp_path: Path) -> None:
    out = sweeps("train", str(WORKLOAD / "train.yaml"), cwd=tmp_path)
    assert "done best val_acc" in out and out.count("epoch ") == 3
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("workload").experiment_id])
    assert run.data.params["optimizer"] == "tests.workload.optim:SignSGD"
    assert (run.data.params["model"], run.data.params["dataset"]) == (
        "tests.workload.net:MLP",
        "tests.workload.blobs:Blobs",
    )
    assert (run.data.params["momentum"], run.data.params["scheduler"]) == ("0.9", "cosine")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2, 3]
    assert run.data.metrics["best_val_acc"] > 0.6  # three blobs, far above chance

    sweeps("run", str(WORKLOAD / "shootout.yaml"), cwd=tmp_path)
    sweeps("report", "workload_shootout", cwd=tmp_path)
    report = (tmp_path / "reports" / "workload_shootout" / "report.md").read_text()
    assert "Fair shoot-out" in report and "tests.workload.optim:SignSGD" in report
    assert "model.kwargs.hidden=" in report  # a searched setting among the tuned hyperparameters

    study = optuna.load_study(study_name="workload_shootout", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    retrains = [t for t in trials if t.user_attrs.get("sweeps.phase", "search") != "search"]
    assert len(trials) == 8 and len(retrains) == 4
    kept = {p.name for p in (tmp_path / "checkpoints" / "workload_shootout").iterdir()}
    assert len(kept) == 5 and {t.user_attrs["sweeps.checkpoint"] for t in retrains} < kept  # + the best
    seed_run = client.search_runs(
        [study.user_attrs["sweeps.experiment_id"]],
        f"tags.mlflow.parentRunId = '{retrains[0].user_attrs['mlflow_run_id']}'",
    )[0]
    network = logged_model(f"sqlite:///{tmp_path / 'mlflow.db'}", seed_run.info.run_id)
    assert type(network).__name__ == "MLP"


@pytest.mark.slow
def test_a_users_lightning_module_is_swept_on_its_own_metric_with_the_configs_optimizer(
    tmp_path: Path,
) -> None:
    out = sweeps("run", str(WORKLOAD / "autoencoder.yaml"), cwd=tmp_path)
    sweeps("report", "autoencoder", cwd=tmp_path)
    assert "GPU available:" not in out  # the pre-flight fit runs in this process: no banner without -v

    study = optuna.load_study(study_name="autoencoder", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(done) == 3 and math.isfinite(study.best_value)  # its own SGD at lr=100 would diverge
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(study.best_trial.user_attrs["mlflow_run_id"])
    assert run.data.params["optimizer"] == study.best_trial.params["optimizer"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mse")] == [1, 2, 3]
    assert "val_acc" not in run.data.metrics
    model = logged_model(f"sqlite:///{tmp_path / 'mlflow.db'}", run.info.run_id)
    assert type(model).__name__ == "AutoEncoder" and "configure_optimizers" not in vars(model)
    assert "val_mse @3" in (tmp_path / "reports" / "autoencoder" / "report.md").read_text()


REFUSED = [
    # (command, spec, overrides, the field the error names, a fragment of the message)
    ("train", "train", ["model.target=nowhere.nothing:Net"], "model.target", "does not import"),
    ("train", "train", ["model.target=tests.workload.net:Missing"], "model.target", "has no 'Missing'"),
    (
        "train",
        "train",
        ["model.target=tests.workload.optim:SignSGD"],
        "model.target",
        "not an nn.Module or a",
    ),
    ("train", "train", ["data.target=tests.workload.net:MLP"], "data.target", "not a LightningDataModule"),
    ("train", "train", ["model.target=not a path"], "model.target", "package.module:name"),
    ("train", "train", ["model.kwargs.depth=3"], "model.kwargs.depth", "takes no 'depth'"),
    ("train", "train", ["model.kwargs.hidden=wide"], "model.kwargs.hidden", "integer"),
    ("train", "train", ["optimizer.name=tests.workload.net:MLP"], "optimizer.name", "not a torch.optim"),
    ("train", "train", ["optimizer.nesterov=true"], "optimizer.nesterov", "SignSGD takes no 'nesterov'"),
    (
        "train",
        "train",
        ["data.target=tests.workload.blobs:FullBatch"],
        "data.batch_size",
        "takes no batch_size",
    ),
    (
        "run",
        "shootout",
        ["data.target=tests.workload.blobs:FullBatch"],
        "search.batch_size",
        "takes no batch_size",
    ),
    (
        "run",
        "autoencoder",
        ["study.metric=val_acc", "study.direction=maximize"],
        "study.metric",
        "logs no 'val_acc'; it logs: epoch_seconds, train_mse, val_mse",
    ),
    (
        "run",
        "shootout",
        ["search.model.kwargs.depth=[1, 2]"],
        "search.model.kwargs.depth",
        "takes no 'depth'",
    ),
    (
        "run",
        "shootout",
        ["search.model.kwargs.hidden={low: 8, high: 9.5}"],
        "search.model.kwargs.hidden",
        "integer",
    ),
]


@pytest.mark.parametrize(
    ("command", "spec", "overrides", "field", "fragment"), REFUSED, ids=[" ".join(r[2]) for r in REFUSED]
)
def test_a_wrong_target_is_refused_naming_the_field_before_anything_is_created(
    command: str, spec: str, overrides: list[str], field: str, fragment: str, tmp_path: Path
) -> None:
    result = invoke(command, str(WORKLOAD / f"{spec}.yaml"), *overrides)

    assert result.exit_code == 2, result.output
    assert f"{field}:" in squash(result.stderr) and squash(fragment) in squash(result.stderr), result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()
