"""IDX files, the format of MNIST and its kin: read whole, or sized from the header alone.

Read here rather than through torchvision, which is optional: its registry build is CUDA-only, and on a
CPU-only torch installing it breaks ``import lightning``; it is only used to download.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

_IDX_DTYPES: Mapping[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (gzipped or not, told apart by content) into a tensor of its own dtype.

    Layout: two zero bytes, a dtype code, the number of dimensions, each dimension as a big-endian uint32,
    then the big-endian data. A file whose size disagrees with its header raises ValueError naming it, so a
    truncated download is reported instead of being trained on.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt gzip data ({err})") from err
    _check_magic(path, raw)
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header cut short ({len(raw)} bytes, {ndim} dimensions announced)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX header announces shape {list(shape)} ({expected} bytes) but the data is "
            f"{len(raw)} bytes; the file is truncated or corrupt"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("=")))


def idx_length(path: Path) -> int:
    """The number of items an IDX file announces, from its first 8 bytes (the data is not read)."""
    with open(path, "rb") as file:
        gzipped = file.read(2) == b"\x1f\x8b"
    with (gzip.open if gzipped else open)(path, "rb") as file:
        head = file.read(8)
    _check_magic(path, head, needed=8)
    return struct.unpack(">I", head[4:8])[0]


def _check_magic(path: Path, head: bytes, needed: int = 4) -> None:
    """Two zero bytes, a known element type and at least one dimension (in at least ``needed`` bytes)."""
    if len(head) < needed or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES or head[3] == 0:
        raise ValueError(f"{path}: not an IDX file (magic number {head[:4].hex() or 'missing'})")
