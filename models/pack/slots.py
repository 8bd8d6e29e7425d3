"""Slots of a pack: every stacked tensor holds one member per row of its first dimension. Freeing members
means keeping some rows, in the tensor's own memory layout (see :meth:`models.pack.stack.Stack.settle_layouts`
for why a stacked parameter may be stored transposed)."""

from __future__ import annotations

import torch
from torch import Tensor


def take(t: Tensor, rows: Tensor) -> Tensor:
    """The rows ``rows`` of ``t`` (members along dim 0), laid out in memory as ``t`` is."""
    order = sorted(range(t.dim()), key=lambda d: (-t.stride(d), d))
    if order[0] != 0 or not dense(t):
        return t.index_select(0, rows)
    inverse = sorted(range(t.dim()), key=order.__getitem__)
    return t.permute(order).index_select(0, rows).permute(inverse)


def relaid(t: Tensor, stride: tuple[int, ...]) -> Tensor:
    """A copy of ``t`` with the given strides (those of a dense tensor of its shape)."""
    return torch.empty_strided(t.shape, stride, dtype=t.dtype, device=t.device).copy_(t)


def dense(t: Tensor) -> bool:
    """Whether ``t`` is a permutation of a contiguous tensor (non-overlapping and dense)."""
    return t.permute(sorted(range(t.dim()), key=lambda d: (-t.stride(d), d))).is_contiguous()
