"""A small residual CNN for 28×28 images: the shipped example of a network that is not the seed CNN, named in
a config as ``model.target: models.resnet:ResNet`` and wrapped by the service like any user network.

Deeper than the seed CNN (seven 3×3 convolutions against one) and far smaller (19,810 parameters
at the default width against 1,387,594): batch-normalised residual blocks in three stages of 8, 16 and 32
channels, the last two halving the resolution, then global average pooling, dropout and one linear layer.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Block(nn.Module):
    """Two 3×3 convolutions with batch norm, added to the input (a strided 1×1 projection where the shape
    changes)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels_out),
            )

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """``width`` channels in the first stage (doubled in each of the next two), ``blocks`` residual blocks per
    stage, ``dropout`` before the classifier; ``num_classes`` logits out of one-channel images."""

    def __init__(self, num_classes: int = 10, width: int = 8, blocks: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if width < 1 or blocks < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"width, blocks must be >= 1 and dropout in [0, 1), got {width}, {blocks}, {dropout}"
            )
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        stages, channels = [], width
        for stage in range(3):
            out = width * 2**stage
            for block in range(blocks):
                stages.append(Block(channels, out, stride=2 if stage and not block else 1))
                channels = out
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stages(self.stem(x))
        return self.head(self.dropout(h.mean(dim=(2, 3))))
