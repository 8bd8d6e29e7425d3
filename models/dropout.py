"""Dropout whose masks are a hash of (key, row, element), not draws from a generator's state.

Why not ``torch.Generator``: a pack trains K trials in one step, and K generators would mean K mask draws
per layer per step (a Python loop over trials, K kernel launches on a GPU); a hash of the trial's key
draws all K members' masks in one chain of element-wise kernels, and the same integers on CPU and CUDA.

The layout is *logical*: a mask is a set of rows of ``length`` elements, and element j of row r is kept iff
byte j % 4 of ``word(key, r·words + j // 4)``, ``words = ceil(length / 4)``, is ≥ 256·p (an exact Bernoulli
when 256·p is an integer; otherwise 31 bits of one word per element are compared with p·2³¹). A kernel that
stores the rows in another order (the fused CPU block's channel-major layout) passes the rows' logical
numbers and gets the same mask.

``word(key, i)`` is Wellons' lowbias32 integer hash of ``(i ^ high) · (low | 1)``, ``low`` and ``high`` the
halves of the 64-bit layer key: a keyed permutation of the indices, then a hash with full avalanche. 32-bit,
because CPUs vectorise 32-bit multiplies and not 64-bit ones: on the 2-core development VM one 64-bit
multiply over the seed CNN's conv mask (batch 64, 346 KB) took 100–300 µs against 9 µs in 32 bits. That
mask, scaled, costs less than ``randint`` bytes from the global generator did (one thread's CPU time, best
of 15 × 100 calls: ~0.3 ms against ~0.6 ms), because the hash runs in place and a single trial's
comparison is written straight into floats: turning a bool mask into floats was most of ``mask * scale``
(~0.45 ms of ~1 ms).

Keys: :func:`keyed` puts a step's key in scope; each dropout call inside draws the next layer key
``fold(step key, i)`` for its i-th call. Under ``torch.func.vmap`` the key is a per-member tensor and every
member gets its own masks. Without a key in scope a training-mode call draws one from the global generator,
as ``nn.Dropout`` would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.seeding import Key, fold


@dataclass
class _Scope:
    key: Key
    drawn: int = 0


_SCOPE: ContextVar[_Scope | None] = ContextVar("dropout_scope", default=None)


@contextmanager
def keyed(key: Key) -> Iterator[None]:
    """Dropout calls inside draw their masks from ``key`` (an int, or an int64 tensor: one per pack member
    under vmap)."""
    token = _SCOPE.set(_Scope(key))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def next_key() -> Key:
    """The key of the next dropout layer: ``fold(scope key, i)`` for the scope's i-th draw."""
    scope = _SCOPE.get()
    if scope is None:
        return int(torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64))
    scope.drawn += 1
    return fold(scope.key, scope.drawn - 1)


def _int32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


def _xorshift_(x: Tensor, bits: int) -> Tensor:
    """``x ^= x >>> bits`` in place, a logical shift of int32 bit patterns (torch's ``>>`` copies the sign
    bit); one scratch tensor, where out-of-place operators would allocate one per operation."""
    shifted = x >> bits
    return x.bitwise_xor_(shifted.bitwise_and_((1 << (32 - bits)) - 1))


def _lowbias32_(x: Tensor) -> Tensor:
    """Wellons' lowbias32, in place on ``x`` (a tensor its caller made for it)."""
    _xorshift_(x, 16).mul_(_int32(0x7FEB352D))
    _xorshift_(x, 15).mul_(_int32(0x846CA68B))
    return _xorshift_(x, 16)


def words(key: Key, index: Tensor) -> Tensor:
    """The int32 words ``index`` of the stream of the 64-bit ``key``."""
    if isinstance(key, Tensor):
        low, high = key.to(torch.int32), (key >> 32).to(torch.int32)
    else:
        low, high = _int32(key), _int32(key >> 32)
    return _lowbias32_((index ^ high).mul_(low | 1))


def keep_scaled(key: Key, rows: Tensor, length: int, p: float) -> Tensor:
    """Inverted dropout's multiplier for the logical row numbers ``rows``, [*rows.shape, length]: the
    keep-mask (P(keep) = 1 - p) scaled by 1 / (1 - p), in the default float dtype."""
    threshold = p * 256
    exact = threshold == int(threshold)
    per_row = -(-length // 4) if exact else length
    within = torch.arange(per_row, device=rows.device, dtype=torch.int32)
    stream = words(key, rows.to(torch.int32).unsqueeze(-1) * per_row + within)
    if exact:
        values, threshold = stream.view(torch.uint8)[..., :length], int(threshold)
    else:
        values, threshold = stream.bitwise_and_(0x7FFFFFFF), round(p * 2**31)
    scale = 1.0 / (1.0 - p)
    if isinstance(key, Tensor):  # a pack's keys, maybe under vmap, which has no batching rule for out=
        return (values >= threshold) * scale
    # the comparison written straight into floats: on CPU, bool → float was most of ``mask * scale`` (for the
    # seed CNN's conv mask, one thread: ~80 µs for this against ~440 µs)
    out = torch.empty(values.shape, dtype=torch.get_default_dtype(), device=values.device)
    return torch.ge(values, threshold, out=out).mul_(scale)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout of ``x`` with rows over all but the last dimension, masks from the key in scope."""
    if not training or p == 0:
        return x
    rows = torch.arange(x[..., 0].numel(), device=x.device).view(x.shape[:-1])
    return x * keep_scaled(next_key(), rows, x.shape[-1], p)


class Dropout(nn.Module):
    """``nn.Dropout`` with keyed masks: use it in networks that train in packs (``nn.Dropout`` draws from the
    global generator, which ``vmap`` refuses to share between members)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
