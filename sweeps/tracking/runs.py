"""The lifecycle of a sweep's MLflow runs: the parent run of a sweep, one child per trial, a grandchild per
seed, and how each ends. Every run is created, written outside training and closed here, so the tags and
states the UI and the report read are set in one place.

MLflow's states: a finished trial is ``FINISHED``; a pruned or interrupted one ``KILLED``; a diverged or
failed one ``FAILED``, each with the Optuna state, an outcome and a reason as tags.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from sweeps.masking import mask
from sweeps.names import (
    EXPERIMENT_KIND_TAG,
    OPTIMIZER_TAG,
    OUTCOME_TAG,
    PARENT_TAG,
    PHASE_TAG,
    REASON_TAG,
    ROLE_TAG,
    STATE_TAG,
    STORAGE_TAG,
    STUDY_TAG,
    TRAINING_KIND,
    TRIAL_TAG,
    VIEW_TAG,
    WORKER_TAG,
)
from sweeps.tracking.environment import environment_tags
from sweeps.tracking.uris import artifact_location


def flat_params(values: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params are strings; tuples (betas) and None get a stable, readable form."""
    return {key: "none" if value is None else str(value) for key, value in values.items()}


def get_or_create_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment called ``name``; created if new, its artifacts where :func:`artifact_location` says,
    tagged as training runs so that the MLflow UI opens it on its runs."""
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    return client.create_experiment(
        name, artifact_location=artifact_location(uri), tags={EXPERIMENT_KIND_TAG: TRAINING_KIND}
    )


def start_parent(
    uri: str, experiment: str, study: str, storage_url: str, study_params: Mapping[str, Any], spec: dict
) -> tuple[str, str]:
    """A sweep's parent run: its study settings as params and the whole spec as ``sweep.yaml``; returns
    ``(experiment id, run id)``."""
    client = MlflowClient(uri)
    experiment_id = get_or_create_experiment(client, experiment, uri)
    run = client.create_run(
        experiment_id,
        run_name=study,
        tags=environment_tags() | {STUDY_TAG: study, STORAGE_TAG: mask(storage_url), ROLE_TAG: "sweep"},
    )
    params = flat_params({f"study.{k}": v for k, v in study_params.items()})
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    client.log_dict(run.info.run_id, spec, "sweep.yaml")
    view = runs_view(study_params["metric"])
    client.set_experiment_tag(experiment_id, f"{VIEW_TAG}{run.info.run_id}", json.dumps(view))
    return experiment_id, run.info.run_id


def runs_view(metric: str) -> dict[str, Any]:
    """The MLflow UI's runs table as a sweep reads best: the study's metric, the optimizer and the learning
    rate as columns. MLflow 3 shows no metric or param until the user picks it under "Columns" (its default
    columns are the run's source, models and dataset), so the view is stored with the experiment
    (:data:`VIEW_TAG`) and the page ``sweeps ui`` prints opens it. A trial trained on one seed carries the
    metric itself, one on several its mean (``<metric>_mean``); the parent run the best so far
    (``best_<metric>``). Not sorted by the metric: a sorted table lists every run flat, seeds among trials,
    where the default order keeps the trials under their sweep and the seeds under their trial."""
    shown = [metric, f"{metric}_mean", f"best_{metric}"]
    columns = [*(f"metrics.`{name}`" for name in shown), "params.`optimizer`", "params.`lr`"]
    return {"selectedColumns": columns}


def view_key(uri: str, experiment_id: str, parent_run_id: str) -> str | None:
    """The key of the sweep's runs view (:func:`runs_view`), or ``None`` for a sweep made before there was
    one: the UI refuses a key it does not find."""
    tags = MlflowClient(uri).get_experiment(experiment_id).tags
    return parent_run_id if f"{VIEW_TAG}{parent_run_id}" in tags else None


class WrongStore(ValueError):
    """A process's MLflow store is not the one its sweep records its runs in."""


def check_parent(uri: str, experiment_id: str, parent_run_id: str, recorded: str) -> None:
    """Refuse a store that does not hold the sweep's parent run in its experiment: a worker writing there
    would fail every trial (or scatter them). ``recorded`` is the store the sweep was created with."""
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient(uri).get_run(parent_run_id).info.experiment_id
    except MlflowException:
        found = None
    if found != experiment_id:
        raise WrongStore(
            f"MLflow at {mask(uri)} does not hold this sweep's runs (parent run {parent_run_id} of experiment"
            f" {experiment_id}); the sweep was created with MLflow at {mask(recorded)}: point --tracking-uri"
            " or $MLFLOW_TRACKING_URI at that store, as this machine reaches it"
        )


def end_parent(uri: str, run_id: str, status: str = "FINISHED") -> None:
    """The parent run ends with its sweep (``KILLED`` when interrupted), so the MLflow UI does not show a
    finished sweep as running; ``RUNNING`` again on a resume."""
    client = MlflowClient(uri)
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status)


def start_trial(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    trial: int,
    study: str,
    optimizer: str,
    worker: str,
    phase: str,
    placement: Mapping[str, str] | None = None,
    name: str = "",
) -> str:
    """A trial's child run under the sweep's parent, called ``name`` (default ``trial-N``); returns its id.
    ``placement`` (the worker's scheduler job, task and node) is tagged ``sweeps.<name>``."""
    return client.create_run(
        experiment_id,
        run_name=name or f"trial-{trial}",
        tags={
            PARENT_TAG: parent_run_id,
            TRIAL_TAG: str(trial),
            STATE_TAG: "RUNNING",
            STUDY_TAG: study,
            OPTIMIZER_TAG: optimizer,
            WORKER_TAG: worker,
            PHASE_TAG: phase,
            **placement_tags(placement),
        },
    ).info.run_id


def reopen_trial(client: MlflowClient, run_id: str, worker: str, placement: Mapping[str, str] | None) -> None:
    """A preempted trial's run, RUNNING again under the worker that resumes it (its earlier epochs kept)."""
    tags = {STATE_TAG: "RUNNING", WORKER_TAG: worker, OUTCOME_TAG: "resumed", **placement_tags(placement)}
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    client.update_run(run_id, status="RUNNING")


def placement_tags(placement: Mapping[str, str] | None) -> dict[str, str]:
    return {f"sweeps.{k}": v for k, v in (placement or {}).items()}


def start_seed(client: MlflowClient, experiment_id: str, trial_run: str, trial: int, seed: int) -> str:
    """One seed of a trial trained on several, as a run under the trial's; it holds that seed's curves."""
    return client.create_run(
        experiment_id,
        run_name=f"trial-{trial}-seed-{seed}",
        tags={PARENT_TAG: trial_run, TRIAL_TAG: str(trial)},
    ).info.run_id


def seed_runs(client: MlflowClient, experiment_id: str, trial_run: str) -> dict[int, str]:
    """The seed runs a trial's run already has (a preempted trial resumes in them), by seed."""
    found = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{trial_run}'", max_results=1000)
    return {int(run.info.run_name.rsplit("-", 1)[1]): run.info.run_id for run in found}


def close_run(
    client: MlflowClient,
    run_id: str,
    state: str,
    outcome: str,
    reason: str,
    status: str,
    more: Mapping[str, str] | None = None,
) -> None:
    """End a trial's run with its Optuna state, outcome and reason (and ``more``) as tags."""
    tags = {STATE_TAG: state, OUTCOME_TAG: outcome, REASON_TAG: reason, **(more or {})}
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run_id, status)


def complete_trial(
    client: MlflowClient, run_id: str, metric: str, values: list[float], seconds: float
) -> None:
    """A completed trial: over several seeds, the metric's mean and std and the training time on the trial's
    own run (ended here; a one-seed trial's run was ended by its training); its state tag either way."""
    import statistics

    if len(values) > 1:
        now = int(time.time() * 1000)
        summary = {
            f"{metric}_mean": statistics.fmean(values),
            f"{metric}_std": statistics.pstdev(values),
            "total_seconds": seconds,
        }
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in summary.items()])
        client.set_terminated(run_id, "FINISHED")
    client.set_tag(run_id, STATE_TAG, "COMPLETE")


def close_lost(client: MlflowClient, experiment_id: str, parent_run_id: str, lost: set[int]) -> None:
    """Runs of failed trials still RUNNING in MLflow (their worker was killed, or interrupted before the run
    could be closed) end FAILED, and so do their seeds' runs, so that nothing stays RUNNING for ever. Trial
    runs are found by their trial number, which is on the run from its creation."""
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    numbers = {str(number) for number in lost}
    trial_runs = {
        run.info.run_id
        for run in running
        if run.data.tags.get(PARENT_TAG) == parent_run_id and run.data.tags.get(TRIAL_TAG) in numbers
    }
    reason = "worker lost (no heartbeat) or stopped before it closed the run; retried if the budget allows"
    for run in running:
        if run.info.run_id in trial_runs or run.data.tags.get(PARENT_TAG) in trial_runs:
            close_run(client, run.info.run_id, "FAIL", "failed", reason, "FAILED")


def record_best(
    client: MlflowClient, parent_run_id: str, metric: str, value: float, trial: int, config: Mapping[str, Any]
) -> None:
    """The sweep's best trial so far on its parent run (tags ``best.*`` and the metric, step = the trial), so
    the MLflow UI shows the answer while the sweep runs. Idempotent: every worker writes the same best."""
    tags = {"trial": trial, **config}
    client.log_batch(
        parent_run_id,
        metrics=[Metric(f"best_{metric}", value, int(time.time() * 1000), trial)],
        tags=[RunTag(f"best.{k}", str(v)) for k, v in tags.items()],
    )


def log_folder(uri: str, run_id: str, folder: Path, artifact_path: str) -> None:
    """Every file of ``folder`` as artifacts of the run, under ``artifact_path``."""
    MlflowClient(uri).log_artifacts(run_id, str(folder), artifact_path)


def log_files(uri: str, run_id: str, files: Iterable[Path], artifact_path: str) -> None:
    """Some files as artifacts of the run, under ``artifact_path``."""
    client = MlflowClient(uri)
    for file in files:
        client.log_artifact(run_id, str(file), artifact_path)


def files_run(
    uri: str,
    experiment: str,
    run_name: str,
    role: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    files: Iterable[Path],
) -> str:
    """A run of its own holding some files and the settings and numbers that made them, for tools whose output
    is files, not training curves; ``FAILED`` if logging breaks off. Returns its id."""
    client = MlflowClient(uri)
    experiment_id = get_or_create_experiment(client, experiment, uri)
    run_id = client.create_run(
        experiment_id, run_name=run_name, tags=environment_tags() | {ROLE_TAG: role}
    ).info.run_id
    try:
        now = int(time.time() * 1000)
        client.log_batch(  # which splits them into batches of the sizes MLflow takes
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in flat_params(params).items()],
        )
        for file in files:
            client.log_artifact(run_id, str(file))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
