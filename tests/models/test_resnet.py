"""The shipped residual CNN: deeper than the seed CNN, small, and trainable by the service's module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.resnet import ResNet


def test_logits_for_28x28_images_from_seven_3x3_convolutions():
    network = ResNet(num_classes=47)
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]

    assert network(torch.zeros(5, 1, 28, 28)).shape == (5, 47)
    assert len(convolutions) == 7 and sum(p.numel() for p in ResNet().parameters()) == 19_810
    assert len([m for m in ResNet(blocks=2).modules() if isinstance(m, nn.Conv2d)]) == 15


def test_one_step_lowers_the_loss_on_a_batch():
    torch.manual_seed(0)
    network, x, y = ResNet(dropout=0.1), torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(network(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    assert losses[-1] < losses[0]


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"blocks": 0}, {"dropout": 1.0}])
def test_impossible_shapes_are_refused(kwargs):
    with pytest.raises(ValueError, match="width, blocks must be >= 1"):
        ResNet(**kwargs)
