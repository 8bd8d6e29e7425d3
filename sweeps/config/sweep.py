"""The sweep spec: a train config (where every trial starts) plus a ``study`` and a ``search`` block.

It is validated like the train config, before any study or run exists: unknown keys, values outside what
the optimizer registry allows, hyperparameters no searched optimizer takes and study settings Optuna
cannot honour are all refused with the dotted name of the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, ValidationInfo, field_validator, model_validator

from models.schedules import SCHEDULES
from sweeps.config.files import Strict, overridden, read_yaml, validate
from sweeps.config.imports import optimizer_spec
from sweeps.config.launcher import LauncherConfig
from sweeps.config.search import SearchConfig, setting, split_setting
from sweeps.config.train import Count, OptimizerConfig, TrainConfig

Direction = Literal["maximize", "minimize"]
# What a trial can report, with the direction that improves it: the metrics the service's LightningModule logs
# each epoch, kept by the training run as its result (best_val_acc: max of val_acc over epochs; the others:
# the last epoch's value). A user's LightningModule may log others: any of them can be the study's metric,
# with its direction given.
METRIC_DIRECTIONS: Mapping[str, Direction] = {
    "best_val_acc": "maximize",
    "val_acc": "maximize",
    "val_loss": "minimize",
    "train_loss": "minimize",
}

MIN_RETRAIN_SEEDS, MAX_RETRAIN_SEEDS = 3, 30
"""Paired seeds a retrain may use: with 2 a t interval is ±12.7 std wide and a paired test has 1 degree of
freedom; past 30 the interval narrows only as 1/√n for a linear cost in training."""


class StudyConfig(Strict):
    """How Optuna searches: objective, sampler, pruner and budget."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    direction: Direction = "maximize"
    metric: Annotated[str, Field(pattern=r"^[A-Za-z_][\w./-]*$")] = "best_val_acc"  # a metric a run logs
    sampler: Literal["tpe", "random", "grid", "cmaes", "qmc"] = "tpe"  # grid: every configuration once
    seed: StrictInt = 0  # worker i seeds its sampler with seed + i
    pruner: Literal["none", "median", "successive_halving", "hyperband"] = "median"
    n_trials: Count | None = None  # per optimizer when per_optimizer; grid: defaults to the grid's size
    timeout: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] | None = None  # seconds
    per_optimizer: bool = False  # an equal budget: n_trials for each searched optimizer
    repeats: Count = 1  # seeds per configuration; the trial's value is their mean
    time_objective: bool = False  # a second objective, total training seconds (minimised): a Pareto front
    retrain_seeds: Annotated[int, Field(strict=True, ge=0)] = 0  # then best and default on these seeds
    checkpoints: bool = True  # each trial saves its state every epoch; a lost worker's trial resumes from it
    pack: Annotated[int, Field(strict=True, ge=1, le=256)] = 1  # trials a worker trains as one stacked model

    @model_validator(mode="before")
    @classmethod
    def _direction_follows_metric(cls, data: Any) -> Any:
        """Without an explicit direction, the metric's own (``val_loss`` alone means minimize); a metric the
        service does not know needs one."""
        if not isinstance(data, dict) or "direction" in data:
            return data
        metric = data.get("metric", "best_val_acc")
        if not isinstance(metric, str):
            return data  # the metric is wrong, and reported
        if metric in METRIC_DIRECTIONS:
            return {**data, "direction": METRIC_DIRECTIONS[metric]}
        raise ValueError(
            f"direction: give study.direction (maximize or minimize) for {metric!r}; it is known for"
            f" {', '.join(METRIC_DIRECTIONS)} only"
        )

    @model_validator(mode="after")
    def _consistent(self) -> StudyConfig:
        """Errors start with ``<key>:`` so that they name ``study.<key>``."""
        wanted = METRIC_DIRECTIONS.get(self.metric, self.direction)
        if self.direction != wanted:
            better = "higher" if wanted == "maximize" else "lower"
            raise ValueError(f"direction: {better} {self.metric} is better; use direction: {wanted}")
        if self.n_trials is None and self.timeout is None and self.sampler != "grid":
            raise ValueError("n_trials: give study.n_trials, study.timeout or both")
        if self.per_optimizer and self.sampler == "grid":
            raise ValueError(
                "per_optimizer: the grid sampler already runs every configuration of every optimizer"
            )
        if self.per_optimizer and self.pruner == "hyperband":
            raise ValueError(
                "pruner: hyperband reads its brackets from the whole study, so with per_optimizer it would"
                " prune one optimizer against another; use median or successive_halving"
            )
        if self.per_optimizer and self.n_trials is None:
            raise ValueError("per_optimizer: needs study.n_trials, the trials each optimizer gets")
        if self.time_objective and self.pruner != "none":
            raise ValueError(
                "pruner: Optuna cannot prune a multi-objective study (time_objective: true); use none"
            )
        if self.retrain_seeds and not MIN_RETRAIN_SEEDS <= self.retrain_seeds <= MAX_RETRAIN_SEEDS:
            raise ValueError(
                f"retrain_seeds: 0 (no retrains) or {MIN_RETRAIN_SEEDS} to {MAX_RETRAIN_SEEDS}, got"
                f" {self.retrain_seeds}: fewer seeds leave no interval worth stating, more add little"
            )
        if self.retrain_seeds and self.time_objective:
            raise ValueError(
                "retrain_seeds: picking each optimizer's best config needs one objective;"
                " set time_objective: false"
            )
        if self.time_objective and self.sampler == "cmaes":
            raise ValueError(
                "sampler: cmaes optimizes a single objective; with time_objective use tpe or random"
            )
        return self

    @property
    def epoch_metric(self) -> str:
        """The per-epoch metric the study's metric is read from (``best_val_acc``: ``val_acc``), which the
        pruner watches."""
        return "val_acc" if self.metric == "best_val_acc" else self.metric


class SweepConfig(TrainConfig):
    """The train config's keys are the defaults every trial starts from; ``experiment`` defaults to the
    study's name and ``search.optimizer`` to ``optimizer.name``."""

    search: SearchConfig
    study: StudyConfig  # after search: its checks need the space
    launcher: LauncherConfig = LauncherConfig()  # where workers run under a scheduler: not part of the study

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_other_blocks(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        study, search, optimizer = (data.get(k) for k in ("study", "search", "optimizer"))
        if "experiment" not in data and isinstance(study, dict) and isinstance(study.get("name"), str):
            data["experiment"] = study["name"]
        if isinstance(search, dict) and "optimizer" not in search:
            base = optimizer.get("name") if isinstance(optimizer, dict) else None
            data["search"] = {**search, "optimizer": base or OptimizerConfig().name}
        return data

    @field_validator("search")
    @classmethod
    def _base_hyperparams_fit(cls, search: SearchConfig, info: ValidationInfo) -> SearchConfig:
        """The ``optimizer`` section's preset and hyperparameters are where every trial starts from, for
        each searched optimizer that takes them and does not search them."""
        base: OptimizerConfig | None = info.data.get("optimizer")
        if base is None:
            return search  # the optimizer section is wrong, and reported
        for name in search.optimizers:
            try:
                start_from(base, name, search.space(name))
            except ValueError as exc:
                raise ValueError(
                    f"optimizer: {name} cannot start from the optimizer section: {exc}"
                ) from None
        return search

    @model_validator(mode="after")
    def _selects_off_the_test_split(self) -> SweepConfig:
        """A sweep that tunes picks its best on the validation split, so that split must not be the one its
        scores are reported on: tuning runs on the hold-out, the test split scores retrains. Comparing fixed
        configurations on test (the classic table) stays allowed."""
        tuned = self.search.tuned()
        if self.data.val_split == "test" and tuned:
            what = ", ".join(tuned[:3]) + (", ..." if len(tuned) > 3 else "")
            raise ValueError(
                f"data.val_split: a sweep that tunes ({what})"
                " selects its best on the validation split, so it must be the hold-out of the train split"
                " (val_split: holdout, the default); the test split scores the retrains (study.retrain_seeds)"
            )
        return self

    @field_validator("search")
    @classmethod
    def _schedule_settings_apply(cls, search: SearchConfig, info: ValidationInfo) -> SearchConfig:
        """A schedule's setting is searched only where a schedule trials may use takes it, and no warm-up
        searched outlasts a trial; errors start with the key, so that they name ``search.scheduler.<key>``."""
        if "scheduler" not in info.data or "trainer" not in info.data:
            return search  # the scheduler or trainer section is wrong, and reported
        settings = search.settings()
        # a warm-up the spec fixes meets a searched run length here; with neither searched the train config
        # checks the pair itself
        fixed = info.data["scheduler"].warmup_epochs or 0 if "trainer.max_epochs" in settings else 0
        runs = info.data["trainer"].max_epochs
        most = setting("scheduler.warmup_epochs", settings.get("scheduler.warmup_epochs", fixed)).extreme(max)
        fewest = setting("trainer.max_epochs", settings.get("trainer.max_epochs", runs)).extreme(min)
        if most >= fewest:
            raise ValueError(
                f"scheduler.warmup_epochs: up to {most} warm-up epochs, but a trial may run only {fewest}"
                " (trainer.max_epochs)"
            )
        schedules = search.schedules(info.data["scheduler"].name)
        for key in settings:
            section, name = split_setting(key)
            if section == "scheduler" and name != "name" and not any(name in SCHEDULES[s] for s in schedules):
                takers = [s for s, takes in SCHEDULES.items() if name in takes]
                raise ValueError(
                    f"{key}: no schedule trials use ({', '.join(schedules)}) takes {name!r};"
                    f" {', '.join(takers)} does"
                )
        return search

    @field_validator("study")
    @classmethod
    def _sampler_fits_space(cls, study: StudyConfig, info: ValidationInfo) -> StudyConfig:
        """Errors start with ``<key>:`` so that they name ``study.<key>``."""
        search: SearchConfig | None = info.data.get("search")
        if search is None:
            return study  # the search block is wrong, and reported
        ranges = search.ranges()
        schedule = info.data["scheduler"].name if "scheduler" in info.data else "none"
        if study.sampler == "grid":
            if ranges:
                raise ValueError(
                    f"sampler: grid needs a finite space; list the values of {', '.join(ranges)}"
                )
            size = search.grid_size(schedule)
            if study.n_trials is None:
                return study.model_copy(update={"n_trials": size})
            if study.n_trials > size:
                raise ValueError(f"n_trials: {study.n_trials} exceeds the grid's {size} configurations")
        if study.sampler == "cmaes" and not ranges:
            raise ValueError("sampler: cmaes has nothing to do: the search space holds no range")
        if study.sampler in ("cmaes", "qmc") and len(search.optimizers) > 1:
            raise ValueError(
                f"sampler: {study.sampler} needs a space without conditions, but each of "
                f"{len(search.optimizers)} optimizers has its own; use tpe or random, or fix search.optimizer"
            )
        if study.sampler in ("cmaes", "qmc") and len(search.schedules(schedule)) > 1:
            raise ValueError(
                f"sampler: {study.sampler} needs a space without conditions, but each schedule takes its own"
                " settings; use tpe or random, or fix search.scheduler.name"
            )
        return study


def start_from(base: OptimizerConfig, name: str, searched: Iterable[str] = ()) -> dict[str, Any]:
    """The ``optimizer`` section for a trial of ``name``: the base preset and the base hyperparameters
    ``name`` takes, except those in ``searched``; checked by the registry (a ``ValueError``)."""
    spec = optimizer_spec(name)
    kept = {k: v for k, v in base.overrides().items() if k in spec.hyperparams and k not in searched}
    spec.resolve(base.preset, **kept)
    return {"name": name, "preset": base.preset, **kept}


def load_sweep(path: Path, overrides: Iterable[str] = ()) -> SweepConfig:
    """Read, override (``study.n_trials=20``, ``search.lr.high=0.1``) and validate a sweep spec;
    raises :class:`~sweeps.config.files.ConfigError` naming every bad field."""
    return validate(SweepConfig, overridden(read_yaml(path), overrides))
