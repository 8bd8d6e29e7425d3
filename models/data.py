"""MNIST-family data sets, read once and held as tensors on the training device.

Why tensors and not a `DataLoader`: the reference CNN trains on 2 CPU cores, where per-sample indexing and
collation are a measurable share of an epoch (21.4 s/epoch with Lightning + DataLoader against 19.7 s on
resident tensors). A whole data set is small (60k 28x28 images: 47 MB as uint8, 188 MB as float32), so it is
read once, normalised once, moved to the device once, and every batch is a slice or an `index_select`.

Why an own IDX reader: torchvision is optional. Its registry build is CUDA-only, and on a CPU-only torch
installing it breaks `import lightning`, so reading the files must not need it; it is only used to download.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Literal

import lightning
import numpy as np
import torch

from models.datasets import IMAGE_SHAPE, SPLITS, DatasetInfo, Split, dataset_info

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's `dataset-fashion-mnist` package puts the gzipped IDX files (searched for fashion_mnist)."""

DEFAULT_DATA_DIR = Path(
    os.environ.get("SWEEPS_DATA_DIR", Path.home() / ".cache" / "optimizer-sweeps" / "data")
).expanduser()
"""Used when no data_dir is given, so that a download is found again by the next run
(override with the environment variable SWEEPS_DATA_DIR)."""


class DatasetNotFound(FileNotFoundError):
    """The IDX files of a data set are not on disk and cannot be downloaded here.

    The message lists every folder searched and how to get the files, because the usual cause is an
    environment without a working torchvision (CPU machines), where the fix is a copy or a system package.
    """


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


def _root(data_dir: Path | None) -> Path:
    return DEFAULT_DATA_DIR if data_dir is None else Path(data_dir).expanduser()


def _search(
    info: DatasetInfo, data_dir: Path | None
) -> tuple[dict[str, tuple[Path, Path]] | None, list[str]]:
    """Return the files of the first folder holding all of them (un-gzipped preferred), and what others lack.

    All files must come from one folder, so that train and test never mix two copies of a data set.
    """
    root = _root(data_dir)
    folders = [root, root / info.raw_folder]
    if info.debian_package is not None:
        folders.append(DEBIAN_FASHION_MNIST_DIR)
    searched = []
    for folder in folders:
        if not folder.is_dir():
            searched.append(f"  {folder}: no such folder")
            continue
        located = {
            base: next((folder / n for n in (base, f"{base}.gz") if (folder / n).is_file()), None)
            for pair in info.files.values()
            for base in pair
        }
        missing = [base for base, path in located.items() if path is None]
        if missing:
            searched.append(f"  {folder}: missing {', '.join(missing)}")
            continue
        found = {base: path for base, path in located.items() if path is not None}
        return {
            split: (found[images], found[labels]) for split, (images, labels) in info.files.items()
        }, searched
    return None, searched


def _not_found(info: DatasetInfo, data_dir: Path | None, searched: list[str], reason: str) -> DatasetNotFound:
    names = ", ".join(base for pair in info.files.values() for base in pair)
    ways = [
        "  - pip install 'optimizer-sweeps[vision]' (a torchvision build that works with your torch) and let"
        " the data module download them (download=True), or",
        f"  - copy the IDX files (gzipped or not) into {_root(data_dir)}",
    ]
    if info.debian_package is not None:
        ways.append(f"  - or, on Debian/Ubuntu: apt-get install {info.debian_package}")
    lines = [
        f"Dataset {info.name!r} not found: {reason}.",
        f"Looked for {names} (each optionally ending in .gz) in:",
        *searched,
        "To get them:",
        *ways,
    ]
    return DatasetNotFound("\n".join(lines))


def find_files(name: str, data_dir: Path | None) -> dict[str, tuple[Path, Path]]:
    """Locate the IDX files of `name` as {split: (images, labels)}.

    Searched in order: `data_dir` itself (files copied by hand), `data_dir/<TorchvisionClass>/raw` (where
    torchvision downloads), then the Debian package's folder where one exists. `data_dir=None` means
    DEFAULT_DATA_DIR. Raises DatasetNotFound saying what was missing where.
    """
    info = dataset_info(name)
    found, searched = _search(info, data_dir)
    if found is None:
        raise _not_found(info, data_dir, searched, "the files are missing")
    return found


def _torchvision_datasets(info: DatasetInfo, data_dir: Path | None) -> ModuleType:
    """Import torchvision.datasets, or explain why the files cannot be downloaded.

    Any exception counts, not only ImportError: a CUDA torchvision on a CPU torch fails at import with
    RuntimeError or OSError.
    """
    try:
        from torchvision import datasets
    except Exception as err:
        searched = _search(info, data_dir)[1]
        reason = (
            f"they are missing and torchvision is not usable to download them ({type(err).__name__}: {err})"
        )
        raise _not_found(info, data_dir, searched, reason) from err
    return datasets


def download(name: str, data_dir: Path) -> None:
    """Download `name` into `data_dir/<TorchvisionClass>/raw` with torchvision, or raise DatasetNotFound."""
    info = dataset_info(name)
    datasets = _torchvision_datasets(info, data_dir)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    try:
        getattr(datasets, info.torchvision_class)(
            root=str(data_dir), download=True, **info.torchvision_kwargs
        )
    except Exception as err:
        searched = _search(info, data_dir)[1]
        reason = f"torchvision could not download them ({type(err).__name__}: {err})"
        raise _not_found(info, data_dir, searched, reason) from err


def check_available(name: str, data_dir: Path | None, download: bool = True) -> None:
    """Fail before any work starts if `name` is neither on disk nor downloadable; reads no data."""
    info = dataset_info(name)
    found, searched = _search(info, data_dir)
    if found is not None:
        return
    if not download:
        raise _not_found(info, data_dir, searched, "the files are missing and download=False")
    _torchvision_datasets(info, data_dir)


def _read_split(info: DatasetInfo, images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != torch.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"{images_path}: expected uint8 images [N, 28, 28], got {images.dtype} {list(images.shape)}"
        )
    if labels.dim() != 1 or len(labels) != len(images) or len(labels) == 0:
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds labels of shape "
            f"{list(labels.shape)}"
        )
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= info.num_classes:
        raise ValueError(f"{labels_path}: labels outside 0..{info.num_classes - 1}")
    if info.transposed:
        images = images.transpose(1, 2).contiguous()
    return images, labels


def load_split(name: str, data_dir: Path | None, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one split as uint8 images [N, 28, 28] and int64 labels [N], checking that they agree."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    info = dataset_info(name)
    return _read_split(info, *find_files(name, data_dir)[split])


class TensorBatches:
    """An iterable of (x, y) batches cut from resident tensors, usable wherever Lightning takes a dataloader.

    Shuffled: one `randperm` per epoch (per `iter()`), drawn from `generator` on the generator's device and
    moved to the tensors' device, so a CPU generator gives the same order on CPU and GPU. Not shuffled:
    contiguous slices, i.e. views without a copy. The last partial batch is kept, as Keras does.
    Each process sees all data: there is no distributed sampler, trials are single-device.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None = None,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, size = len(self.x), self.batch_size
        if not self.shuffle:
            for start in range(0, n, size):
                yield self.x[start : start + size], self.y[start : start + size]
            return
        rng_device = self.generator.device if self.generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=self.generator, device=rng_device).to(self.x.device)
        # index_select on 2-D rows has a fast kernel; on [N, 1, 28, 28] it measured ~30x slower on CPU.
        rows, sample_shape = self.x.reshape(n, -1), self.x.shape[1:]
        for start in range(0, n, size):
            index = order[start : start + size]
            yield rows.index_select(0, index).view(-1, *sample_shape), self.y.index_select(0, index)


def _positive(field_name: str, value: object, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field_name} must be a positive integer{alternative}, got {value!r}")


class MNISTDataModule(lightning.LightningDataModule):
    """An MNIST-family data set as normalised float32 tensors [N, 1, 28, 28] on the training device.

    Arguments are checked in `__init__` without I/O (against the published split sizes), so that a bad config
    fails before anything is created; sizes are checked again against the files in `setup`.
    `save_hyperparameters` is not called: the sweep logs params itself, one writer per run.
    """

    def __init__(
        self,
        name: str = "fashion_mnist",
        data_dir: str | Path | None = None,
        batch_size: int | Literal["full"] = 64,
        train_subset: int | None = None,
        val_split: Literal["test", "holdout"] = "test",
        holdout_size: int = 10_000,
        seed: int = 0,
        download: bool = True,
        eval_batch_size: int = 2000,
    ) -> None:
        super().__init__()
        self.info = dataset_info(name)
        if batch_size != "full":
            _positive("batch_size", batch_size, " or 'full'")
        if val_split not in ("test", "holdout"):
            raise ValueError(f"val_split must be 'test' or 'holdout', got {val_split!r}")
        _positive("holdout_size", holdout_size)
        _positive("eval_batch_size", eval_batch_size)
        if train_subset is not None:
            _positive("train_subset", train_subset)
        self.name = name
        self.data_dir = None if data_dir is None else Path(data_dir)
        self.batch_size = batch_size
        self.train_subset = train_subset
        self.val_split = val_split
        self.holdout_size = holdout_size
        self.seed = seed
        self.download = download
        self.eval_batch_size = eval_batch_size
        self._check_sizes(self.info.split_sizes["train"])
        self._train: tuple[torch.Tensor, torch.Tensor] | None = None
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None
        self._generator = torch.Generator()

    def _check_sizes(self, train_images: int) -> None:
        """Reject a hold-out or subset the train split (of `train_images` images) cannot provide."""
        available = train_images
        if self.val_split == "holdout":
            if self.holdout_size >= train_images:
                raise ValueError(
                    f"holdout_size={self.holdout_size} leaves no training images: the {self.name} train "
                    f"split has {train_images}"
                )
            available -= self.holdout_size
        if self.train_subset is not None and self.train_subset > available:
            raise ValueError(
                f"train_subset={self.train_subset} is larger than the {available} training images of "
                f"{self.name}"
                + (f" left after a hold-out of {self.holdout_size}" if self.val_split == "holdout" else "")
            )

    def check_files(self) -> None:
        """Check the subset and hold-out against the train split on disk, from its header alone."""
        self._check_sizes(idx_length(find_files(self.name, self.data_dir)["train"][0]))

    def prepare_data(self) -> None:
        """Download if the files are not found (the only place that downloads, as Lightning expects)."""
        try:
            find_files(self.name, self.data_dir)
        except DatasetNotFound:
            if not self.download:
                raise
            download(self.name, _root(self.data_dir))
            find_files(self.name, self.data_dir)

    def setup(self, stage: str | None = None) -> None:
        """Read, split and normalise once; on later calls only follow the trainer to its device."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self._train is None or self._val is None:
            self._load(device)
        elif self._train[0].device != device:
            self._train = (self._train[0].to(device), self._train[1].to(device))
            self._val = (self._val[0].to(device), self._val[1].to(device))

    def _load(self, device: torch.device) -> None:
        """Split off the hold-out, then the subset, from one generator seeded once; later epochs continue it.

        The normalisation statistics are those of the training images actually used, so nothing of the
        validation images leaks into training.
        """
        files = find_files(self.name, self.data_dir)
        x, y = _read_split(self.info, *files["train"])
        self._check_sizes(len(x))
        self._generator.manual_seed(self.seed)
        if self.val_split == "holdout":
            order = torch.randperm(len(x), generator=self._generator)
            held, kept = order[: self.holdout_size], order[self.holdout_size :]
            x_val, y_val = x[held], y[held]
            x, y = x[kept], y[kept]
        else:
            x_val, y_val = _read_split(self.info, *files["test"])
        if self.train_subset is not None:
            keep = torch.randperm(len(x), generator=self._generator)[: self.train_subset]
            x, y = x[keep], y[keep]
        x_train = x.to(device).float().div_(255)
        mean, std = x_train.mean(), x_train.std()
        x_train.sub_(mean).div_(std)
        x_val_f = x_val.to(device).float().div_(255).sub_(mean).div_(std)
        self._train = (x_train.unsqueeze(1), y.to(device))
        self._val = (x_val_f.unsqueeze(1), y_val.to(device))

    def _loaded(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        if self._train is None or self._val is None:
            raise RuntimeError("MNISTDataModule: call setup() first")
        return self._train, self._val

    @property
    def _train_batch_size(self) -> int:
        return self.train_size if self.batch_size == "full" else self.batch_size

    def train_dataloader(self) -> TensorBatches:
        """Shuffled each epoch by the generator seeded in setup, so a run's epoch orders are reproducible."""
        x, y = self._loaded()[0]
        return TensorBatches(x, y, self._train_batch_size, shuffle=True, generator=self._generator)

    def val_dataloader(self) -> TensorBatches:
        x, y = self._loaded()[1]
        return TensorBatches(x, y, self.eval_batch_size, shuffle=False)

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def train_size(self) -> int:
        return len(self._loaded()[0][0])

    @property
    def val_size(self) -> int:
        return len(self._loaded()[1][0])

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_size / self._train_batch_size)
