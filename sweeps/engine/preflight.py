"""What ``sweeps run`` checks before it creates a study or any run, beyond what validating the spec checks:
the workload builds (every path imports and is the right kind, its constructor takes the kwargs and the
batch-size knob), the searched kwargs fit their constructors, and the study's metric is one the module logs.

The service's own module logs a known set (``train_loss``, ``val_loss``, ``val_acc``, ``epoch_seconds``); a
user's LightningModule logs what it logs, which is seen by fitting it on one batch (and validating on one).
"""

from __future__ import annotations

from dataclasses import replace

import lightning as L

from models.schedules import Schedule, inject
from sweeps.config.files import ConfigError
from sweeps.config.search import Range, split_setting
from sweeps.config.sweep import SweepConfig
from sweeps.config.train import TrainConfig
from sweeps.engine.epochs import EpochReport
from sweeps.engine.space import searched_settings
from sweeps.engine.training import build_trainer
from sweeps.engine.workload import (
    Workload,
    build_module,
    checked_datamodule,
    data_constructor,
    kwarg_constructors,
)
from sweeps.names import EPOCH_METRICS


def check_sweep(sweep: SweepConfig) -> None:
    """Every check of a sweep that needs its data or the user's code; a :class:`ConfigError` naming the
    field."""
    datamodule = checked_datamodule(sweep)
    data = data_constructor(sweep)
    if sweep.search.batch_size is not None and data is not None and not data.takes("batch_size"):
        raise ConfigError(
            f"search.batch_size: {data.path} takes no batch_size argument, so the batch size cannot be"
            " searched"
        )
    check_searched_kwargs(sweep)
    workload = build_module(sweep, datamodule)
    logged = EPOCH_METRICS if workload.own else logged_metrics(sweep, workload, datamodule)
    needed = sweep.study.epoch_metric
    if needed not in logged:
        module = "the service's classifier module" if workload.own else sweep.model.target
        raise ConfigError(f"study.metric: {module} logs no {needed!r}; it logs: {', '.join(sorted(logged))}")


def check_searched_kwargs(sweep: SweepConfig) -> None:
    """``search.model.kwargs.<name>`` and ``search.data.kwargs.<name>`` against their target's constructor:
    a name it takes, values of the argument's kind (a range needs a numeric one)."""
    constructors = kwarg_constructors(sweep)
    for key, value in searched_settings(sweep).items():
        section, name = split_setting(key)
        if section not in ("model", "data"):
            continue
        target = constructors.get(section)
        if target is None:
            raise ConfigError(f"search.{key}: searching {section}.kwargs needs a {section}.target")
        if section == "data" and name == "batch_size":
            raise ConfigError(f"search.{key}: the batch size is searched as search.batch_size")
        target.refuse_unknown(name, f"search.{key}")
        try:
            if value.kind is object and isinstance(value.value, Range):
                raise ValueError(f"{name} has no numeric default to sample a range of; list its values")
            value.validated()
        except ValueError as exc:
            raise ConfigError(f"search.{key}: {exc}") from None


def logged_metrics(cfg: TrainConfig, workload: Workload, datamodule: L.LightningDataModule) -> list[str]:
    """The metrics a module logs in an epoch: one training batch and one validation batch, one epoch, with
    the config's optimizer and no schedule (it would span the whole run)."""
    once = cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"max_epochs": 1})})
    inject(workload.module, replace(workload.plan, schedule=Schedule()))
    report = EpochReport()
    trainer = build_trainer(once, callbacks=[report], limit_train_batches=1, limit_val_batches=1)
    try:
        trainer.fit(workload.module, datamodule=datamodule)
    except Exception as exc:  # the user's module may raise anything
        raise ConfigError(
            f"model.target: {cfg.model.target} failed on one batch: {type(exc).__name__}: {exc}"
        ) from None
    return [key for key in report.history[-1] if key != "epoch"] if report.history else []
