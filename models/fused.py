"""Hand-fused CPU kernels for the seed CNN's first block, because it dominates the step on a CPU.

PyTorch's eager CPU kernels spend most of a seed-CNN step outside the matrix multiplies: NCHW max-pooling
(18 %), Bernoulli dropout (16 %) and ReLU over the full 26×26 map. ``torch.compile`` made it slower
on the 2-core development machine. This module computes exactly the same function with fewer, cheaper passes:

* the 3×3 convolution (bias included) is one matrix multiply over the 16 distinct stride-2 shifts of the
  image, producing the four 2×2 pooling corners as separate contiguous planes, so max-pooling is three
  element-wise maxima;
* ReLU runs after pooling (max and ReLU commute, so the forward pass is identical), on a quarter of the data;
* dropout masks come from raw random bytes (exact Bernoulli when ``p·256`` is an integer), far cheaper than
  ``bernoulli_``.

The backward pass routes each pooled gradient to the first maximal corner, as ``max_pool2d`` does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


def keep_mask(shape: tuple[int, ...], p: float, device: torch.device | str = "cpu") -> Tensor:
    """Boolean keep-mask with P(keep) = 1 - p, drawn from the global (seeded) torch generator."""
    n = math.prod(shape)
    threshold = p * 256
    if threshold == int(threshold):
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=device)
        return words.view(torch.uint8)[:n].view(shape) >= int(threshold)
    return torch.rand(shape, device=device) >= p


def keep_scaled(shape: tuple[int, ...], p: float, device: torch.device | str = "cpu") -> Tensor:
    """Inverted dropout's multiplier: the keep-mask scaled by 1 / (1 - p)."""
    return keep_mask(shape, p, device) * (1.0 / (1.0 - p))


def dropout(x: Tensor, p: float) -> Tensor:
    """Inverted dropout with the cheap byte mask; same distribution as ``F.dropout(x, p, training=True)``."""
    if p == 0:
        return x
    return x * keep_scaled(tuple(x.shape), p, x.device)


def shifted_planes(images: Tensor, k: int) -> Tensor:
    """The (k+1)² stride-2 shifts of each image that k×k convolutions under a 2×2 pool read, plus a row of
    ones that carries the bias through the same matrix multiply: [(k+1)² + 1, N]."""
    batch, height, width = images.shape
    hp, wp = (height - k + 1) // 2, (width - k + 1) // 2
    planes = images.new_empty((k + 1) ** 2 + 1, batch, hp, wp)
    for r in range(k + 1):
        for c in range(k + 1):
            planes[r * (k + 1) + c].copy_(images[:, r : r + 2 * hp - 1 : 2, c : c + 2 * wp - 1 : 2])
    planes[-1] = 1
    return planes.view((k + 1) ** 2 + 1, batch * hp * wp)


def corner_weights(weight: Tensor, bias: Tensor) -> Tensor:
    """Scatter a [C, 1, k, k] kernel and its bias into one [4·C, (k+1)² + 1] matrix whose row block s
    convolves pooling corner s of :func:`shifted_planes`."""
    channels, _, k, _ = weight.shape
    big = weight.new_zeros(4, channels, (k + 1) ** 2 + 1)
    grid = big[:, :, :-1].view(4, channels, k + 1, k + 1)
    for s, (a, b) in enumerate(_CORNERS):
        grid[s, :, a : a + k, b : b + k] = weight[:, 0]
    big[:, :, -1] = bias
    return big.view(4 * channels, -1)


class ConvPoolReLUDropout(torch.autograd.Function):
    """``dropout(maxpool2(relu(conv2d(x, w, b))), keep)`` for single-channel images, output flattened NCHW;
    ``keep`` None (evaluation) skips the dropout multiply."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, keep: Tensor | None) -> Tensor:  # type: ignore[override]
        channels, _, k, _ = weight.shape
        batch = x.shape[0]
        planes = shifted_planes(x[:, 0], k)
        corners = (corner_weights(weight, bias) @ planes).view(4, channels, -1)
        pooled = torch.maximum(torch.maximum(corners[0], corners[1]), torch.maximum(corners[2], corners[3]))
        ctx.save_for_backward(planes, corners, pooled, keep)
        ctx.kernel = k
        live = pooled.clamp_min(0)
        if keep is not None:
            live.mul_(keep)
        return live.view(channels, batch, -1).transpose(0, 1).reshape(batch, -1)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_out: Tensor) -> tuple[None, Tensor, Tensor, None]:  # type: ignore[override]
        planes, corners, pooled, keep = ctx.saved_tensors
        k = ctx.kernel
        channels, n = pooled.shape
        batch = grad_out.shape[0]
        rest = grad_out.view(batch, channels, -1).transpose(0, 1).reshape(channels, n) * (pooled > 0)
        if keep is not None:
            rest.mul_(keep)
        routed = torch.empty_like(corners)
        first = torch.empty_like(pooled, dtype=torch.bool)
        for s in range(3):
            torch.mul(rest, torch.eq(corners[s], pooled, out=first), out=routed[s])
            rest.sub_(routed[s])
        routed[3] = rest
        grad_big = (routed.view(4 * channels, n) @ planes.t()).view(4, channels, -1)
        grid = grad_big[:, :, :-1].view(4, channels, k + 1, k + 1)
        grad_w = sum(grid[s, :, a : a + k, b : b + k] for s, (a, b) in enumerate(_CORNERS))
        return None, grad_w.unsqueeze(1), grad_big[:, :, -1].sum(0), None


def conv_pool_relu_dropout(x: Tensor, weight: Tensor, bias: Tensor, p: float, training: bool) -> Tensor:
    """The seed CNN's first block on CPU; ``keep`` is drawn here so callers need not know the layout."""
    channels = weight.shape[0]
    k = weight.shape[-1]
    n = x.shape[0] * ((x.shape[-2] - k + 1) // 2) * ((x.shape[-1] - k + 1) // 2)
    keep = keep_scaled((channels, n), p, x.device) if training and p > 0 else None
    return ConvPoolReLUDropout.apply(x, weight, bias, keep)
