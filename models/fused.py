"""Hand-fused CPU kernels for the seed CNN's first block, because it dominates the step on a CPU.

PyTorch's eager CPU kernels spend most of a seed-CNN step outside the matrix multiplies: NCHW max-pooling
(18 %), Bernoulli dropout (16 %) and ReLU over the full 26×26 map. ``torch.compile`` made it slower
on the 2-core development machine. This module computes exactly the same function with fewer, cheaper passes:

* the 3×3 convolution (bias included) is one matrix multiply over the 16 distinct stride-2 shifts of the
  image, producing the four 2×2 pooling corners as separate contiguous planes, so max-pooling is three
  element-wise maxima;
* ReLU runs after pooling (max and ReLU commute, so the forward pass is identical), on a quarter of the data;
* dropout masks are byte hashes (:mod:`models.dropout`), drawn in this kernel's channel-major order with the
  textbook layout's row numbers, so both paths drop the same units.

The backward pass routes each pooled gradient to the first maximal corner, as ``max_pool2d`` does.

Every function works on a leading pack dimension K (one network is K = 1), and the autograd function has a
``vmap`` rule, so ``torch.func.vmap`` over stacked networks runs one batched multiply for all K members
instead of falling back to the textbook layers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from models.dropout import keep_scaled, next_key

_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


def shifted_planes(images: Tensor, k: int) -> Tensor:
    """The (k+1)² stride-2 shifts of each image that k×k convolutions under a 2×2 pool read, plus a row of
    ones that carries the bias through the same matrix multiply: images [K, B, H, W] → [K, (k+1)² + 1, N]."""
    lead, batch, height, width = images.shape
    hp, wp = (height - k + 1) // 2, (width - k + 1) // 2
    planes = images.new_empty(lead, (k + 1) ** 2 + 1, batch, hp, wp)
    for r in range(k + 1):
        for c in range(k + 1):
            planes[:, r * (k + 1) + c].copy_(images[:, :, r : r + 2 * hp - 1 : 2, c : c + 2 * wp - 1 : 2])
    planes[:, -1] = 1
    return planes.view(lead, (k + 1) ** 2 + 1, batch * hp * wp)


def corner_weights(weight: Tensor, bias: Tensor) -> Tensor:
    """Scatter [K, C, 1, k, k] kernels and their [K, C] biases into [K, 4·C, (k+1)² + 1] matrices whose row
    block s convolves pooling corner s of :func:`shifted_planes`."""
    lead, channels, _, k, _ = weight.shape
    big = weight.new_zeros(lead, 4, channels, (k + 1) ** 2 + 1)
    grid = big[..., :-1].view(lead, 4, channels, k + 1, k + 1)
    for s, (a, b) in enumerate(_CORNERS):
        grid[:, s, :, a : a + k, b : b + k] = weight[:, :, 0]
    big[..., -1] = bias.unsqueeze(1)
    return big.view(lead, 4 * channels, -1)


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` batched over the pack; one network's as a plain matrix multiply (on one CPU thread a batched
    multiply of one took 10 % longer for both of this block's shapes)."""
    if a.shape[0] == b.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return a @ b


def _forward(x: Tensor, weight: Tensor, bias: Tensor, keep: Tensor | None) -> tuple[Tensor, ...]:
    """The packed block: x [K, B, 1, H, W] (or [B, 1, H, W], shared by all K), weight [K, C, 1, k, k],
    bias [K, C], keep [K, C, N] or None → ([K, B, C·hp·wp], planes, corners, pooled)."""
    lead, channels, _, k, _ = weight.shape
    images = x[:, :, 0] if x.dim() == 5 else x[None, :, 0]
    batch = images.shape[1]
    planes = shifted_planes(images, k)
    corners = _matmul(corner_weights(weight, bias), planes).view(lead, 4, channels, -1)
    pooled = torch.maximum(
        torch.maximum(corners[:, 0], corners[:, 1]), torch.maximum(corners[:, 2], corners[:, 3])
    )
    live = pooled.clamp_min(0)
    if keep is not None:
        live.mul_(keep)
    out = live.view(lead, channels, batch, -1).transpose(1, 2).reshape(lead, batch, -1)
    return out, planes, corners, pooled


def _backward(
    grad_out: Tensor, planes: Tensor, corners: Tensor, pooled: Tensor, keep: Tensor | None, k: int
) -> tuple[Tensor, Tensor]:
    """Gradients of the packed block's weight [K, C, 1, k, k] and bias [K, C]."""
    lead, channels, n = pooled.shape
    batch = grad_out.shape[1]
    rest = grad_out.view(lead, batch, channels, -1).transpose(1, 2).reshape(lead, channels, n)
    rest = rest * (pooled > 0)
    if keep is not None:
        rest.mul_(keep)
    routed = torch.empty_like(corners)
    first = torch.empty_like(pooled, dtype=torch.bool)
    for s in range(3):
        torch.mul(rest, torch.eq(corners[:, s], pooled, out=first), out=routed[:, s])
        rest.sub_(routed[:, s])
    routed[:, 3] = rest
    grad_big = _matmul(routed.view(lead, 4 * channels, n), planes.transpose(1, 2)).view(lead, 4, channels, -1)
    grid = grad_big[..., :-1].view(lead, 4, channels, k + 1, k + 1)
    grad_w = sum(grid[:, s, :, a : a + k, b : b + k] for s, (a, b) in enumerate(_CORNERS))
    return grad_w.unsqueeze(2), grad_big[..., -1].sum(1)


def _leading(t: Tensor, dim: int | None, size: int) -> Tensor:
    """A vmapped argument with its member dimension first (broadcast when it has none)."""
    return t.expand(size, *t.shape) if dim is None else t.movedim(dim, 0)


class ConvPoolReLUDropout(torch.autograd.Function):
    """``dropout(maxpool2(relu(conv2d(x, w, b))), keep)`` for single-channel images, output flattened NCHW;
    ``keep`` None (evaluation) skips the dropout multiply.

    One network: x [B, 1, H, W], weight [C, 1, k, k], bias [C], keep [C, N]. A pack (what the ``vmap`` rule
    passes): weight [K, C, 1, k, k], bias [K, C], keep [K, C, N], x [K, B, 1, H, W] or [B, 1, H, W] shared.
    The outputs after the first are saved intermediates, not for callers.
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor, keep: Tensor | None) -> tuple[Tensor, ...]:  # type: ignore[override]
        if weight.dim() == 5:
            return _forward(x, weight, bias, keep)
        one = _forward(x[None], weight[None], bias[None], None if keep is None else keep[None])
        return tuple(t[0] for t in one)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        _, weight, _, keep = inputs
        _, planes, corners, pooled = output
        ctx.mark_non_differentiable(planes, corners, pooled)
        ctx.set_materialize_grads(False)  # else autograd zero-fills a gradient for each intermediate
        ctx.save_for_backward(planes, corners, pooled, keep)
        ctx.single = weight.dim() == 4
        ctx.kernel = weight.shape[-1]
        # backward runs under the forward's autocast state, as torch.amp.custom_bwd would arrange
        ctx.autocast = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor, *_: Any) -> tuple[None, Tensor, Tensor, None]:  # type: ignore[override]
        saved = ctx.saved_tensors
        if ctx.single:
            grad_out, *saved = (None if t is None else t[None] for t in (grad_out, *saved))
        enabled, dtype = ctx.autocast
        with torch.autocast("cpu", dtype=dtype, enabled=enabled):
            grad_w, grad_b = _backward(grad_out, *saved, ctx.kernel)
        if ctx.single:
            return None, grad_w[0], grad_b[0], None
        return None, grad_w, grad_b, None

    @staticmethod
    def vmap(
        info: Any,
        in_dims: tuple[int | None, ...],
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        keep: Tensor | None,
    ) -> tuple[tuple[Tensor, ...], tuple[int | None, ...]]:
        x_dim, w_dim, b_dim, keep_dim = in_dims
        size = info.batch_size
        packed = ConvPoolReLUDropout.apply(
            x if x_dim is None else x.movedim(x_dim, 0),
            _leading(weight, w_dim, size),
            _leading(bias, b_dim, size),
            None if keep is None else _leading(keep, keep_dim, size),
        )
        out, planes, corners, pooled = packed
        if x_dim is None:
            return (out, planes[0], corners, pooled), (0, None, 0, 0)
        return packed, (0, 0, 0, 0)


def conv_pool_relu_dropout(x: Tensor, weight: Tensor, bias: Tensor, p: float, training: bool) -> Tensor:
    """The seed CNN's first block on CPU; its mask is drawn here, rows numbered as in NCHW (b·C + c)."""
    channels, k, batch = weight.shape[0], weight.shape[-1], x.shape[0]
    length = ((x.shape[-2] - k + 1) // 2) * ((x.shape[-1] - k + 1) // 2)
    keep = None
    if training and p > 0:
        rows = torch.arange(channels, device=x.device)[:, None] + channels * torch.arange(
            batch, device=x.device
        )
        keep = keep_scaled(next_key(), rows, length, p).view(channels, batch * length)
    return ConvPoolReLUDropout.apply(x, weight, bias, keep)[0]
