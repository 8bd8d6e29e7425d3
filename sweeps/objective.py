"""The Optuna objective: a trial samples a config, trains it (once per seed), is recorded as a child run."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import optuna
import requests
from mlflow import MlflowClient
from mlflow.entities import RunTag
from optuna_integration import PyTorchLightningPruningCallback

from models.module import Diverged
from sweeps.config import TrainConfig
from sweeps.retry import first_line
from sweeps.space import preset_config, suggest, trial_params
from sweeps.spec import SweepConfig
from sweeps.train import OUTCOME_TAG, REASON_TAG, RunResult, ended_by, train

_logger = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "sweeps.trial"
STATE_TAG = "sweeps.trial_state"
STUDY_TAG = "sweeps.study"
RUN_ATTR = "mlflow_run_id"
CONFIG_ATTR = "config"
WORKER_ATTR = "worker"
SPENT_ATTR = "spent"
"""Set on a trial that failed on its own (diverged, out of memory, an error): it used up its budget slot.
A FAIL trial without it was stopped from outside (Ctrl-C, a killed worker) and its slot is given back."""


class OverBudget(RuntimeError):
    """Two workers saw one queued trial; the loser's ``ask`` made a fresh trial, which ends FAIL unrun."""


PHASE_ATTR = "sweeps.phase"
OPTIMIZER_ATTR = "sweeps.optimizer"
SEARCH, DEFAULT, TUNED = "search", "default", "tuned"
"""A trial's phase (a user attr, kept by the heartbeat retry): ``search`` trials are sampled and spend the
budget; with ``study.retrain_seeds`` each optimizer then gets a ``default`` trial (its preset, untuned) and a
``tuned`` trial (its best search config), each trained on that many fresh seeds: the fair table's columns."""


def phase(trial: optuna.trial.FrozenTrial | optuna.Trial) -> str:
    return trial.user_attrs.get(PHASE_ATTR, SEARCH)


def trial_optimizer(trial: optuna.trial.FrozenTrial) -> str:
    return trial.user_attrs.get(OPTIMIZER_ATTR) or trial.user_attrs.get(CONFIG_ATTR, {}).get("optimizer", "")


def close_run(client: MlflowClient, run_id: str, state: str, outcome: str, reason: str, status: str) -> None:
    """End a trial's run with its Optuna state, outcome and reason as tags."""
    tags = [RunTag(STATE_TAG, state), RunTag(OUTCOME_TAG, outcome), RunTag(REASON_TAG, reason)]
    client.log_batch(run_id, tags=tags)
    client.set_terminated(run_id, status)


QUEUED = frozenset({"fixed_params", "failed_trial"})
"""System attrs of a trial popped from the budget queue: enqueued, or re-queued by the heartbeat retry."""


def metric_value(result: RunResult, metric: str) -> float:
    """The trial's value: ``best_val_acc`` over the epochs, or the last epoch's value of another metric."""
    if metric == "best_val_acc":
        return result.best_val_acc
    return result.history[-1][metric]


def tracking_unreachable(error: BaseException) -> bool:
    """Whether the MLflow server could not be reached, once MLflow's own retries were spent (MLflow re-raises
    the HTTP error inside its handler, so it is the context): an outage, not the trial's fault, so the trial's
    budget slot is given back."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, requests.exceptions.RequestException):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def _kept_going(what: str, run_id: str) -> Iterator[None]:
    """The trial's result lives in Optuna; an MLflow call that fails after training (its retries spent) is
    logged, and the result still told."""
    try:
        yield
    except Exception as error:
        _logger.warning("%s %s failed (%s); the trial's result is kept", what, run_id, first_line(error))


@dataclass
class Objective:
    """Callable Optuna objective; holds where the trial runs go (the sweep's parent run in MLflow)."""

    sweep: SweepConfig
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    worker: str

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        trial.set_user_attr(WORKER_ATTR, self.worker)
        if self.sweep.study.n_trials is not None and not QUEUED.intersection(
            trial.storage.get_trial_system_attrs(trial._trial_id)
        ):
            raise OverBudget("another worker took the last queued trial; this one was not run")
        stage = phase(trial)
        cfg = self._config(trial, stage)
        study = self.sweep.study
        client = MlflowClient(self.tracking_uri)
        trial_run = client.create_run(
            self.experiment_id,
            run_name=f"trial-{trial.number}",
            tags={
                PARENT_TAG: self.parent_run_id,
                TRIAL_TAG: str(trial.number),
                STATE_TAG: "RUNNING",
                STUDY_TAG: study.name,
                OPTIMIZER_ATTR: cfg.optimizer.name,
                "sweeps.worker": self.worker,
                PHASE_ATTR: stage,
            },
        ).info.run_id
        trial.set_user_attr(RUN_ATTR, trial_run)
        trial.set_user_attr(CONFIG_ATTR, trial_params(cfg))
        try:
            values, seconds = self._train_repeats(trial, cfg, client, trial_run, stage)
        except BaseException as exc:
            outcome, status, reason = ended_by(exc)
            if outcome in ("failed", "diverged") and not tracking_unreachable(exc):
                trial.set_user_attr(SPENT_ATTR, True)
            with _kept_going("closing the trial's run", trial_run):
                state = "PRUNED" if outcome == "pruned" else "FAIL"
                close_run(client, trial_run, state, outcome, reason, status)
            raise
        value = statistics.fmean(values)
        with _kept_going("closing the trial's run", trial_run):
            if len(values) > 1:
                client.log_metric(trial_run, f"{study.metric}_mean", value)
                client.log_metric(trial_run, f"{study.metric}_std", statistics.pstdev(values))
                client.log_metric(trial_run, "total_seconds", seconds)
                client.set_terminated(trial_run, "FINISHED")
            client.set_tag(trial_run, STATE_TAG, "COMPLETE")
        return (value, seconds) if study.time_objective else value

    def _config(self, trial: optuna.Trial, phase: str) -> TrainConfig:
        """The trial's config: sampled (a tuned trial's params are all fixed, so sampling returns them), or
        for a default trial the spec's starting point with the optimizer's preset and nothing searched.
        Retrains are scored on the test split, which the search never selected on."""
        if phase == SEARCH:
            return suggest(trial, self.sweep)
        cfg = (
            suggest(trial, self.sweep)
            if phase == TUNED
            else preset_config(self.sweep, trial.user_attrs[OPTIMIZER_ATTR])
        )
        return cfg.model_copy(update={"data": cfg.data.model_copy(update={"val_split": "test"})})

    def _train_repeats(
        self, trial: optuna.Trial, cfg: TrainConfig, client: MlflowClient, trial_run: str, phase: str
    ) -> tuple[list[float], float]:
        """Train the config once per seed; with one seed the trial run itself holds the curves. Retrained
        configs get fresh seeds (after the one the search selected on), and are never pruned."""
        study = self.sweep.study
        seeds = study.repeats if phase == SEARCH else study.retrain_seeds
        first = cfg.trainer.seed + (0 if phase == SEARCH else study.repeats)
        values, seconds = [], 0.0
        for repeat in range(seeds):
            seeded = cfg.model_copy(
                update={"trainer": cfg.trainer.model_copy(update={"seed": first + repeat})}
            )
            run_id = trial_run
            if seeds > 1:
                run_id = client.create_run(
                    self.experiment_id,
                    run_name=f"trial-{trial.number}-seed-{seeded.trainer.seed}",
                    tags={PARENT_TAG: trial_run, TRIAL_TAG: str(trial.number)},
                ).info.run_id
            callbacks = []
            if study.pruner != "none" and repeat == 0 and phase == SEARCH:
                monitor = "val_acc" if study.direction == "maximize" else "val_loss"
                callbacks.append(PyTorchLightningPruningCallback(trial, monitor=monitor))
            result = train(seeded, self.tracking_uri, callbacks=callbacks, run_id=run_id)
            if result.outcome == "diverged":
                raise Diverged(result.reason)
            values.append(metric_value(result, study.metric))
            seconds += result.total_seconds
        return values, seconds
