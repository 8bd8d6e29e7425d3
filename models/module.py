"""The LightningModule: the seed CNN, a registry optimizer, and the per-epoch metrics every run reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.cnn import Init, SeedCNN
from models.dropout import keyed
from models.optimizers import OptimizerSpec, get_spec
from models.seeding import DROPOUT, derive, fold, seeded
from models.tally import Tally, best

Batch = tuple[Tensor, Tensor]


class Diverged(RuntimeError):
    """Training produced a non-finite loss; the run is over, but it is a result, not a crash."""


class OptimizerModule(L.LightningModule):
    """Trains a classifier network, :class:`SeedCNN` unless ``network`` is given (any ``nn.Module`` mapping a
    batch of inputs to class logits), with one optimizer of :mod:`models.optimizers` (``spec``: an entry
    read from a class outside the registry, named ``optimizer``).

    Metrics are logged once per epoch with ``step`` = the 1-based epoch number (the seed table reports
    epochs 1, 5 and 10): ``train_loss`` (mean over the epoch's samples), ``val_loss``, ``val_acc`` and
    ``epoch_seconds`` (wall time of the epoch, validation included), all at the end of validation. Losses
    are accumulated on the device and read once per epoch, so the step never waits on a host sync.

    Randomness comes from ``seed`` alone (:mod:`models.seeding`): the network is initialised from its INIT
    key, and training step t draws its dropout masks from ``fold(DROPOUT key, t)``, as a pack member does.
    """

    def __init__(
        self,
        optimizer: str = "adam",
        preset: str = "torch",
        hparams: Mapping[str, Any] | None = None,
        init: Init = "torch",
        num_classes: int = 10,
        fused: bool = True,
        check_finite_every: int = 50,
        seed: int = 0,
        network: nn.Module | None = None,
        spec: OptimizerSpec | None = None,
    ) -> None:
        super().__init__()
        # the caller logs the contract's params, once; the network and spec are objects, saved otherwise
        self.save_hyperparameters(logger=False, ignore=["network", "spec"])
        self.spec = spec or get_spec(optimizer)
        self.optimizer_hparams = self.spec.resolve(preset, **dict(hparams or {}))
        if network is None:
            with seeded(seed):
                network = SeedCNN(num_classes=num_classes, init=init, fused=fused)
        self.model = network
        self.dropout_key = derive(seed, DROPOUT)
        self.check_finite_every = check_finite_every
        self.diverged: str | None = None
        self.best_val_acc = float("nan")
        self._tally: Tally | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        self._tally = Tally(1, self.device)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        x, y = batch
        with keyed(fold(self.dropout_key, self.global_step)):
            loss = F.cross_entropy(self(x), y)
        self._tally.train(loss, y.shape[0])
        if batch_idx % self.check_finite_every == 0:
            (reason,) = self._tally.diverged(self.current_epoch + 1, batch_idx)
            if reason:
                self._stop_diverged(reason)
                return None
        return loss

    def on_validation_epoch_start(self) -> None:
        if self._tally is None or self.trainer.sanity_checking:  # no training epoch under way
            self._tally = Tally(1, self.device)
        self._tally.start_validation()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self._tally.validate(
            F.cross_entropy(logits, y, reduction="sum"), (logits.argmax(1) == y).sum(), len(y)
        )

    def on_validation_epoch_end(self) -> None:
        """Log the whole epoch at once: validation closes each training epoch, so everything is known."""
        if self.trainer.sanity_checking or self.diverged or not self._tally.complete:
            return
        (reason,) = self._tally.diverged(self.current_epoch + 1)
        if reason:
            self._stop_diverged(reason)
            return
        (row,) = self._tally.rows()
        self.best_val_acc = best(row["val_acc"], self.best_val_acc)
        self.log_dict({**row, "step": float(self.current_epoch + 1)}, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.spec.build(self.parameters(), self.optimizer_hparams)

    def optimizer_params(self) -> dict[str, Any]:
        """What the optimizer was built with, as logged params: the resolved torch keyword arguments."""
        return self.spec.torch_kwargs(self.optimizer_hparams)

    def _stop_diverged(self, reason: str) -> None:
        self.diverged = reason
        self.trainer.should_stop = True
