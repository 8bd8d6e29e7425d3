"""The pack trainer: K trials of one optimizer as one LightningModule, each with its own curve."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.cnn import Init, SeedCNN
from models.optimizers import get_spec
from models.pack.optim import PackedOptimizer, alone_state, joined_state
from models.pack.stack import Stack
from models.seeding import DROPOUT, derive, fold, seeded
from models.tally import Tally, best

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
        self._tally: Tally | None = None

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

    def alone(self, checkpoint: Mapping[str, Any], member: int) -> dict[str, Any]:
        """``member``'s part of this pack's Lightning checkpoint as the same trial trained alone saves it
        (:class:`models.module.OptimizerModule`, the registry's torch optimizer): its weights under
        ``model.``, its optimizer's state; the rest (loops, callbacks) as the pack's. So a trial lost with its
        pack resumes from its own checkpoint, alone or in another pack."""
        slot = self.slots.index(member)
        stacked = {key.removeprefix("stack."): value for key, value in checkpoint["state_dict"].items()}
        weights = self.stack.member_state(stacked, slot)
        (packed,) = checkpoint["optimizer_states"]
        stand_ins = [nn.Parameter(torch.zeros(1)) for _ in packed["param_groups"][0]["params"]]
        optimizer = self.spec.build(stand_ins, self.member_hparams[member])
        return {
            **checkpoint,
            "state_dict": {f"model.{name}": value for name, value in weights.items()},
            "optimizer_states": [alone_state(packed, slot, optimizer)],
        }

    def joined(self, checkpoints: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """This pack's Lightning checkpoint from its members' own (as :meth:`alone` writes them, or as each
        trial alone saved it), all of one epoch; loops and callbacks are the first member's."""
        weights = [
            {key.removeprefix("model."): value for key, value in c["state_dict"].items()} for c in checkpoints
        ]
        stacked = self.stack.stacked_state(weights)
        return {
            **checkpoints[0],
            "state_dict": {f"stack.{name}": value for name, value in stacked.items()},
            "optimizer_states": [joined_state([c["optimizer_states"][0] for c in checkpoints])],
        }

    def configure_optimizers(self) -> PackedOptimizer:
        return PackedOptimizer(self.stack.parameters(), self.spec.name, self.member_hparams)

    def on_train_epoch_start(self) -> None:
        self._tally = Tally(len(self.slots), self.device)

    def training_step(self, batch: PackBatch, batch_idx: int) -> Tensor | None:
        x, y, drawn_for = batch
        if not self.slots:
            return None
        if list(drawn_for) != self.slots:
            rows = [drawn_for.index(member) for member in self.slots]
            x, y = x[rows], y[rows]
        logits = self.stack(x, fold(self.dropout_keys, self.global_step))
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
        self._tally.train(losses, y.shape[1])
        return losses.sum()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.stack.settle_layouts()

    def on_train_batch_end(self, outputs: Any, batch: PackBatch, batch_idx: int) -> None:
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
        logits = self.stack(x, shared=True)
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
                continue
            record = self.records[member]
            record.history.append({"epoch": float(epoch), **row})
            record.best_val_acc = best(row["val_acc"], record.best_val_acc)
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
        self._tally.keep(rows)
        self.slots = [self.slots[slot] for slot in kept]
        if not self.slots:
            self.trainer.should_stop = True
