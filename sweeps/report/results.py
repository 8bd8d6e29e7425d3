"""What a finished sweep found, per optimizer, read back from Optuna (which trial is whose best) and MLflow
(the per-epoch curves of each seed): the input of every table and plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from mlflow import MlflowClient

from sweeps.config.sweep import SweepConfig
from sweeps.engine.study import best_per_optimizer
from sweeps.names import CONFIG_ATTR, DEFAULT, EXPERIMENT_ATTR, PARENT_TAG, RUN_ATTR, SEARCH, TUNED, phase

CURVES = ("val_acc", "val_loss", "train_loss", "epoch_seconds")
"""The curves read for every entry, with the study's own metric (a user's LightningModule may log others, and
may not log these: a curve it never logged is all NaN)."""


@dataclass(frozen=True)
class Entry:
    """One optimizer's trial: its config and, per metric, a [seeds × epochs] array (NaN past a seed's end)."""

    optimizer: str
    phase: str
    trial: int
    config: dict[str, Any]
    curves: dict[str, np.ndarray]

    @property
    def seeds(self) -> int:
        return len(self.curves["val_acc"])

    @property
    def epochs(self) -> int:
        return self.curves["val_acc"].shape[1]

    def at(self, metric: str, epoch: int) -> tuple[float, float]:
        """Mean and std over the seeds of ``metric`` at 1-based ``epoch`` (NaN when missing)."""
        if epoch > self.epochs:
            return float("nan"), float("nan")
        column = self.curves[metric][:, epoch - 1]
        return _mean_std(column)

    def final(self, metric: str) -> tuple[float, float]:
        return self.at(metric, self.epochs)

    def total_seconds(self) -> tuple[float, float]:
        return _mean_std(np.nansum(self.curves["epoch_seconds"], axis=1))

    def seconds_to(self, accuracy: float) -> tuple[float, int]:
        """Mean training seconds until val_acc first reaches ``accuracy``, over the seeds that reach it, and
        how many do."""
        elapsed = np.nancumsum(self.curves["epoch_seconds"], axis=1)
        times = [
            float(elapsed[s, np.argmax(reached)])
            for s, reached in enumerate(self.curves["val_acc"] >= accuracy)
            if reached.any()
        ]
        return (float(np.mean(times)) if times else float("nan")), len(times)


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std())


@dataclass(frozen=True)
class Results:
    """Per optimizer (in the spec's order): its best search trial, and with retrains its default and tuned."""

    sweep: SweepConfig
    search: dict[str, Entry]
    default: dict[str, Entry] = field(default_factory=dict)
    tuned: dict[str, Entry] = field(default_factory=dict)

    @property
    def headline(self) -> dict[str, Entry]:
        """What a single table should show per optimizer: the retrained best where there is one."""
        return {name: self.tuned.get(name, entry) for name, entry in self.search.items()}


def collect(study: optuna.Study, sweep: SweepConfig, tracking_uri: str) -> Results:
    client = MlflowClient(tracking_uri)
    experiment = study.user_attrs[EXPERIMENT_ATTR]
    metrics = tuple(dict.fromkeys((*CURVES, sweep.study.epoch_metric)))

    def entries(of_phase: str) -> dict[str, Entry]:
        best = best_per_optimizer(study, sweep, of_phase)
        return {name: _entry(client, experiment, name, t, metrics) for name, t in best.items()}

    return Results(sweep, entries(SEARCH), entries(DEFAULT), entries(TUNED))


def _entry(
    client: MlflowClient,
    experiment: str,
    name: str,
    trial: optuna.trial.FrozenTrial,
    metrics: tuple[str, ...],
) -> Entry:
    run_id = trial.user_attrs[RUN_ATTR]
    seeds = client.search_runs(
        [experiment], f"tags.`{PARENT_TAG}` = '{run_id}'", order_by=["attributes.start_time ASC"]
    )
    run_ids = [r.info.run_id for r in seeds] or [run_id]
    histories = [{m: _history(client, r, m) for m in metrics} for r in run_ids]
    epochs = max(len(curve) for h in histories for curve in h.values())
    curves = {
        m: np.array([h[m] + [float("nan")] * (epochs - len(h[m])) for h in histories], dtype=float)
        for m in metrics
    }
    return Entry(name, phase(trial), trial.number, dict(trial.user_attrs.get(CONFIG_ATTR, {})), curves)


def _history(client: MlflowClient, run_id: str, metric: str) -> list[float]:
    """Values by 1-based epoch step; the last value logged wins where a step repeats."""
    by_step = {
        m.step: m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.timestamp)
    }
    return [by_step[s] for s in sorted(by_step)]
