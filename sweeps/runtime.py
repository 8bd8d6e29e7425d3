"""Process-level settings for fast CPU training, applied once before any tensor is allocated.

Every training step allocates and frees activations and gradients of several MiB. glibc serves such blocks
with fresh ``mmap`` calls and returns them on ``free``, so each step page-faults on every new block (in a VM,
thousands of faults and a third of the step). Raising the mmap/trim thresholds keeps those blocks in the heap;
PyTorch's ``THP_MEM_ALLOC_ENABLE`` backs large tensors with huge pages where the kernel allows it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_HEAP_BLOCK_LIMIT = 512 * 2**20


def tune_allocator() -> bool:
    """Keep large blocks in the heap (glibc only); returns whether the settings took effect."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCK_LIMIT) and mallopt(_M_TRIM_THRESHOLD, _HEAP_BLOCK_LIMIT)
    )
