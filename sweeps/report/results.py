"""What a finished sweep found, per optimizer, read back from Optuna (which trial is whose best, and every
search trial for tunability) and MLflow (the per-epoch curves of each seed): the input of every table and
plot."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweeps.config.imports import optimizer_spec
from sweeps.config.sweep import SweepConfig
from sweeps.engine.study import best_per_optimizer, spent
from sweeps.names import (
    CONFIG_ATTR,
    DEFAULT,
    EPOCH_METRICS,
    EXPERIMENT_ATTR,
    PARENT_TAG,
    RUN_ATTR,
    SEARCH,
    TUNED,
    WORKER_ATTR,
    phase,
    trial_optimizer,
)

CURVES = ("val_acc", "val_loss", "train_loss", "epoch_seconds")
"""The curves read for every entry, with the study's own metric (a user's LightningModule may log others, and
may not log these: a curve it never logged is all NaN)."""


@dataclass(frozen=True)
class Entry:
    """One optimizer's trial: its config and, per metric, a [seeds × epochs] array (NaN past a seed's end);
    ``split`` is what its validation numbers were measured on, ``seed_numbers`` the seed of each row."""

    optimizer: str
    phase: str
    trial: int
    config: dict[str, Any]
    curves: dict[str, np.ndarray]
    split: str = "test"
    seed_numbers: tuple[int, ...] = ()

    @property
    def seeds(self) -> int:
        return len(next(iter(self.curves.values())))

    @property
    def epochs(self) -> int:
        return next(iter(self.curves.values())).shape[1]

    @property
    def seed_ids(self) -> tuple[int, ...]:
        """The seed of each row (rows numbered from 0 when the seeds were not recorded)."""
        return self.seed_numbers or tuple(range(self.seeds))

    def by_seed(self, values: np.ndarray) -> dict[int, float]:
        """Per-seed values keyed by seed number."""
        return dict(zip(self.seed_ids, map(float, values), strict=True))

    def column(self, metric: str, epoch: int) -> np.ndarray:
        """``metric`` at 1-based ``epoch``, one value per seed (NaN where missing)."""
        if epoch > self.epochs:
            return np.full(self.seeds, math.nan)
        return self.curves[metric][:, epoch - 1]

    def best(self, metric: str, higher_is_better: bool) -> np.ndarray:
        """The best value of ``metric`` over each seed's epochs."""
        pick = np.nanmax if higher_is_better else np.nanmin
        return pick(self.curves[metric], axis=1)

    def seconds_to_each(self, accuracy: float) -> np.ndarray:
        """Training seconds until val_acc first reaches ``accuracy``, per seed (NaN: never)."""
        elapsed = np.nancumsum(self.curves["epoch_seconds"], axis=1)
        reached = self.curves["val_acc"] >= accuracy
        first = np.argmax(reached, axis=1)
        return np.where(reached.any(axis=1), elapsed[np.arange(self.seeds), first], math.nan)


@dataclass(frozen=True)
class SearchTrial:
    """One search trial that spent budget: its value (NaN unless it completed: pruned and failed trials are
    misses) and its learning rate (None where it was not set)."""

    optimizer: str
    value: float
    lr: float | None


@dataclass(frozen=True)
class Results:
    """Per optimizer (in the spec's order): its best search trial, and with retrains its default and tuned;
    ``trials`` are every search trial that spent budget, for tunability; ``run_seconds`` what the time column
    averages (:func:`_run_seconds`)."""

    sweep: SweepConfig
    search: dict[str, Entry]
    default: dict[str, Entry] = field(default_factory=dict)
    tuned: dict[str, Entry] = field(default_factory=dict)
    trials: tuple[SearchTrial, ...] = ()
    run_seconds: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def headline(self) -> dict[str, Entry]:
        """What a single table should show per optimizer: the retrained best where there is one."""
        return {name: self.tuned.get(name, entry) for name, entry in self.search.items()}

    @property
    def higher_is_better(self) -> bool:
        return self.sweep.study.direction == "maximize"

    @property
    def ranked_curve(self) -> str:
        """The per-epoch metric optimizers are ranked on: the sweep's metric, read at the final epoch
        (``best_val_acc`` ranks on final val_acc: picking the best epoch on the test split would flatter)."""
        return self.sweep.study.epoch_metric

    @property
    def first_curve(self) -> tuple[str, str]:
        """The first curve of the learning-curve figures and its title: validation accuracy, or the study's
        metric when the module logs its own."""
        metric = self.sweep.study.epoch_metric
        return ("val_acc", "validation accuracy") if metric in EPOCH_METRICS else (metric, metric)

    def kept_default(self, name: str) -> bool:
        """Whether ``name``'s tuned config trains exactly as its default: the search found nothing better
        than the preset (its hyperparameters resolved against the preset, its batch size and the searched
        settings)."""
        tuned, default = self.tuned[name].config, self.default[name].config
        spec, preset = optimizer_spec(name), self.sweep.optimizer.preset

        def settings(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            hparams = {k: v for k, v in config.items() if k in spec.hyperparams}
            others = {k: v for k, v in config.items() if k not in spec.hyperparams}
            return others, spec.resolve(preset, **hparams)

        return settings(tuned) == settings(default)

    @property
    def phases(self) -> dict[str, dict[str, Entry]]:
        """The sets of entries trained on the same seeds, compared within themselves: the retrains (tuned,
        default) when there are any, else each optimizer's best search trial."""
        retrained = {TUNED: self.tuned, DEFAULT: self.default}
        return {k: v for k, v in retrained.items() if v} or {SEARCH: self.search}


def measured_on(sweep: SweepConfig, of_phase: str) -> str:
    """Where a phase's numbers were measured: retrains on the test split, the search on the split the spec
    validates on (``holdout``: held-out train images, the search's selection split; or ``test``)."""
    return sweep.data.val_split if of_phase == SEARCH else "test"


def collect(study: optuna.Study, sweep: SweepConfig, tracking_uri: str) -> Results:
    client = MlflowClient(tracking_uri)
    experiment = study.user_attrs[EXPERIMENT_ATTR]
    metrics = tuple(dict.fromkeys((*CURVES, sweep.study.epoch_metric)))
    trials = study.get_trials(deepcopy=False)  # read once for every phase

    def entries(of_phase: str) -> dict[str, Entry]:
        best = best_per_optimizer(study, sweep, of_phase, trials)
        split = measured_on(sweep, of_phase)
        return {name: _entry(client, experiment, name, t, split, metrics) for name, t in best.items()}

    seconds = _run_seconds(client, experiment, trials)
    return Results(sweep, entries(SEARCH), entries(DEFAULT), entries(TUNED), _search_trials(trials), seconds)


def _run_seconds(
    client: MlflowClient, experiment: str, trials: list[optuna.trial.FrozenTrial]
) -> dict[str, tuple[float, ...]]:
    """Per optimizer, the ``total_seconds`` of every run that trained for one of its completed trials: the
    trial's own run, or over several seeds each seed's run (the trial's then holds their sum). The first run
    of each worker is left out (it also paid the worker's warm-up, several times a later run's training)
    unless the optimizer has no other. Read in one listing of the experiment, not one request per trial."""
    owner = {
        t.user_attrs[RUN_ATTR]: (name, t.number)
        for t in trials
        if t.state == TrialState.COMPLETE and RUN_ATTR in t.user_attrs and (name := trial_optimizer(t))
    }
    trained: dict[str, list[tuple[int, float]]] = {}  # per trial run: (start, seconds) of the runs it trained
    token = None
    while True:
        page = client.search_runs([experiment], max_results=1000, page_token=token)
        for run in page:
            seconds = run.data.metrics.get("total_seconds")
            did_train = "seed" in run.data.params  # a trial run over several seeds trained none itself
            trial_run = run.info.run_id if run.info.run_id in owner else run.data.tags.get(PARENT_TAG)
            if seconds is not None and did_train and trial_run in owner:
                trained.setdefault(trial_run, []).append((run.info.start_time, seconds))
        token = page.token
        if not token:
            break
    warm = _first_of_each_worker(trials)
    every: dict[str, list[float]] = {}
    kept: dict[str, list[float]] = {}
    for trial_run, (name, number) in owner.items():
        runs = [seconds for _, seconds in sorted(trained.get(trial_run, []))]
        every.setdefault(name, []).extend(runs)
        kept.setdefault(name, []).extend(runs[1:] if number in warm else runs)
    return {name: tuple(kept[name] or every[name]) for name in every if every[name]}


def _first_of_each_worker(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """The number of each worker's first trial (workers are told apart by their label, which holds their
    process id)."""
    by_worker: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in trials:
        if t.user_attrs.get(WORKER_ATTR) and t.datetime_start:
            by_worker.setdefault(t.user_attrs[WORKER_ATTR], []).append(t)
    return {min(mine, key=lambda t: t.datetime_start).number for mine in by_worker.values()}


def _search_trials(trials: list[optuna.trial.FrozenTrial]) -> tuple[SearchTrial, ...]:
    found = []
    for t in trials:
        name = trial_optimizer(t)
        if phase(t) != SEARCH or not t.state.is_finished() or not spent(t) or not name:
            continue
        value = t.values[0] if t.state == TrialState.COMPLETE else math.nan
        lr = t.user_attrs.get(CONFIG_ATTR, {}).get("lr")
        found.append(SearchTrial(name, value, None if lr is None else float(lr)))
    return tuple(found)


def _entry(
    client: MlflowClient,
    experiment: str,
    name: str,
    trial: optuna.trial.FrozenTrial,
    split: str,
    metrics: tuple[str, ...],
) -> Entry:
    run_id = trial.user_attrs[RUN_ATTR]
    runs = client.search_runs([experiment], f"tags.`{PARENT_TAG}` = '{run_id}'") or [client.get_run(run_id)]
    runs = sorted(runs, key=lambda r: int(r.data.params["seed"]))
    histories = [{m: _history(client, r.info.run_id, m) for m in metrics} for r in runs]
    epochs = max(len(curve) for h in histories for curve in h.values())
    curves = {
        m: np.array([h[m] + [float("nan")] * (epochs - len(h[m])) for h in histories], dtype=float)
        for m in metrics
    }
    config = dict(trial.user_attrs.get(CONFIG_ATTR, {}))
    seeds = tuple(int(r.data.params["seed"]) for r in runs)
    return Entry(name, phase(trial), trial.number, config, curves, split, seeds)


def _history(client: MlflowClient, run_id: str, metric: str) -> list[float]:
    """Values by 1-based epoch step; the last value logged wins where a step repeats."""
    by_step = {
        m.step: m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.timestamp)
    }
    return [by_step[s] for s in sorted(by_step)]
