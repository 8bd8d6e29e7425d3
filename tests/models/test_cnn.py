"""The seed CNN: architecture, Keras init, and the fused CPU path computing the textbook function."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models import dropout, fused
from models.cnn import SeedCNN


def _pair(seed: int = 0) -> tuple[SeedCNN, SeedCNN]:
    torch.manual_seed(seed)
    textbook = SeedCNN(fused=False)
    fast = SeedCNN(fused=True)
    fast.load_state_dict(textbook.state_dict())
    return textbook, fast


def _images(batch: int = 16, seed: int = 1) -> torch.Tensor:
    """Normalised-looking images with flat background rows, so pooling windows hold exact ties."""
    x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    x[:, :, :7] = -0.42
    x[:, :, :, 20:] = -0.42
    return x


def test_architecture_matches_the_seed_table() -> None:
    model = SeedCNN()
    assert sum(p.numel() for p in model.parameters()) == 1_387_594
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert SeedCNN(num_classes=47)(torch.zeros(2, 1, 28, 28)).shape == (2, 47)


def test_keras_init_is_glorot_uniform_with_zero_biases() -> None:
    torch.manual_seed(0)
    model = SeedCNN(init="keras")
    for layer, fan_in, fan_out in ((model.conv, 9, 32 * 9), (model.fc1, 5408, 256), (model.fc2, 256, 10)):
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert torch.all(layer.bias == 0)
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.9 * bound  # uniform over the whole range, not a narrower one
    assert SeedCNN(init="torch").fc1.bias.abs().sum() > 0


def test_unknown_init_is_refused() -> None:
    with pytest.raises(ValueError, match="model.init"):
        SeedCNN(init="xavier")  # type: ignore[arg-type]


def test_fused_path_equals_textbook_in_eval_mode() -> None:
    textbook, fast = _pair()
    textbook.eval()
    fast.eval()
    x = _images()
    torch.testing.assert_close(fast(x), textbook(x), rtol=1e-5, atol=1e-5)


def test_fused_training_step_equals_textbook_without_dropout() -> None:
    textbook, fast = _pair()
    for model in (textbook, fast):
        model.p_conv = model.p_fc = 0.0
    _same_step(textbook, fast, _images(), torch.arange(16) % 10, key=0)


def _same_step(textbook: SeedCNN, fast: SeedCNN, x: torch.Tensor, y: torch.Tensor, key: int) -> torch.Tensor:
    """Both models' loss and gradients on one batch, under one dropout key, agree; the fast one's loss."""
    grads = []
    for model in (textbook, fast):
        model.zero_grad()
        with dropout.keyed(torch.tensor(key)):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(grads[1][0], grads[0][0])
    for name, grad in grads[0][1].items():
        torch.testing.assert_close(grads[1][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    return grads[1][0]


def test_fused_block_equals_conv_relu_pool_dropout_with_the_same_mask() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 32, 3)
    x = _images(batch=8)
    keep = torch.rand(32, 8 * 13 * 13) >= 0.25
    scale = 1 / 0.75
    ours = fused.ConvPoolReLUDropout.apply(x, conv.weight, conv.bias, keep * scale)[0]
    mask_nchw = keep.view(32, 8, 13, 13).transpose(0, 1)
    ref = (F.max_pool2d(F.relu(conv(x)), 2) * mask_nchw * scale).flatten(1)
    torch.testing.assert_close(ours, ref)
    upstream = torch.randn_like(ref)
    ours_grads = torch.autograd.grad((ours * upstream).sum(), (conv.weight, conv.bias))
    ref_grads = torch.autograd.grad((ref * upstream).sum(), (conv.weight, conv.bias))
    for got, want in zip(ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_ties_route_the_gradient_to_one_corner_as_max_pool_does() -> None:
    """A constant image makes all four corners equal: the bias must get each pooled gradient once."""
    weight = torch.randn(32, 1, 3, 3)
    bias = torch.rand(32) + 0.1
    x = torch.zeros(2, 1, 28, 28)
    bias_ = bias.clone().requires_grad_()
    out = fused.ConvPoolReLUDropout.apply(x, weight.requires_grad_(), bias_, torch.ones(32, 2 * 169))[0]
    out.sum().backward()
    assert torch.allclose(bias_.grad, torch.full((32,), 2 * 169.0))


def test_fused_training_step_drops_the_same_units_as_textbook() -> None:
    """Both paths draw their masks in the same logical layout, so under one key they compute one function."""
    textbook, fast = _pair()
    x, y = _images(), torch.arange(16) % 10
    loss = _same_step(textbook, fast, x, y, key=12345)
    with dropout.keyed(torch.tensor(54321)):
        other = F.cross_entropy(fast(x), y).detach()
    assert not torch.equal(other, loss)


def test_dropout_preserves_the_mean_and_zeroes_a_fraction() -> None:
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    y = dropout.dropout(x, 0.5)
    assert abs(y.mean().item() - 1.0) < 0.01
    assert abs((y == 0).float().mean().item() - 0.5) < 0.01
    assert dropout.dropout(x, 0.0) is x
    assert dropout.dropout(x, 0.5, training=False) is x
    torch.manual_seed(0)
    assert torch.equal(dropout.dropout(x, 0.5), y)  # without a key in scope: the global generator


def test_bf16_autocast_trains_through_the_fused_path() -> None:
    model = SeedCNN()
    x, y = _images(4), torch.arange(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert model.conv.weight.grad.dtype == torch.float32
    assert torch.isfinite(model.conv.weight.grad).all() and model.conv.weight.grad.abs().sum() > 0
