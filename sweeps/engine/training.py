"""One tracked training run: validated config → Lightning fit → one MLflow run with the contract's records."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from rich.console import Console

from models.data.files import check_available
from models.data.module import MNISTDataModule
from models.module import Diverged, OptimizerModule
from sweeps.config.files import ConfigError
from sweeps.config.train import TrainConfig
from sweeps.names import EPOCH_METRICS
from sweeps.tracking.environment import device_name
from sweeps.tracking.fit import FitRecord, kept_tracking_env
from sweeps.tracking.uris import mask, tracking_uri

Outcome = Literal["finished", "diverged"]


@dataclass
class EpochReport(Callback):
    """Keeps each epoch's metrics (and prints them, given a console) as validation closes the epoch."""

    console: Console | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        # a diverged epoch logs nothing: callback_metrics still hold the previous epoch's values
        if trainer.sanity_checking or getattr(pl_module, "diverged", None) or "val_acc" not in metrics:
            return
        row = {"epoch": float(trainer.current_epoch + 1)} | {k: float(metrics[k]) for k in EPOCH_METRICS}
        if self.history and self.history[-1]["epoch"] == row["epoch"]:
            return
        self.history.append(row)
        if self.console:
            self.console.print(
                f"epoch {row['epoch']:>3.0f}  train_loss {row['train_loss']:.4f}"
                f"  val_loss {row['val_loss']:.4f}"
                f"  val_acc {row['val_acc']:.4f}  {row['epoch_seconds']:.1f}s"
            )


@dataclass(frozen=True)
class RunResult:
    run_id: str | None
    outcome: Outcome
    reason: str | None
    best_val_acc: float
    total_seconds: float
    history: list[dict[str, float]]


def build_datamodule(cfg: TrainConfig) -> MNISTDataModule:
    d = cfg.data
    return MNISTDataModule(
        name=d.name,
        data_dir=d.dir,
        batch_size=d.batch_size,
        train_subset=d.train_subset,
        val_split=d.val_split,
        holdout_size=d.holdout_size,
        seed=cfg.trainer.seed,
        split_seed=d.split_seed,
        scaling=d.scaling,
        download=d.download,
    )


def build_module(cfg: TrainConfig, num_classes: int) -> OptimizerModule:
    return OptimizerModule(
        optimizer=cfg.optimizer.name,
        preset=cfg.optimizer.preset,
        hparams=cfg.optimizer.overrides(),
        init=cfg.model.init,
        num_classes=num_classes,
        fused=cfg.model.fused,
        seed=cfg.trainer.seed,
    )


def build_trainer(
    cfg: TrainConfig, logger: Any = False, callbacks: Sequence[Callback] = (), **kw: Any
) -> L.Trainer:
    """The Trainer every path shares: no checkpoints, summaries or per-step progress bars in the hot loop."""
    return L.Trainer(
        max_epochs=cfg.trainer.max_epochs,
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision="bf16-mixed" if cfg.trainer.precision == "bf16" else "32-true",
        logger=logger,
        callbacks=list(callbacks),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kw,
    )


def checked_datamodule(cfg: TrainConfig) -> MNISTDataModule:
    """The data module, once every check that needs the files has passed (downloading if allowed, reading
    headers only), so that an impossible data setup never leaves a half-made run behind."""
    check_available(cfg.data.name, cfg.data.dir, cfg.data.download)
    try:
        datamodule = build_datamodule(cfg)
        datamodule.prepare_data()
        datamodule.check_files()
    except ValueError as exc:
        field = re.match(r"(\w+)=", str(exc))
        raise ConfigError(f"data.{field.group(1) if field else 'dir'}: {exc}") from None
    return datamodule


def prepare(cfg: TrainConfig) -> None:
    """Process-wide settings a run depends on: thread count and every RNG seed."""
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    L.seed_everything(cfg.trainer.seed, workers=False, verbose=False)


def run_params(cfg: TrainConfig, module: OptimizerModule) -> dict[str, Any]:
    """The params every run records: optimizer, every hyperparameter it was built with, the setup."""
    return {
        "optimizer": cfg.optimizer.name,
        "preset": cfg.optimizer.preset,
        **module.optimizer_hparams,
        **module.optimizer_params(),
        "batch_size": cfg.data.batch_size,
        "dataset": cfg.data.name,
        "train_subset": cfg.data.train_subset,
        "val_split": cfg.data.val_split,
        "epochs": cfg.trainer.max_epochs,
        "seed": cfg.trainer.seed,
        "init": cfg.model.init,
        "precision": cfg.trainer.precision,
    }


def train(
    cfg: TrainConfig,
    uri: str | None = None,
    console: Console | None = None,
    callbacks: Sequence[Callback] = (),
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Train once and record it as one MLflow run (Lightning's MLflow logger is the run's only writer).

    ``run_id`` fills a run created beforehand (a sweep's trial run); otherwise a new run is created.
    Raises :class:`ConfigError` (data setup) or ``DatasetNotFound`` before any run is created or touched."""
    datamodule = checked_datamodule(cfg)
    prepare(cfg)
    module = build_module(cfg, datamodule.num_classes)
    uri = tracking_uri(uri)
    with kept_tracking_env():
        return _tracked_fit(cfg, uri, datamodule, module, console, callbacks, tags or {}, run_id)


def ended_by(exc: BaseException) -> tuple[str, str, str]:
    """(outcome tag, MLflow status, reason) for a run that ended with ``exc``: pruned, interrupted and
    timed-out runs are KILLED (stopped on purpose), anything else FAILED. The reason is masked: an error's
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


def _tracked_fit(
    cfg: TrainConfig,
    uri: str,
    datamodule: MNISTDataModule,
    module: OptimizerModule,
    console: Console | None,
    callbacks: Sequence[Callback],
    tags: dict[str, str],
    run_id: str | None,
) -> RunResult:
    record = FitRecord(cfg.experiment, cfg.run_name, uri, tags, run_id)
    report = EpochReport(console)
    trainer = build_trainer(cfg, record.logger, [report, *callbacks])
    record.start(
        run_params(cfg, module), cfg.model_dump(mode="json"), device_name(trainer.strategy.root_device)
    )
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule)
    except BaseException as exc:
        record.ended(*ended_by(exc))
        raise
    total = time.perf_counter() - started
    outcome: Outcome = "diverged" if module.diverged else "finished"
    finals = {"best_val_acc": module.best_val_acc, "total_seconds": total}
    record.finished(finals, len(report.history), module.diverged)
    return RunResult(record.run_id, outcome, module.diverged, module.best_val_acc, total, report.history)
