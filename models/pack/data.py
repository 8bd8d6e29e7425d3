"""A pack's batches: one resident copy of the data set, each member its own epoch order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import lightning as L
import torch
from torch import Tensor

from models.data.module import MNISTDataModule, TensorBatches
from models.seeding import order_generator


class Roster(Protocol):
    """Who is in a pack: every member's seed, and the members still training, in slot order."""

    @property
    def seeds(self) -> Sequence[int]: ...

    @property
    def slots(self) -> Sequence[int]: ...


class PackBatches(TensorBatches):
    """Training batches for the members in the roster's slots: images [K, B, ...], labels [K, B] and the K
    members' numbers (a tuple, so that it stays on the host).

    Member m's rows come in the order of one ``randperm`` per epoch from ``order_generator(seeds[m])``,
    exactly the order :class:`models.data.module.TensorBatches` gives a single run with that seed. A member
    freed mid-epoch leaves the batches drawn after that; Lightning may have fetched one batch ahead, so the
    module drops rows of members it no longer trains.
    """

    def __init__(
        self, x: Tensor, y: Tensor, batch_size: int, roster: Roster, generators: Sequence[torch.Generator]
    ) -> None:
        super().__init__(x, y, batch_size, shuffle=True)
        self.roster, self.generators = roster, generators

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, tuple[int, ...]]]:
        n, size = len(self.x), self.batch_size
        members = list(self.roster.slots)
        if not members:
            return
        orders = torch.stack([torch.randperm(n, generator=self.generators[m]) for m in members])
        orders = orders.to(self.x.device)
        rows, sample_shape = self.x.reshape(n, -1), self.x.shape[1:]
        for start in range(0, n, size):
            if list(self.roster.slots) != members:
                kept = [members.index(m) for m in self.roster.slots]
                orders, members = orders[kept], list(self.roster.slots)
            if not members:
                return
            index = orders[:, start : start + size].reshape(-1)
            x = rows.index_select(0, index).view(len(members), -1, *sample_shape)
            yield x, self.y.index_select(0, index).view(len(members), -1), tuple(members)


class PackData(L.LightningDataModule):
    """An :class:`MNISTDataModule` serving a pack: one copy of its resident tensors, its validation batches
    (the same for every member) and :class:`PackBatches` for training, each member's order drawn from its
    own generator in ``orders``."""

    def __init__(self, data: MNISTDataModule, roster: Roster) -> None:
        super().__init__()
        self.data = data
        self.roster = roster
        self.orders = [order_generator(seed) for seed in roster.seeds]

    def prepare_data(self) -> None:
        self.data.prepare_data()

    def setup(self, stage: str) -> None:
        self.data.trainer = self.trainer  # so that the data module moves its tensors to the trainer's device
        self.data.setup(stage)

    def train_dataloader(self) -> PackBatches:
        single = self.data.train_dataloader()
        return PackBatches(single.x, single.y, single.batch_size, self.roster, self.orders)

    def val_dataloader(self) -> TensorBatches:
        return self.data.val_dataloader()
