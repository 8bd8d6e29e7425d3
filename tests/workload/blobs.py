"""A data module of the user's: points in ``features`` dimensions drawn around one centre per class, seeded,
so that a tiny network learns it in a few epochs."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class Blobs(L.LightningDataModule):
    """``n`` training and ``n // 4`` validation points of ``classes`` Gaussian blobs; shuffled by a generator
    of its own, as a user's data module often is."""

    def __init__(
        self, batch_size: int = 32, n: int = 256, classes: int = 3, features: int = 8, seed: int = 0
    ) -> None:
        super().__init__()
        self.batch_size, self.n, self.features, self.seed = batch_size, n, features, seed
        self.num_classes = classes
        self.shuffle = torch.Generator().manual_seed(seed)
        self.train: TensorDataset | None = None
        self.val: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        draw = torch.Generator().manual_seed(self.seed)
        centres = torch.randn(self.num_classes, self.features, generator=draw) * 2

        def points(count: int) -> TensorDataset:
            labels = torch.randint(0, self.num_classes, (count,), generator=draw)
            return TensorDataset(centres[labels] + torch.randn(count, self.features, generator=draw), labels)

        self.train, self.val = points(self.n), points(self.n // 4)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True, generator=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=256)


class FullBatch(Blobs):
    """The same points in one batch per epoch: a data module whose constructor takes no batch size."""

    def __init__(self, n: int = 256, seed: int = 0) -> None:
        super().__init__(batch_size=n, n=n, seed=seed)
