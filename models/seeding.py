"""Every random draw of a trial derives from its seed alone, so a trial's curve is the same whether it trains
alone or in a pack, on CPU or on CUDA.

A trial's ``seed`` gives three independent streams:

* **data order**: ``torch.Generator().manual_seed(seed)`` (:func:`order_generator`), one ``randperm`` per
  epoch, on the CPU so that every device sees the same order;
* **initialisation**: the network is built while the CPU's default generator is seeded with
  ``derive(seed, INIT)`` and restored afterwards (:func:`seeded`), because module constructors draw from the
  default generator and take no generator argument;
* **dropout**: the key ``derive(seed, DROPOUT)``; masks are a counter-based hash of (key, step, layer,
  element) (:mod:`models.dropout`), so a pack draws every member's masks in one kernel chain.

The data split (hold-out, subset) is not the trial's: it comes from the data module's ``split_seed``, so every
trial of a sweep validates on the same images.

``derive`` and :mod:`models.dropout` share SplitMix64 (Steele, Lea & Flood, OOPSLA 2014): its n-th output
from a state s is ``mix(s + n * GOLDEN)``, an avalanching finaliser. A key is a Python int (one trial: no
tensor op, no device transfer per step) or an int64 tensor (a pack: one key per member, on the device);
the same expressions serve both, Python ints wrapped modulo 2^64 where tensors wrap by themselves (on CPU
and CUDA alike), so a key's value is the same in either form, up to the sign of its int64 reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

INIT = 1
DROPOUT = 2

Key = int | Tensor

_MASK = 2**64 - 1
GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB


def int64(value: int) -> int:
    """``value`` modulo 2^64 as a signed 64-bit integer, the form torch's int64 tensors hold."""
    return (value + 2**63) % 2**64 - 2**63


def _wrap(x: Key) -> Key:
    return x if isinstance(x, Tensor) else x & _MASK


def _shr(x: Key, bits: int) -> Key:
    """Logical right shift of 64-bit patterns (torch's ``>>`` is arithmetic: it copies the sign bit)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix(x: Key) -> Key:
    """SplitMix64's finaliser: every output bit depends on every input bit."""
    x = _wrap((x ^ _shr(x, 30)) * int64(_C1))
    x = _wrap((x ^ _shr(x, 27)) * int64(_C2))
    return x ^ _shr(x, 31)


def fold(key: Key, n: int | Tensor) -> Key:
    """The n-th SplitMix64 output of state ``key``: a new, independent key per (key, n)."""
    step = n * int64(GOLDEN) if isinstance(n, Tensor) else int64(n * GOLDEN)
    return mix(_wrap(key + step))


def derive(seed: int, purpose: int) -> int:
    """The key of one purpose (``INIT``, ``DROPOUT``) of a trial's ``seed``, as a non-negative int."""
    return fold(seed & _MASK, purpose) & (2**63 - 1)


def order_generator(seed: int) -> torch.Generator:
    """The CPU generator whose ``randperm`` per epoch gives a trial's data order."""
    return torch.Generator().manual_seed(seed)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build a network inside: its initialisation draws from the CPU generator seeded by ``seed``'s INIT key,
    and the process's generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive(seed, INIT))
        yield
