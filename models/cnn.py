"""The classic MNIST CNN of the seed comparison, as a plain ``nn.Module`` (no training logic here)."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from models import fused
from models.dropout import dropout

Init = Literal["torch", "keras"]


class SeedCNN(nn.Module):
    """Conv(1→32, 3×3) → ReLU → MaxPool(2) → Dropout(.25) → Flatten → Linear(5408→256) → ReLU → Dropout(.5)
    → Linear(256→10): 1,387,594 parameters for 28×28 inputs and 10 classes.

    On CPU the first block runs through :mod:`models.fused` (same function, a third of the time); elsewhere,
    or with ``fused=False``, through the textbook layers. Both read the same parameters and drop the same
    units: masks come from :mod:`models.dropout`, the conv mask's rows being (image, channel) in both.
    """

    def __init__(self, num_classes: int = 10, init: Init = "torch", fused: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 32, kernel_size=3)
        self.fc1 = nn.Linear(32 * 13 * 13, 256)
        self.fc2 = nn.Linear(256, num_classes)
        self.p_conv, self.p_fc = 0.25, 0.5
        self.fused = fused
        if init == "keras":
            self.apply(_glorot_uniform)
        elif init != "torch":
            raise ValueError(f"model.init must be 'torch' or 'keras', got {init!r}")

    def forward(self, x: Tensor) -> Tensor:
        if self.fused and x.device.type == "cpu":
            h = fused.conv_pool_relu_dropout(x, self.conv.weight, self.conv.bias, self.p_conv, self.training)
            h = F.relu(self.fc1(h))
            return self.fc2(dropout(h, self.p_fc, self.training))
        h = F.max_pool2d(F.relu(self.conv(x)), 2)
        h = dropout(h.flatten(2), self.p_conv, self.training).flatten(1)
        h = dropout(F.relu(self.fc1(h)), self.p_fc, self.training)
        return self.fc2(h)


def _glorot_uniform(module: nn.Module) -> None:
    """Keras' default initialisation (Glorot-uniform kernels, zero biases), which the seed table used."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
