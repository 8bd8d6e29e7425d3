"""Experiments as the MLflow UI should open them: on their training runs, the study's metric in view."""

from __future__ import annotations

import json
from pathlib import Path

from sweeps.names import EXPERIMENT_KIND_TAG, TRAINING_KIND, VIEW_TAG
from sweeps.tracking.runs import get_or_create_experiment, log_files, start_parent, view_key
from tests.sweeps.helpers import Store


def test_a_new_experiment_is_tagged_as_training_runs_and_found_again(store: Store) -> None:
    created = get_or_create_experiment(store.client, "sweep", store.uri)
    experiment = store.client.get_experiment(created)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND == "custom_model_development"
    assert get_or_create_experiment(store.client, "sweep", store.uri) == created


def test_log_files_logs_just_those_files(store: Store, tmp_path: Path) -> None:
    run = store.client.create_run(get_or_create_experiment(store.client, "files", store.uri)).info.run_id
    kept, left = tmp_path / "report.md", tmp_path / "other.csv"
    kept.write_text("# report\n")
    left.write_text("a\n")
    log_files(store.uri, run, [kept], "report/workloads")
    listed = [a.path for a in store.client.list_artifacts(run, "report/workloads")]
    assert listed == ["report/workloads/report.md"]


def test_a_sweeps_runs_view_shows_its_metric(store: Store) -> None:
    study = {"metric": "val_loss", "direction": "minimize"}
    experiment, parent = start_parent(store.uri, "sweep", "s", "sqlite:///optuna.db", study, {})
    view = json.loads(store.client.get_experiment(experiment).tags[f"{VIEW_TAG}{parent}"])
    # a one-seed trial's metric, a several-seed trial's mean, the parent's best so far: MLflow's column keys
    metrics = ["metrics.`val_loss`", "metrics.`val_loss_mean`", "metrics.`best_val_loss`"]
    assert view["selectedColumns"] == [*metrics, "params.`optimizer`", "params.`lr`"]
    assert "orderByKey" not in view  # sorted, MLflow lists every run flat: trials keep their sweep's order
    assert view_key(store.uri, experiment, parent) == parent  # what `sweeps ui` links to
    older = store.client.create_run(experiment).info.run_id  # a sweep made before the view existed
    assert view_key(store.uri, experiment, older) is None
