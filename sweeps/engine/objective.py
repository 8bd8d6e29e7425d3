"""The Optuna objective: a trial samples a config, trains it (once per seed), is recorded as a child run.

With a checkpoint store each seed's training saves its state every epoch under the trial's key, and a trial
that re-runs a lost one resumes from it. A trial that leads the search when it finishes (or any retrain)
logs its trained models to its runs; which checkpoints stay is decided after the trial is told
(:func:`sweeps.engine.checkpoints.sweep_up`)."""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import lightning as L
import optuna
import requests
from mlflow import MlflowClient
from torch import nn

from models.module import Diverged
from sweeps.config.sweep import SweepConfig
from sweeps.config.train import TrainConfig
from sweeps.engine.checkpoints import Checkpointing, Store, trial_key
from sweeps.engine.retry import first_line
from sweeps.engine.space import preset_config, suggest, trial_params
from sweeps.engine.study import best_search
from sweeps.engine.training import Deadline, Run, RunResult, ended_by, fit
from sweeps.engine.workload import Workload, build_module
from sweeps.names import (
    CONFIG_ATTR,
    DEFAULT,
    GIVEN_BACK_ATTR,
    OPTIMIZER_ATTR,
    PREEMPTED_ATTR,
    PREEMPTED_TAG,
    RUN_ATTR,
    SEARCH,
    SPENT_ATTR,
    WORKER_ATTR,
    phase,
    trial_run_name,
)
from sweeps.tracking import runs
from sweeps.tracking.artifacts import log_model

_logger = logging.getLogger(__name__)

Scored = tuple[list[float], float, list[tuple[str, nn.Module]]]
"""A trial's values (one per seed), its training time and the models of its runs."""
TrialValue = float | tuple[float, float]


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
def kept_going(what: str, run_id: str) -> Iterator[None]:
    """The trial's result lives in Optuna; an MLflow call that fails after training (its retries spent) is
    logged, and the result still told."""
    try:
        yield
    except Exception as error:
        _logger.warning("%s %s failed (%s); the trial's result is kept", what, run_id, first_line(error))


@dataclass(frozen=True)
class Started:
    """A trial under way: its config, its phase and its child run."""

    cfg: TrainConfig
    phase: str
    client: MlflowClient
    run_id: str
    reopened: bool = False
    """The run of a preempted trial, resumed in place: it holds the epochs saved before."""


@dataclass
class Objective:
    """Callable Optuna objective; holds where the trial runs go (the sweep's parent run in MLflow) and where
    its checkpoints go: a worker's objective has a store, and then also logs the models of the trials it
    keeps; without one (a test's), trials neither checkpoint nor log models."""

    sweep: SweepConfig
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    worker: str
    deadline: float = math.inf
    """When ``study.timeout`` runs out (seconds since the epoch): a trial still training then is stopped."""
    checkpoints: Store | None = None
    placement: Mapping[str, str] = field(default_factory=dict)
    """Where the worker runs, as its scheduler names it (launcher, job, task, node): tags on trial runs."""

    def __call__(self, trial: optuna.Trial) -> TrialValue:
        return self.run(trial, self.begin(trial))

    def run(self, trial: optuna.Trial, started: Started) -> TrialValue:
        """Train a begun trial on its seeds, one after another; its run closed however it ends."""
        return self.close(trial, started, lambda: self._train_repeats(trial, started))

    def close(self, trial: optuna.Trial, started: Started, training: Callable[[], Scored]) -> TrialValue:
        """Close a trial with what ``training`` scored, or with what stopped it (raised again)."""
        try:
            values, seconds, models = training()
        except BaseException as exc:
            self.stopped(trial, started, exc)
            raise
        return self.completed(trial, started, values, seconds, models)

    def fit(
        self,
        trials: list[optuna.Trial],
        runs: list[Run],
        build: Callable[[L.LightningDataModule], Workload],
        pruned: bool,
    ) -> list[RunResult | BaseException]:
        """Train ``runs`` of ``trials`` (one, or a pack) to the sweep's timeout, each pruned by the study's
        pruner if ``pruned``."""
        study = self.sweep.study
        callbacks = [Deadline(self.deadline)] if math.isfinite(self.deadline) else []
        judge = Pruning(trials, study.epoch_metric) if pruned and study.pruner != "none" else None
        return fit(
            runs, build, self.tracking_uri, callbacks=callbacks, required=study.epoch_metric, judge=judge
        )

    def checkpointing(self, trial: optuna.Trial, cfg: TrainConfig) -> Checkpointing | None:
        """Where the trial's run of ``cfg`` (its seed) saves its checkpoints, if it does: the key a re-run of
        the trial finds them under, alone or in a pack."""
        if self.checkpoints is None or not self.sweep.study.checkpoints:
            return None
        return Checkpointing(self.checkpoints, f"{trial_key(trial)}/seed-{cfg.trainer.seed}")

    def scored(self, results: list[RunResult | BaseException]) -> Scored:
        """Each run's value, the runs' time and the models worth logging; what stopped a run (pruned,
        diverged, an error) is raised."""
        values, seconds, models = [], 0.0, []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            if result.outcome == "pruned":
                raise optuna.TrialPruned(result.reason)
            if result.outcome == "diverged":
                raise Diverged(result.reason)
            if result.model is not None and self.checkpoints is not None:
                models.append((result.run_id, result.model))
            metric = self.sweep.study.metric  # best_val_acc: over the epochs; another: the last epoch's
            values.append(result.best_val_acc if metric == "best_val_acc" else result.history[-1][metric])
            seconds += result.total_seconds
        return values, seconds, models

    def begin(self, trial: optuna.Trial) -> Started:
        """The trial's config and its child run, both recorded on the trial. A trial given back by a preempted
        worker resumes from its checkpoint in its own run (without checkpoints it starts again, in a new
        run)."""
        trial.set_user_attr(WORKER_ATTR, self.worker)
        trial_key(trial)
        stage = phase(trial)
        cfg = self._config(trial, stage)
        client = MlflowClient(self.tracking_uri)
        trial_run = trial.user_attrs.get(RUN_ATTR)
        given_back = trial_run is not None and trial.user_attrs.get(GIVEN_BACK_ATTR) == trial.number
        reopened = given_back and self.checkpoints is not None and self.sweep.study.checkpoints
        params = trial_params(cfg, self.sweep.search.settings())
        if reopened:
            runs.reopen_trial(client, trial_run, self.worker, self.placement)
        else:
            trial_run = runs.start_trial(
                client,
                self.experiment_id,
                self.parent_run_id,
                trial.number,
                self.sweep.study.name,
                cfg.optimizer.name,
                self.worker,
                stage,
                self.placement,
                trial_run_name(trial.number, params, stage),
            )
            trial.set_user_attr(RUN_ATTR, trial_run)
        trial.set_user_attr(CONFIG_ATTR, params)
        return Started(cfg, stage, client, trial_run, reopened)

    def stopped(self, trial: optuna.Trial, started: Started, exc: BaseException) -> None:
        """A trial that ended without a value: its run closed with why; a trial that failed on its own spends
        its budget slot; a preempted one counts its preemptions (given back, it resumes in this run)."""
        outcome, status, reason = ended_by(exc)
        if outcome in ("failed", "diverged") and not tracking_unreachable(exc):
            trial.set_user_attr(SPENT_ATTR, True)
        more = {}
        if outcome == "preempted":
            count = trial.user_attrs.get(PREEMPTED_ATTR, 0) + 1
            trial.set_user_attr(PREEMPTED_ATTR, count)
            where = " ".join(f"{k} {v}" for k, v in self.placement.items())
            reason, more = f"{reason} [{where or self.worker}]", {PREEMPTED_TAG: str(count)}
        with kept_going("closing the trial's run", started.run_id):
            state = {"pruned": "PRUNED", "preempted": "WAITING"}.get(outcome, "FAIL")
            runs.close_run(started.client, started.run_id, state, outcome, reason, status, more)

    def completed(
        self,
        trial: optuna.Trial,
        started: Started,
        values: list[float],
        seconds: float,
        models: list[tuple[str, nn.Module]],
    ) -> TrialValue:
        """A trial trained on all its seeds: its run closed with the value (the seeds' mean), the models of a
        trial worth keeping logged; returns what Optuna is told."""
        study = self.sweep.study
        value = statistics.fmean(values)
        with kept_going("closing the trial's run", started.run_id):
            runs.complete_trial(started.client, started.run_id, study.metric, values, seconds)
        if models and (started.phase != SEARCH or self._leads(trial, value)):
            for run_id, model in models:
                with kept_going("logging the model of run", run_id):
                    log_model(self.tracking_uri, run_id, model)
        return (value, seconds) if study.time_objective else value

    def _leads(self, trial: optuna.Trial, value: float) -> bool:
        """Whether a search trial's value beats every complete search trial's so far (with one objective):
        the best trial's models are logged as it finishes, so the sweep's answer loads back even while it
        runs."""
        if self.sweep.study.time_objective:
            return False
        best = best_search(trial.study)
        better = max if self.sweep.study.direction == "maximize" else min
        return best is None or better(value, best.value) == value

    def _config(self, trial: optuna.Trial, phase: str) -> TrainConfig:
        """The trial's config: sampled (a tuned trial's params are all fixed, so sampling returns them), or
        for a default trial the spec's starting point with the optimizer's preset and nothing searched.
        Retrains are scored on the test split, which the search never selected on."""
        if phase == DEFAULT:
            cfg = preset_config(self.sweep, trial.user_attrs[OPTIMIZER_ATTR])
        else:
            cfg = suggest(trial, self.sweep)
        if phase == SEARCH:
            return cfg
        return cfg.model_copy(update={"data": cfg.data.model_copy(update={"val_split": "test"})})

    def _train_repeats(self, trial: optuna.Trial, started: Started) -> Scored:
        """Train the config once per seed; with one seed the trial run itself holds the curves. Retrained
        configs get fresh seeds (after those the search selected on), the same list for every optimizer and
        phase: seed i gives each the same initialisation and data order, so the report pairs them by seed.
        Retrains are never pruned."""
        study, cfg, phase = self.sweep.study, started.cfg, started.phase
        seeds = study.repeats if phase == SEARCH else study.retrain_seeds
        first = cfg.trainer.seed + (0 if phase == SEARCH else study.repeats)
        results: list[RunResult | BaseException] = []
        earlier = {}
        if started.reopened and seeds > 1:  # a preempted trial's seeds resume in their own runs
            earlier = runs.seed_runs(started.client, self.experiment_id, started.run_id)
        for repeat in range(seeds):
            seeded = cfg.model_copy(
                update={"trainer": cfg.trainer.model_copy(update={"seed": first + repeat})}
            )
            run_id, in_place = started.run_id, started.reopened
            if seeds > 1:
                seed = seeded.trainer.seed
                run_id = earlier.get(seed) or runs.start_seed(
                    started.client, self.experiment_id, started.run_id, trial.number, seed
                )
                in_place = seed in earlier
            run = Run(seeded, run_id, self.checkpointing(trial, seeded), in_place)
            build = partial(build_module, seeded)
            results += self.fit([trial], [run], build, pruned=repeat == 0 and phase == SEARCH)
            self.scored(results[-1:])
        return self.scored(results)


@dataclass
class Pruning:
    """Reports ``monitor`` to each member's trial as its epoch's row is written (the run keeps the epoch it
    was cut at) and says why the study's pruner cuts it. Not optuna-integration's callback: it numbers
    epochs from 0, and the runs' curves and the reason a pruned run shows number them from 1, as the
    report does."""

    trials: list[optuna.Trial]
    monitor: str

    def __call__(self, member: int, row: dict[str, float], epoch: int) -> str | None:
        trial, value = self.trials[member], row.get(self.monitor)
        if value is None:
            return None
        trial.report(value, step=epoch)
        return f"pruned after epoch {epoch}: {self.monitor} {value:.4f}" if trial.should_prune() else None
