"""Process-level settings for fast CPU training, applied before training starts.

Every training step allocates and frees activations and gradients of several MiB. glibc serves such blocks
with fresh ``mmap`` calls and unmaps them on ``free``, so each step page-faults on every new block: on these
VMs, thousands of faults and a third of the step. Raising glibc's mmap and trim thresholds keeps those blocks
in the heap, where the next step reuses them (measured: 21 → 10 ms per step of the seed CNN).

Adam's first moment of a weight whose gradient stays zero (behind a dead ReLU unit) shrinks by beta1 each step
and after about 800 steps reaches float32's denormal range, where every CPU operation on it costs many times
a normal one. Flushing denormals to zero keeps the second epoch of a full MNIST-size run as fast as the first
(measured: a pack of 4 Adam trials, full Fashion-MNIST, 2 cores: epoch 2 took 105 s against 59 s for epoch 1;
flushed, 49 and 49 s). Values that small change no step: they are below anything an update adds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_HEAP_BLOCK_LIMIT = 512 * 2**20


def tune_allocator() -> bool:
    """Keep blocks up to 512 MiB in the heap (glibc only); returns whether the settings took effect."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is None:
        return False
    return all(mallopt(option, _HEAP_BLOCK_LIMIT) for option in (_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD))


@contextmanager
def denormals_flushed() -> Iterator[bool]:
    """float32 denormals flushed to zero on the CPU while it lasts (x86 with SSE3; yields whether the CPU
    supports it), then as before: a user's code run after training in the same process computes as it did."""
    import torch

    before = _flushing()
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(before)


def _flushing() -> bool:
    """Whether denormals are flushed now: torch has no getter, but a flushed denormal times one is zero."""
    import torch

    return torch.tensor([1e-40]).mul(1.0).item() == 0.0
