"""One tracked training run: validated config → Lightning fit → one MLflow run with the contract's records."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from models.module import Diverged
from models.schedules import OptimizerPlan
from sweeps.config.train import TrainConfig
from sweeps.engine.checkpoints import Checkpointer, Checkpointing, resumed
from sweeps.engine.epochs import EpochReport, Row
from sweeps.engine.preemption import STOP, Preempted
from sweeps.engine.runtime import denormals_flushed
from sweeps.engine.workload import Workload, build_module, checked_datamodule, optimizer_plan
from sweeps.environ import scoped_environ
from sweeps.masking import mask
from sweeps.tracking.environment import device_name
from sweeps.tracking.fit import FitRecord, kept_tracking_env
from sweeps.tracking.uris import tracking_uri

Outcome = Literal["finished", "diverged", "pruned"]


class StopAtEpochEnd(Callback):
    """Stops a fit whose worker was told to stop, as the next epoch starts: the epoch before is complete and
    checkpointed. The last epoch is never cut: its trial ends as it would have.

    Lightning's fit installs a SIGTERM handler of its own, which stops training mid-epoch (its
    ``SIGTERMException``, a ``SystemExit``); a listening worker takes SIGTERM back as training starts, and
    Lightning puts the worker's handler back when the fit ends."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if STOP.listening:
            STOP.listen()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if STOP.requested:
            epochs = trainer.current_epoch
            raise Preempted(f"preempted after epoch {epochs} ({STOP.signal}); resumes from there")


@dataclass(frozen=True)
class RunResult:
    """A finished (diverged, pruned) run: its record, its rows per epoch, and the trained model (the
    network, or a user's LightningModule), which a sweep logs for the runs it keeps."""

    run_id: str | None
    outcome: Outcome
    reason: str | None
    best_val_acc: float
    total_seconds: float
    history: list[dict[str, float]]
    model: nn.Module | None = None


@dataclass(frozen=True)
class Run:
    """One run of a fit: its config, the MLflow run it fills (``None``: a new one), where it checkpoints,
    and whether that run already holds the epochs its checkpoint restores (a preempted run resumed in
    place)."""

    cfg: TrainConfig
    run_id: str | None = None
    checkpoints: Checkpointing | None = None
    resumed_in_place: bool = False


def build_trainer(cfg: TrainConfig, callbacks: Sequence[Callback] = (), **kw: Any) -> L.Trainer:
    """The Trainer every path shares: no checkpoints, summaries or per-step progress bars in the hot loop;
    a worker told to stop stops as the next epoch starts."""
    return L.Trainer(
        max_epochs=cfg.trainer.max_epochs,
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision="bf16-mixed" if cfg.trainer.precision == "bf16" else "32-true",
        logger=False,
        callbacks=[*callbacks, StopAtEpochEnd()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kw,
    )


def prepare(cfg: TrainConfig) -> None:
    """Process-wide settings a run depends on: thread count, every RNG seed."""
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    with scoped_environ(kept=["PL_GLOBAL_SEED", "PL_SEED_WORKERS"]):  # Lightning exports the seed
        L.seed_everything(cfg.trainer.seed, workers=False, verbose=False)


def run_params(cfg: TrainConfig, plan: OptimizerPlan) -> dict[str, Any]:
    """The params every run records: optimizer, every hyperparameter it was built with, the schedule, the
    model and data (a target's kwargs as ``model.<key>``, ``data.<key>``), the setup."""
    schedule = cfg.scheduler.settings()
    return {
        "optimizer": cfg.optimizer.name,
        "preset": cfg.optimizer.preset,
        **plan.hparams,
        **plan.spec.torch_kwargs(plan.hparams),
        "batch_size": cfg.data.batch_size,
        "dataset": cfg.data.label,
        "train_subset": cfg.data.train_subset,
        "val_split": cfg.data.val_split,
        "split_seed": cfg.data.split_seed,
        "scaling": cfg.data.scaling,
        "epochs": cfg.trainer.max_epochs,
        "seed": cfg.trainer.seed,
        "init": cfg.model.init,
        "precision": cfg.trainer.precision,
        "model": cfg.model.target or "seed_cnn",
        "scheduler": cfg.scheduler.name,
        **{f"scheduler.{k}": v for k, v in schedule.items()},
        **{f"model.{k}": v for k, v in cfg.model.kwargs.items()},
        **{f"data.{k}": v for k, v in cfg.data.kwargs.items()},
    }


def train(
    cfg: TrainConfig,
    uri: str | None = None,
    show: Callable[[Row, int], None] | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoints: Checkpointing | None = None,
) -> RunResult:
    """Train once and record it as one new MLflow run (see :func:`fit`); the error that stopped it is
    raised."""
    run = Run(cfg, checkpoints=checkpoints)
    (result,) = fit([run], lambda datamodule: build_module(cfg, datamodule), uri, show, callbacks)
    if isinstance(result, BaseException):
        raise result
    return result


def fit(
    runs: Sequence[Run],
    build: Callable[[L.LightningDataModule], Workload],
    uri: str | None = None,
    show: Callable[[Row, int], None] | None = None,
    callbacks: Sequence[Callback] = (),
    tags: dict[str, str] | None = None,
    required: str | None = None,
    judge: Callable[[int, Row, int], str | None] | None = None,
) -> list[RunResult | BaseException]:
    """Train ``runs`` (one, or a pack's trials of one shape: the first's config sets the data and the
    trainer) as what ``build`` makes of the data, each recorded as one MLflow run; each epoch's row is
    written as the epoch ends, step = the 1-based epoch. Returns per run its result, or the error that
    stopped the whole fit.

    Each run with ``checkpoints`` (all or none) saves its state every epoch under its own key and resumes
    from the newest one saved. ``required`` names a metric the module must log (checked after the first
    epoch); ``judge`` may end a run after each of its rows (a pruner: why, else ``None``). Raises
    :class:`ConfigError` (data or model setup) or ``DatasetNotFound`` before any run is created or
    touched."""
    first = runs[0].cfg
    datamodule = checked_datamodule(first)
    prepare(first)
    workload = build(datamodule)
    uri = tracking_uri(uri)
    targets = [run.checkpoints for run in runs if run.checkpoints is not None]
    with (
        kept_tracking_env(),
        denormals_flushed(),
        tempfile.TemporaryDirectory(prefix="sweeps-run-") as scratch,
    ):
        packed = len(runs) > 1
        records = [
            FitRecord(run.cfg.experiment, run.cfg.run_name, uri, tags, run.run_id, asynchronous=packed)
            for run in runs
        ]
        report = EpochReport(
            [record.log_epoch for record in records],
            show,
            required,
            [run.resumed_in_place for run in runs],
            workload.read,
            judge,
            workload.stop,
        )
        resume, saving = None, []
        if targets:
            resume = resumed(targets, workload, Path(scratch))
            saving = [Checkpointer(targets, Path(scratch), workload)]
        trainer = build_trainer(first, callbacks=[report, *callbacks, *saving])
        device = device_name(trainer.strategy.root_device)
        for run, record in zip(runs, records, strict=True):
            record.start(
                run_params(run.cfg, optimizer_plan(run.cfg)), run.cfg.model_dump(mode="json"), device
            )
        failure: BaseException | None = None
        try:  # tensors and plain data only: the store is writable by others, unpickling runs code
            trainer.fit(
                workload.module, datamodule=workload.data(datamodule), ckpt_path=resume, weights_only=True
            )
        except BaseException as exc:
            failure = exc
        return [_ended(k, record, report, workload, failure) for k, record in enumerate(records)]


def _ended(
    member: int, record: FitRecord, report: EpochReport, workload: Workload, failure: BaseException | None
) -> RunResult | BaseException:
    """Close one run: as its member ended (finished, diverged, pruned), else with the error that stopped the
    whole fit."""
    how, reason = report.ended[member] or workload.ended(member) or (None, None)
    if how is None and failure is not None:
        record.ended(*ended_by(failure))
        return failure
    best, total = report.best("val_acc", member), report.seconds(member)
    if how == "pruned":
        record.ended("pruned", "KILLED", reason)
    else:
        record.finished({"best_val_acc": best, "total_seconds": total}, len(report.histories[member]), reason)
    outcome: Outcome = how or "finished"
    return RunResult(
        record.run_id, outcome, reason, best, total, report.histories[member], workload.model(member)
    )


def ended_by(exc: BaseException) -> tuple[str, str, str]:
    """(outcome tag, MLflow status, reason) for a run that ended with ``exc``: pruned, interrupted, preempted
    and timed-out runs are KILLED (stopped on purpose), anything else FAILED. The reason is masked: an error's
    text may hold a URL with its password."""
    import optuna

    if isinstance(exc, Diverged):
        return "diverged", "FAILED", str(exc)
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "interrupted", "KILLED", "interrupted by the user"
    if isinstance(exc, optuna.TrialPruned):
        return "pruned", "KILLED", str(exc) or "pruned"
    if isinstance(exc, TimedOut):
        return "stopped", "KILLED", str(exc)
    if isinstance(exc, Preempted):
        return "preempted", "KILLED", str(exc)
    if isinstance(exc, torch.OutOfMemoryError):
        return "failed", "FAILED", mask(f"out of memory: {exc}")[:4000]
    return "failed", "FAILED", mask(f"{exc!r}")[:4000]


class TimedOut(RuntimeError):
    """The sweep's ``study.timeout`` ran out during this run: it is stopped, not failed."""


@dataclass
class Deadline(Callback):
    """Stops training once wall-clock time passes ``at`` (seconds since the epoch), checked every batch:
    one clock read per step."""

    at: float

    def on_train_batch_end(self, *args: object) -> None:
        if time.time() > self.at:
            raise TimedOut("stopped at the sweep's timeout")
