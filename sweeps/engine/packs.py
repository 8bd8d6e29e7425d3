"""Trial packs in a worker: up to ``study.pack`` trials asked at once, and those that share what a pack must
share trained as one stacked model (:mod:`models.pack`) in this process.

A packed trial is still a trial of its own: its child run with its params and per-epoch curves, its pruning
decision at each epoch (the pruned member's slot is freed, the others train on), its divergence (its NaN
reaches no pack-mate), its tell. What its members share is the whole train config but the optimizer's
hyperparameters and preset, the seed and the initialisation. A trial that cannot be packed, or that has no
pack-mate of its shape, trains alone exactly as without packs, and the log says why once per reason. A pack
trains through the one fit routine a single trial does (:func:`sweeps.engine.training.fit`), checkpoints
included (:mod:`sweeps.engine.checkpoints`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack

import lightning as L
import optuna
from optuna.trial import FrozenTrial
from torch import nn

from models.optimizers import get_spec
from models.pack.rules import RULES
from sweeps.config.imports import is_path
from sweeps.config.sweep import SweepConfig
from sweeps.config.train import TrainConfig
from sweeps.engine.objective import Objective, Started
from sweeps.engine.storage.heartbeat import running_trial
from sweeps.engine.study import waiting
from sweeps.engine.tell import interrupted, state_of, tell
from sweeps.engine.training import Run
from sweeps.engine.workload import Unpackable, Workload, build_pack, constructor
from sweeps.names import EPOCH_METRICS, SEARCH

_logger = logging.getLogger(__name__)
_said: set[str] = set()

Begun = tuple[optuna.Trial, Started]


def alone_because(started: Started, sweep: SweepConfig) -> str | None:
    """Why this trial cannot join a pack (``None``: it can)."""
    cfg = started.cfg
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
        queued = objective.sweep.study.n_trials is not None
        while len(trials) < size and (not queued or waiting(study)):
            trial = beating.enter_context(running_trial(study, fail_stale=False, queued=queued))
            if trial is None:  # another worker took the last queued trial
                break
            trials.append(trial)
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
    """Begin every trial, then train: packs of two or more of one shape (and saved epoch: a lost pack's
    trials resume together), the rest alone; each trial's end as soon as it is known, so that it is told at
    once."""
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
        saved = objective.checkpointing(trial, started.cfg)
        key = (
            f"alone-{trial.number}" if reason else f"{shape_of(started.cfg)}@{saved and saved.saved_epoch()}"
        )
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


def _alone(objective: Objective, trial: optuna.Trial, started: Started) -> Told:
    try:
        return trial, objective.run(trial, started), None
    except Exception as error:
        return trial, None, error


def _packed(objective: Objective, members: list[Begun]) -> list[Told]:
    """Train ``members`` as one pack; each ends as it ended in the pack (finished, pruned, diverged), or
    with the error that stopped the whole pack. Each saves its checkpoints under its own key, as it would
    alone."""
    trials, cfgs = [t for t, _ in members], [s.cfg for _, s in members]
    runs = [Run(s.cfg, s.run_id, objective.checkpointing(t, s.cfg), s.reopened) for t, s in members]

    def build(datamodule: L.LightningDataModule) -> Workload:
        pack, first = build_pack(cfgs, datamodule), cfgs[0]
        _logger.info(
            "pack of %d trials (%s): %s, batch %s, %d epoch%s",
            len(trials),
            ", ".join(str(t.number) for t in trials),
            first.optimizer.name,
            first.data.batch_size,
            first.trainer.max_epochs,
            "" if first.trainer.max_epochs == 1 else "s",
        )
        return pack

    try:
        results = objective.fit(trials, runs, build, pruned=True)
    except Unpackable as reason:
        _say(str(reason))
        return [_alone(objective, trial, started) for trial, started in members]
    except BaseException as exc:  # before any run was touched: the data, the network
        results = [exc] * len(members)
    told = [_told(objective, *member, result) for member, result in zip(members, results, strict=True)]
    by_user = [r for r in results if isinstance(r, KeyboardInterrupt)]
    if by_user:
        raise by_user[0]
    return told


def _told(objective: Objective, trial: optuna.Trial, started: Started, result: object) -> Told:
    """Close one member's trial: its value, else what stopped it."""
    try:
        return trial, objective.close(trial, started, lambda: objective.scored([result])), None
    except BaseException as error:
        return trial, None, error if isinstance(error, Exception) else None
