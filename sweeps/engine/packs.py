"""Trial packs in a worker: up to ``study.pack`` trials asked at once, and those that share what a pack must
share trained as one stacked model (:mod:`models.pack`) in this process.

A packed trial is still a trial of its own: its child run with its params and per-epoch curves, its pruning
decision at each epoch (the pruned member's slot is freed, the others train on), its divergence (its NaN
reaches no pack-mate), its tell. What its members share is the whole train config but the optimizer's
hyperparameters and preset, the seed and the initialisation. A trial that cannot be packed, or that has no
pack-mate of its shape, trains alone exactly as without packs, and the log says why once per reason.

Bookkeeping is kept off the pack's training: each member's epoch row is queued on MLflow's background writer
(one ``log_batch`` per member and epoch), and the time the epoch-end calls take is logged as a share of the
pack's training time.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import lightning as L
import optuna
from lightning.pytorch.callbacks import Callback
from optuna.trial import FrozenTrial
from torch import nn

from models.module import Diverged
from models.optimizers import get_spec
from models.pack import Member, PackData, PackModule
from models.pack.rules import RULES
from sweeps.config.imports import is_path
from sweeps.config.sweep import SweepConfig
from sweeps.config.train import TrainConfig
from sweeps.engine.objective import Objective, Started, kept_going, metric_value, pruned_reason
from sweeps.engine.runtime import denormals_flushed
from sweeps.engine.storage.heartbeat import running_trial
from sweeps.engine.study import waiting
from sweeps.engine.tell import interrupted, state_of, tell
from sweeps.engine.training import (
    Deadline,
    RunResult,
    build_trainer,
    prepare,
    run_params,
)
from sweeps.engine.workload import checked_datamodule, constructor, optimizer_plan
from sweeps.names import EPOCH_METRICS, SEARCH
from sweeps.tracking.environment import device_name
from sweeps.tracking.fit import FitRecord, kept_tracking_env

_logger = logging.getLogger(__name__)
_said: set[str] = set()

Begun = tuple[optuna.Trial, Started]


def alone_because(started: Started, sweep: SweepConfig) -> str | None:
    """Why this trial cannot join a pack (``None``: it can)."""
    cfg = started.cfg
    if started.reopened:
        return "a preempted trial resumes alone, from its checkpoint"
    if started.phase != SEARCH:
        return "retrains train their seeds one after another"
    if sweep.study.repeats > 1:
        return "study.repeats > 1 trains each trial's seeds one after another"
    if cfg.data.target is not None:
        return "a data.target serves its own batches; packs draw theirs from a built-in data set"
    if cfg.scheduler.name != "none":
        return "learning-rate schedules are not packed"
    if is_path(cfg.optimizer.name) or get_spec(cfg.optimizer.name).torch_class not in RULES:
        return f"{cfg.optimizer.name} has no packed update rule"
    if cfg.model.target is not None:
        found = constructor(cfg.model.target, "model", nn.Module, cfg.model.factory).found
        if isinstance(found, type) and issubclass(found, L.LightningModule):
            return f"{cfg.model.target} is a LightningModule, which trains itself: one trial per process"
    if sweep.study.epoch_metric not in EPOCH_METRICS:
        return f"a pack logs {', '.join(sorted(EPOCH_METRICS))}, not {sweep.study.epoch_metric}"
    return None


def shape_of(cfg: TrainConfig) -> str:
    """What pack-mates share: the config without hyperparameters, preset, seed and initialisation."""
    kept = cfg.model_dump(mode="json", exclude={"run_name": True, "trainer": {"seed"}, "model": {"init"}})
    kept["optimizer"] = cfg.optimizer.name
    return json.dumps(kept, sort_keys=True)


def run_pack(study: optuna.Study, objective: Objective, size: int) -> list[FrozenTrial]:
    """Ask up to ``size`` trials (all beating their heartbeats), train them in packs by shape (and alone
    those that cannot be packed), tell each; returns the told trials. On Ctrl-C every trial not yet told is
    failed as interrupted."""
    told: dict[int, FrozenTrial] = {}
    with ExitStack() as beating:
        trials = []
        while len(trials) < size and (objective.sweep.study.n_trials is None or waiting(study)):
            trials.append(beating.enter_context(running_trial(study, fail_stale=False)))
        try:
            for trial, value, error in _train(trials, objective):
                state = None if error is None else state_of(trial, error)
                told[trial.number] = tell(study, trial, value, state)
        except KeyboardInterrupt:
            for trial in trials:
                if trial.number not in told:
                    interrupted(study, trial)
            raise
    return list(told.values())


Told = tuple[optuna.Trial, object, Exception | None]


def _train(trials: list[optuna.Trial], objective: Objective) -> Iterator[Told]:
    """Begin every trial, then train: packs of two or more of one shape, the rest alone; each trial's end
    as soon as it is known, so that it is told at once."""
    shapes: dict[str, list[Begun]] = {}
    for trial in trials:
        try:
            started = objective.begin(trial)
        except Exception as error:
            yield trial, None, error
            continue
        reason = alone_because(started, objective.sweep)
        if reason is not None:
            _say(reason)
        key = f"alone-{trial.number}" if reason else shape_of(started.cfg)
        shapes.setdefault(key, []).append((trial, started))
    for members in shapes.values():
        if len(members) == 1:
            yield _alone(objective, *members[0])
        else:
            yield from _packed(objective, members)


def _say(reason: str) -> None:
    """Why trials train alone, logged once per reason and worker."""
    if reason not in _said:
        _said.add(reason)
        _logger.info("trials train alone: %s", reason)


def _draws_globally(network: nn.Module) -> bool:
    """Whether ``network`` has torch's dropout layers (with a rate), which draw from the global generator."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in network.modules())


def _alone(objective: Objective, trial: optuna.Trial, started: Started) -> Told:
    try:
        return trial, objective.run(trial, started), None
    except Exception as error:
        return trial, None, error


@dataclass
class PackEpochs(Callback):
    """At each epoch's end: every member's new rows queued for its run, then each member still training
    reported to its trial and stopped if the study's pruner cuts it (``monitor`` ``None``: no pruning)."""

    module: PackModule
    records: list[FitRecord]
    trials: list[optuna.Trial]
    monitor: str | None
    written: list[int] = field(init=False)
    """Rows already queued, per member."""
    seconds: float = 0.0
    """Time spent here: the pack's bookkeeping."""

    def __post_init__(self) -> None:
        self.written = [0] * len(self.records)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        started = time.perf_counter()
        epoch = trainer.current_epoch + 1
        training = set(self.module.slots)
        for member, (record, history) in enumerate(zip(self.records, self.module.history, strict=True)):
            for row in history[self.written[member] :]:
                record.log_epoch({k: v for k, v in row.items() if k != "epoch"}, int(row["epoch"]))
            self.written[member] = len(history)
            if self.monitor is None or member not in training or not history or history[-1]["epoch"] != epoch:
                continue
            trial, value = self.trials[member], history[-1][self.monitor]
            trial.report(value, step=epoch)
            if trial.should_prune():
                self.module.stop(member, pruned_reason(epoch, self.monitor, value))
        self.seconds += time.perf_counter() - started


def _network(cfg: TrainConfig, num_classes: int | None) -> Callable[..., nn.Module] | None:
    """How a member's network is built: ``None`` for the seed CNN (the pack's own), else the user's."""
    if cfg.model.target is None:
        return None
    model = constructor(cfg.model.target, "model", nn.Module, cfg.model.factory)
    offered = {"num_classes": num_classes} if num_classes else {}
    return lambda init: model.build(cfg.model.kwargs, offered)


def _packed(objective: Objective, members: list[Begun]) -> list[Told]:
    """Train ``members`` as one pack; each ends as it ended in the pack (finished, pruned, diverged), or
    with the error that stopped the whole pack."""
    trials, cfgs = [t for t, _ in members], [s.cfg for _, s in members]
    first, study = cfgs[0], objective.sweep.study
    records: list[FitRecord] = []
    epochs: PackEpochs | None = None
    failure: BaseException | None = None
    with kept_tracking_env(), denormals_flushed():
        try:
            datamodule = checked_datamodule(first)
            prepare(first)
            num_classes = getattr(datamodule, "num_classes", None)
            network = _network(first, num_classes)
            if network is not None and _draws_globally(network("torch")):
                _say(
                    f"{first.model.target} uses torch's nn.Dropout, which cannot be packed (its masks would"
                    " depend on the pack); with models.dropout.Dropout it can"
                )
                return [_alone(objective, trial, started) for trial, started in members]
            module = PackModule(
                [
                    Member(
                        c.optimizer.name,
                        c.optimizer.preset,
                        c.optimizer.overrides(),
                        c.trainer.seed,
                        c.model.init,
                    )
                    for c in cfgs
                ],
                network=network,
                num_classes=num_classes or 10,
                fused=first.model.fused,
            )
            monitor = study.epoch_metric if study.pruner != "none" else None
            records = [
                FitRecord(c.experiment, None, objective.tracking_uri, run_id=s.run_id, asynchronous=True)
                for c, (_, s) in zip(cfgs, members, strict=True)
            ]
            epochs = PackEpochs(module, records, trials, monitor)
            deadline = [Deadline(objective.deadline)] if math.isfinite(objective.deadline) else []
            trainer = build_trainer(first, callbacks=[epochs, *deadline])
            device = device_name(trainer.strategy.root_device)
            for cfg, record in zip(cfgs, records, strict=True):
                record.start(run_params(cfg, optimizer_plan(cfg)), cfg.model_dump(mode="json"), device)
            _logger.info(
                "pack of %d trials (%s): %s, batch %s, %d epoch%s",
                len(trials),
                ", ".join(str(t.number) for t in trials),
                first.optimizer.name,
                first.data.batch_size,
                first.trainer.max_epochs,
                "" if first.trainer.max_epochs == 1 else "s",
            )
            started = time.perf_counter()
            trainer.fit(module, datamodule=PackData(datamodule, module))
            _log_bookkeeping(len(trials), epochs.seconds, time.perf_counter() - started)
        except BaseException as exc:  # the whole pack stopped: each member not ended yet ends with it
            failure = exc
        done = [
            _ended(objective, trial, started, records[i] if records else None, epochs, i, failure)
            for i, (trial, started) in enumerate(members)
        ]
    if isinstance(failure, KeyboardInterrupt):
        raise failure
    return done


def _ended(
    objective: Objective,
    trial: optuna.Trial,
    started: Started,
    record: FitRecord | None,
    epochs: PackEpochs | None,
    member: int,
    failure: BaseException | None,
) -> Told:
    """Close one member's run and say what its trial is told: how it ended in the pack (finished, pruned,
    diverged), else the error that stopped the whole pack."""
    kept = epochs.module.records[member] if epochs is not None else None
    error: BaseException | None = failure
    if kept is not None and kept.ended == "pruned":
        error = optuna.TrialPruned(kept.reason)
    elif kept is not None and kept.ended == "diverged":
        error = Diverged(kept.reason)
    history = kept.history if kept is not None else []
    seconds = sum(row["epoch_seconds"] for row in history)
    best = kept.best_val_acc if kept is not None else math.nan
    if record is not None:
        with kept_going("closing the run", record.run_id):
            if error is None or isinstance(error, Diverged):
                outcome = str(error) if error else None
                record.finished({"best_val_acc": best, "total_seconds": seconds}, len(history), outcome)
            else:  # its curves stored; objective.stopped closes the run with why
                record.flush()
    if error is not None:
        objective.stopped(trial, started, error)
        return trial, None, error if isinstance(error, Exception) else None
    result = RunResult(started.run_id, "finished", None, best, seconds, history)
    values = [metric_value(result, objective.sweep.study.metric)]
    return trial, objective.completed(trial, started, values, seconds, []), None


def _log_bookkeeping(size: int, bookkeeping: float, seconds: float) -> None:
    _logger.info(
        "pack of %d trials trained in %.1f s; its MLflow and Optuna calls at epoch ends took %.1f %% of it",
        size,
        seconds,
        100 * bookkeeping / seconds if seconds else 0.0,
    )
