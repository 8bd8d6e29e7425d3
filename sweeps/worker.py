"""A worker: joins a sweep's study and runs trials until the budget queue is empty (or the timeout)."""

from __future__ import annotations

import os
import platform
import time

import optuna
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from optuna.trial import FrozenTrial, TrialState

from sweeps.objective import RUN_ATTR, STATE_TAG, Objective
from sweeps.study import EXPERIMENT_ATTR, PARENT_ATTR, STARTED_ATTR, TRACKING_ATTR, open_sweep, waiting
from sweeps.train import OUTCOME_TAG, REASON_TAG


def run_worker(
    name: str, storage_url: str, tracking_uri: str | None = None, index: int = 0, threads: int | None = None
) -> int:
    """Run trials of study ``name`` one at a time, each as soon as the previous ends; returns how many ran.

    Optuna's heartbeat marks a killed worker's trial FAIL and its retry callback re-queues the trial with the
    same params, which any worker then picks up here."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    study, sweep = open_sweep(name, storage_url, worker=index)
    attrs = study.user_attrs
    label = f"{platform.node()}:{os.getpid()}" + (
        f":gpu{os.environ['CUDA_VISIBLE_DEVICES']}" if os.environ.get("CUDA_VISIBLE_DEVICES") else ""
    )
    objective = Objective(
        sweep,
        tracking_uri or attrs[TRACKING_ATTR],
        attrs[EXPERIMENT_ATTR],
        attrs[PARENT_ATTR],
        label,
    )
    deadline = attrs[STARTED_ATTR] + sweep.study.timeout if sweep.study.timeout else float("inf")
    ran = 0
    while time.time() < deadline:
        optuna.storages.fail_stale_trials(study)
        close_lost_runs(study, objective)
        if sweep.study.n_trials is not None and not waiting(study):
            break
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[ParentBest(objective)])
        ran += 1
    return ran


def close_lost_runs(study: optuna.Study, objective: Objective) -> None:
    """A killed worker cannot end its trial's MLflow run: once Optuna has failed the trial (no heartbeat),
    end the run FAILED too, so nothing stays RUNNING in MLflow."""
    lost = {
        t.user_attrs[RUN_ATTR]
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if RUN_ATTR in t.user_attrs
    }
    if not lost:
        return
    client = MlflowClient(objective.tracking_uri)
    running = client.search_runs(
        [objective.experiment_id],
        f"tags.mlflow.parentRunId = '{objective.parent_run_id}' and attributes.status = 'RUNNING'",
        max_results=1000,
    )
    reason = "worker lost: no heartbeat; the trial is retried with the same params"
    for run in running:
        if run.info.run_id in lost:
            tags = [RunTag(STATE_TAG, "FAIL"), RunTag(OUTCOME_TAG, "failed"), RunTag(REASON_TAG, reason)]
            client.log_batch(run.info.run_id, tags=tags)
            client.set_terminated(run.info.run_id, "FAILED")


class ParentBest:
    """After each trial, write the study's best trial so far onto the parent run (tags and a metric), so the
    MLflow UI shows the sweep's answer while it runs. Idempotent: every worker writes the same best."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.COMPLETE or len(study.directions) > 1:
            return
        best = study.best_trial
        client = MlflowClient(self.objective.tracking_uri)
        parent = self.objective.parent_run_id
        best_values = {"trial": best.number, **best.user_attrs.get("config", {})}
        metric = f"best_{self.objective.sweep.study.metric}"
        client.log_batch(
            parent,
            metrics=[Metric(metric, best.value, int(time.time() * 1000), best.number)],
            tags=[RunTag(f"best.{k}", str(v)) for k, v in best_values.items()],
        )
