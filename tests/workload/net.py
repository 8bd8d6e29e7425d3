"""The user's networks: a classifier the service wraps (``MLP``), and a LightningModule for another task
(``AutoEncoder``: reconstruction, no labels, no accuracy) that brings its own metrics and optimizer."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    """``features`` (flattened) → ``hidden`` → ``num_classes`` logits, with dropout."""

    def __init__(self, num_classes: int, features: int = 8, hidden: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def mlp(num_classes: int, width: int = 16) -> nn.Module:
    """A factory instead of a class: what it returns is wrapped the same way."""
    return MLP(num_classes, hidden=width)


class AutoEncoder(L.LightningModule):
    """Squeezes each point through ``bottleneck`` numbers and back; logs ``train_mse`` and ``val_mse``."""

    def __init__(self, features: int = 8, bottleneck: int = 2) -> None:
        super().__init__()
        self.encode, self.decode = nn.Linear(features, bottleneck), nn.Linear(bottleneck, features)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(torch.tanh(self.encode(x)))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = F.mse_loss(self(batch[0]), batch[0])
        self.log("train_mse", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val_mse", F.mse_loss(self(batch[0]), batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """What the module would train with alone; the service replaces it with the config's optimizer."""
        return torch.optim.SGD(self.parameters(), lr=100.0)
