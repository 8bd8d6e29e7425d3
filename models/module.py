"""The LightningModules: classifiers trained side by side (:class:`Classifiers`: one run, or a pack's members,
each its own epoch sums, rows and end) and the single run's :class:`OptimizerModule`, the seed CNN or any
network with a registry optimizer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.cnn import Init, SeedCNN
from models.dropout import keyed
from models.optimizers import OptimizerSpec, get_spec
from models.seeding import DROPOUT, derive, fold, seeded
from models.tally import Tally

Batch = tuple[Tensor, Tensor]
Ended = Literal["pruned", "diverged"]


class Diverged(RuntimeError):
    """Training produced a non-finite loss; the run is over, but it is a result, not a crash."""


@dataclass
class Record:
    """A member's results: one row per finished epoch, and how it ended early, if it did."""

    history: list[dict[str, float]] = field(default_factory=list)
    ended: Ended | None = None
    reason: str | None = None


class Classifiers(L.LightningModule):
    """``members`` classifiers trained side by side, each with its own curve: per member and epoch,
    ``history[k]`` gets ``train_loss`` (mean over the epoch's samples), ``val_loss``, ``val_acc`` and
    ``epoch_seconds`` (wall time of the epoch, validation included). Losses are accumulated on the device and
    read once per epoch (:class:`models.tally.Tally`), so a step never waits on a host sync.

    A member whose training loss turns non-finite (checked every ``check_finite_every`` batches, after the
    step, and at the epoch's end) ends as diverged; :meth:`stop` ends one as pruned (from a callback, at an
    epoch's end). Either way its slot is freed (:meth:`_keep`); training stops when no member is left.
    A subclass gives each step's loss (``training_step``, tallied) and ``logits`` [K, B, classes] for a
    validation batch shared by the members in their slots.
    """

    def __init__(self, members: int, check_finite_every: int) -> None:
        super().__init__()
        self.check_finite_every = check_finite_every
        self.records = [Record() for _ in range(members)]
        self.slots = list(range(members))
        self._tally: Tally | None = None

    @property
    def history(self) -> list[list[dict[str, float]]]:
        return [record.history for record in self.records]

    def logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def stop(self, member: int, reason: str) -> None:
        """End ``member`` as pruned and free its slot: during fit, at an epoch's end (a callback's
        ``on_validation_end`` or ``on_train_epoch_end``), when no step or validation is under way."""
        if member in self.slots:
            self._end({member: reason}, "pruned")

    def on_train_epoch_start(self) -> None:
        self._tally = Tally(len(self.slots), self.device)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """A member found diverged leaves after the step: its slot's rows are still in this step's tensors."""
        if self.slots and batch_idx % self.check_finite_every == 0:
            reasons = self._tally.diverged(self.current_epoch + 1, batch_idx)
            self._end({m: r for m, r in zip(self.slots, reasons, strict=True) if r}, "diverged")

    def on_validation_epoch_start(self) -> None:
        if self._tally is None or self.trainer.sanity_checking:  # no training epoch under way
            self._tally = Tally(len(self.slots), self.device)
        self._tally.start_validation()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        if not self.slots:
            return
        x, y = batch
        logits = self.logits(x)
        labels = y.expand(len(self.slots), -1)
        losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
        self._tally.validate(losses.view(labels.shape).sum(1), (logits.argmax(2) == labels).sum(1), len(y))

    def on_validation_epoch_end(self) -> None:
        """Close the epoch of every member still training: one row each, or diverged."""
        if self.trainer.sanity_checking or not self.slots or not self._tally.complete:
            return
        epoch = self.current_epoch + 1
        diverged = {}
        closed = zip(self.slots, self._tally.diverged(epoch), self._tally.rows(), strict=True)
        for member, reason, row in closed:
            if reason:
                diverged[member] = reason
            else:
                self.records[member].history.append({"epoch": float(epoch), **row})
        self._end(diverged, "diverged")

    def _end(self, reasons: Mapping[int, str], how: Ended) -> None:
        """End ``reasons``' members and free their slots; stop training when none is left."""
        if not reasons:
            return
        for member, reason in reasons.items():
            self.records[member].ended, self.records[member].reason = how, reason
        kept = [slot for slot, member in enumerate(self.slots) if member not in reasons]
        self.slots = [self.slots[slot] for slot in kept]
        if not self.slots:
            self.trainer.should_stop = True
            return
        rows = torch.tensor(kept, dtype=torch.long, device=self.device)
        self._tally.keep(rows)
        self._keep(rows)

    def _keep(self, rows: Tensor) -> None:
        """Only the members in slots ``rows`` train on: what a subclass stacks per member keeps their rows."""


class OptimizerModule(Classifiers):
    """Trains a classifier network, :class:`SeedCNN` unless ``network`` is given (any ``nn.Module`` mapping a
    batch of inputs to class logits), with one optimizer of :mod:`models.optimizers` (``spec``: an entry
    read from a class outside the registry, named ``optimizer``): one member, whose rows a single run
    reports with ``step`` = the 1-based epoch number (the seed table reports epochs 1, 5 and 10).

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
        super().__init__(1, check_finite_every)
        # the caller logs the contract's params, once; the network and spec are objects, saved otherwise
        self.save_hyperparameters(logger=False, ignore=["network", "spec"])
        self.spec = spec or get_spec(optimizer)
        self.optimizer_hparams = self.spec.resolve(preset, **dict(hparams or {}))
        if network is None:
            with seeded(seed):
                network = SeedCNN(num_classes=num_classes, init=init, fused=fused)
        self.model = network
        self.dropout_key = derive(seed, DROPOUT)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def logits(self, x: Tensor) -> Tensor:
        return self(x).unsqueeze(0)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        x, y = batch
        with keyed(fold(self.dropout_key, self.global_step)):
            loss = F.cross_entropy(self(x), y)
        self._tally.train(loss, y.shape[0])
        return loss

    def on_validation_epoch_end(self) -> None:
        """The epoch's row is also logged at once, step = the 1-based epoch, for any logger or callback."""
        super().on_validation_epoch_end()
        epoch = self.current_epoch + 1
        (history,) = self.history
        if history and history[-1]["epoch"] == epoch:
            row = {key: value for key, value in history[-1].items() if key != "epoch"}
            self.log_dict({**row, "step": float(epoch)}, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.spec.build(self.parameters(), self.optimizer_hparams)
