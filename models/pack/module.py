"""The pack trainer: K trials of one optimizer as one LightningModule, each with its own curve."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.cnn import Init, SeedCNN
from models.module import Classifiers
from models.optimizers import get_spec
from models.pack.optim import PackedOptimizer, alone_state, joined_state
from models.pack.stack import Stack
from models.seeding import DROPOUT, derive, fold, seeded

PackBatch = tuple[Tensor, Tensor, tuple[int, ...]]


@dataclass(frozen=True)
class Member:
    """One trial of a pack: what sets it apart from its pack-mates."""

    optimizer: str = "adam"
    preset: str = "torch"
    hparams: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    init: Init = "torch"


class PackModule(Classifiers):
    """Trains ``members`` (one optimizer, any hyperparameters and seeds) as one stacked network.

    Each step: one forward of all members on their own batches ([K, B, ...] from :class:`PackData`), the
    members' mean losses summed (so each member's gradient is its own loss's) and one packed optimizer step.
    Each member's rows and end are a single run's (:class:`models.module.Classifiers`); a member that ends
    leaves every stacked parameter, optimizer state and batch, so later steps cost less. Members share no
    arithmetic, so one member's NaN reaches no other.

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
        super().__init__(len(members), check_finite_every)
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

    @property
    def seeds(self) -> list[int]:
        return [member.seed for member in self.members]

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

    def logits(self, x: Tensor) -> Tensor:
        return self.stack(x, shared=True)

    def _keep(self, rows: Tensor) -> None:
        self.stack.keep(rows)
        self.optimizers().optimizer.keep(rows)
        self.dropout_keys = self.dropout_keys[rows]
