"""The LightningModule: what it logs each epoch, and how it stops on divergence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
from lightning.pytorch.loggers.logger import Logger

from models.data.module import MNISTDataModule
from models.module import OptimizerModule


class Recorder(Logger):
    """A logger that keeps what Lightning hands to loggers, to check names and steps."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, dict[str, float]]] = []

    name = "recorder"
    version = "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.rows.append((step, dict(metrics)))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the module must not log hyperparameters itself (one writer per run)")


def _fit(
    tmp_path: Path, write_idx_dataset: Any, epochs: int = 2, **module_kw: Any
) -> tuple[OptimizerModule, Recorder]:
    write_idx_dataset(tmp_path, "mnist", n_train=200, n_test=50)
    L.seed_everything(0, verbose=False)
    data = MNISTDataModule("mnist", tmp_path, batch_size=32, holdout_size=20, download=False)
    module = OptimizerModule(**module_kw)
    logger = Recorder()
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule=data)
    return module, logger


def test_logs_the_contract_metrics_once_per_epoch_with_1_based_steps(
    tmp_path: Path, write_idx_dataset: Any
) -> None:
    module, logger = _fit(tmp_path, write_idx_dataset, epochs=3, optimizer="sgd", hparams={"lr": 0.01})
    assert [step for step, _ in logger.rows] == [1, 2, 3]
    for _, metrics in logger.rows:
        assert set(metrics) == {"train_loss", "val_loss", "val_acc", "epoch_seconds"}
        assert 0 <= metrics["val_acc"] <= 1 and metrics["epoch_seconds"] > 0 and metrics["train_loss"] > 0
    assert [row["val_acc"] for row in module.history[0]] == pytest.approx(
        [m["val_acc"] for _, m in logger.rows]
    )
    assert module.records[0].ended != "diverged"


def test_a_non_finite_loss_stops_training_as_diverged(tmp_path: Path, write_idx_dataset: Any) -> None:
    module, logger = _fit(tmp_path, write_idx_dataset, epochs=5, optimizer="sgd", hparams={"lr": 1e8})
    (record,) = module.records
    assert record.ended == "diverged" and "non-finite" in record.reason
    assert module.trainer.current_epoch < 4
    assert all(all(v == v for v in m.values()) for _, m in logger.rows)  # no NaN was logged


def test_the_optimizer_is_built_with_the_torch_keyword_arguments() -> None:
    module = OptimizerModule("momentum", hparams={"form": "ema", "momentum": 0.8, "lr": 0.05})
    params = module.spec.torch_kwargs(module.optimizer_hparams)
    assert params["dampening"] == params["momentum"] == 0.8 and params["lr"] == 0.05
    optimizer = module.configure_optimizers()
    assert optimizer.defaults["dampening"] == 0.8


def test_unknown_hyperparameter_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="rho"):
        OptimizerModule("adam", hparams={"rho": 0.9})


def test_any_network_trains_in_place_of_the_seed_cnn_with_a_spec_from_outside_the_registry(
    tmp_path: Path, write_idx_dataset: Any
) -> None:
    import torch
    from torch import nn

    from models.introspect import class_spec

    network = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    spec = class_spec("torch.optim:ASGD", torch.optim.ASGD)
    module, logger = _fit(tmp_path, write_idx_dataset, network=network, spec=spec, hparams={"lr": 0.05})

    assert module.model is network and isinstance(module.configure_optimizers(), torch.optim.ASGD)
    assert [step for step, _ in logger.rows] == [1, 2] and "network" not in module.hparams
