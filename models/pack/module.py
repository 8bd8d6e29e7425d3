"""The pack trainer: K trials of one optimizer as one LightningModule, each with its own curve."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.cnn import Init, SeedCNN
from models.optimizers import get_spec
from models.pack.optim import PackedOptimizer
from models.pack.stack import Stack
from models.seeding import DROPOUT, derive, fold, seeded

Batch = tuple[Tensor, Tensor]
PackBatch = tuple[Tensor, Tensor, tuple[int, ...]]
Ended = Literal["pruned", "diverged"]


@dataclass(frozen=True)
class Member:
    """One trial of a pack: what sets it apart from its pack-mates."""

    optimizer: str = "adam"
    preset: str = "torch"
    hparams: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    init: Init = "torch"


@dataclass
class Record:
    """A member's results: one row per finished epoch (the metrics :class:`models.module.OptimizerModule`
    logs), its best validation accuracy, and how it ended early, if it did."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_val_acc: float = float("nan")
    ended: Ended | None = None
    reason: str | None = None


class PackModule(L.LightningModule):
    """Trains ``members`` (one optimizer, any hyperparameters and seeds) as one stacked network.

    Each step: one forward of all members on their own batches ([K, B, ...] from :class:`PackData`), the
    members' mean losses summed (so each member's gradient is its own loss's) and one packed optimizer step.
    Per member and epoch, ``history[k]`` gets ``train_loss`` (mean over the epoch's samples), ``val_loss``,
    ``val_acc`` and ``epoch_seconds`` (the pack's epoch, validation included), as a single run logs them.

    A member whose training loss turns non-finite (checked every ``check_finite_every`` batches and at the
    epoch's end, as a single run does) ends as diverged; :meth:`stop` ends one as pruned (from a callback, at
    an epoch's end). Either way its slot is freed: its rows leave every stacked parameter, optimizer state
    and batch, so later steps cost less. Members share no arithmetic, so one member's NaN reaches no other.
    Training stops when no member is left.

    ``network(init)`` builds one member's network (default: :class:`SeedCNN` with ``num_classes``), under the
    member's seeded generator; networks with dropout must use :mod:`models.dropout`.
    """

    def __init__(
        self,
        members: Sequence[Member],
        network: Callable[[Init], nn.Module] | None = None,
        num_classes: int = 10,
        fused: bool = True,
        check_finite_every: int = 50,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        names = {member.optimizer for member in members}
        if len(names) != 1:
            raise ValueError(f"a pack trains one optimizer, got {sorted(names) or 'no members'}")
        self.spec = get_spec(names.pop())
        self.members = list(members)
        self.member_hparams = [self.spec.resolve(m.preset, **dict(m.hparams)) for m in members]
        build = network or (lambda init: SeedCNN(num_classes=num_classes, init=init, fused=fused))
        networks = []
        for member in members:
            with seeded(member.seed):
                networks.append(build(member.init))
        self.stack = Stack(networks)
        keys = torch.tensor([derive(m.seed, DROPOUT) for m in members])
        self.register_buffer("dropout_keys", keys, persistent=False)
        self.check_finite_every = check_finite_every
        self.records = [Record() for _ in members]
        self.slots = list(range(len(members)))

    @property
    def seeds(self) -> list[int]:
        return [member.seed for member in self.members]

    @property
    def history(self) -> list[list[dict[str, float]]]:
        return [record.history for record in self.records]

    @property
    def best_val_acc(self) -> list[float]:
        return [record.best_val_acc for record in self.records]

    def optimizer_params(self) -> list[dict[str, Any]]:
        """What each member's optimizer was built with, as a single run logs them: torch keyword arguments."""
        return [self.spec.torch_kwargs(hparams) for hparams in self.member_hparams]

    def stop(self, member: int, reason: str) -> None:
        """End ``member`` as pruned and free its slot: during fit, at an epoch's end (a callback's
        ``on_validation_end`` or ``on_train_epoch_end``), when no step or validation is under way."""
        if member in self.slots:
            self._end({member: reason}, "pruned")

    def configure_optimizers(self) -> PackedOptimizer:
        return PackedOptimizer(self.stack.parameters(), self.spec.name, self.member_hparams)

    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()
        self._train_loss = torch.zeros(len(self.slots), device=self.device)
        self._train_seen = 0

    def training_step(self, batch: PackBatch, batch_idx: int) -> None:
        x, y, drawn_for = batch
        if not self.slots:
            return
        if list(drawn_for) != self.slots:
            rows = [drawn_for.index(member) for member in self.slots]
            x, y = x[rows], y[rows]
        logits = self.stack(x, fold(self.dropout_keys, self.global_step))
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(losses.sum())
        self.stack.settle_layouts()
        optimizer.step()
        self._train_loss += losses.detach() * y.shape[1]
        self._train_seen += y.shape[1]
        if batch_idx % self.check_finite_every == 0:
            finite = torch.isfinite(self._train_loss).tolist()
            reason = f"non-finite training loss at epoch {self.current_epoch + 1}, batch {batch_idx}"
            self._end({m: reason for m, ok in zip(self.slots, finite, strict=True) if not ok}, "diverged")

    def on_validation_epoch_start(self) -> None:
        self._val_loss = torch.zeros(len(self.slots), device=self.device)
        self._val_correct = torch.zeros(len(self.slots), device=self.device, dtype=torch.long)
        self._val_seen = 0

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        if not self.slots:
            return
        x, y = batch
        logits = self.stack(x, shared=True)
        labels = y.expand(len(self.slots), -1)
        losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
        self._val_loss += losses.view(labels.shape).sum(1)
        self._val_correct += (logits.argmax(2) == labels).sum(1)
        self._val_seen += y.shape[0]

    def on_validation_epoch_end(self) -> None:
        """Close the epoch of every member still training: one row each, or diverged."""
        if self.trainer.sanity_checking or not self.slots or not self._val_seen or not self._train_seen:
            return
        seconds = time.perf_counter() - self._epoch_started
        train_loss = (self._train_loss / self._train_seen).tolist()
        val_loss = (self._val_loss / self._val_seen).tolist()
        val_acc = (self._val_correct / self._val_seen).tolist()
        epoch = self.current_epoch + 1
        diverged = {}
        for slot, member in enumerate(self.slots):
            if not math.isfinite(train_loss[slot]):
                diverged[member] = f"non-finite training loss in epoch {epoch}"
                continue
            record = self.records[member]
            record.history.append(
                {
                    "epoch": float(epoch),
                    "train_loss": train_loss[slot],
                    "val_loss": val_loss[slot],
                    "val_acc": val_acc[slot],
                    "epoch_seconds": seconds,
                }
            )
            best = record.best_val_acc
            record.best_val_acc = max(val_acc[slot], best) if math.isfinite(best) else val_acc[slot]
        self._end(diverged, "diverged")

    def _end(self, reasons: Mapping[int, str], how: Ended) -> None:
        """End ``reasons``' members and free their slots; stop training when none is left."""
        if not reasons:
            return
        for member, reason in reasons.items():
            self.records[member].ended, self.records[member].reason = how, reason
        kept = [slot for slot, member in enumerate(self.slots) if member not in reasons]
        rows = torch.tensor(kept, dtype=torch.long, device=self.device)
        self.stack.keep(rows)
        self.optimizers().optimizer.keep(rows)
        self.dropout_keys = self.dropout_keys[rows]
        self._train_loss = self._train_loss[rows]
        self.slots = [self.slots[slot] for slot in kept]
        if not self.slots:
            self.trainer.should_stop = True
