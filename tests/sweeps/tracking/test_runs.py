"""Experiments as the MLflow UI should open them: on their training runs."""

from __future__ import annotations

from pathlib import Path

from sweeps.names import EXPERIMENT_KIND_TAG, TRAINING_KIND
from sweeps.tracking.runs import get_or_create_experiment, log_files
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
