"""Finding a data set's IDX files on disk (a folder of the user's, torchvision's layout, Debian's package) or
downloading them, and reading a split as checked tensors."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import torch

from models.data.catalogue import IMAGE_SHAPE, SPLITS, DatasetInfo, Split, dataset_info
from models.data.idx import read_idx

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


def data_root(data_dir: Path | None) -> Path:
    return DEFAULT_DATA_DIR if data_dir is None else Path(data_dir).expanduser()


def _search(
    info: DatasetInfo, data_dir: Path | None
) -> tuple[dict[str, tuple[Path, Path]] | None, list[str]]:
    """Return the files of the first folder holding all of them (un-gzipped preferred), and what others lack.

    All files must come from one folder, so that train and test never mix two copies of a data set.
    """
    root = data_root(data_dir)
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


def _not_found(info: DatasetInfo, data_dir: Path | None, reason: str) -> DatasetNotFound:
    names = ", ".join(base for pair in info.files.values() for base in pair)
    ways = [
        "  - pip install 'optimizer-sweeps[vision]' (a torchvision build that works with your torch) and let"
        " the data module download them (download=True), or",
        f"  - copy the IDX files (gzipped or not) into {data_root(data_dir)}",
    ]
    if info.debian_package is not None:
        ways.append(f"  - or, on Debian/Ubuntu: apt-get install {info.debian_package}")
    lines = [
        f"Dataset {info.name!r} not found: {reason}.",
        f"Looked for {names} (each optionally ending in .gz) in:",
        *_search(info, data_dir)[1],
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
    found = _search(info, data_dir)[0]
    if found is None:
        raise _not_found(info, data_dir, "the files are missing")
    return found


def _torchvision_datasets(info: DatasetInfo, data_dir: Path | None) -> ModuleType:
    """Import torchvision.datasets, or explain why the files cannot be downloaded.

    Any exception counts, not only ImportError: a CUDA torchvision on a CPU torch fails at import with
    RuntimeError or OSError.
    """
    try:
        from torchvision import datasets
    except Exception as err:
        reason = (
            f"they are missing and torchvision is not usable to download them ({type(err).__name__}: {err})"
        )
        raise _not_found(info, data_dir, reason) from err
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
        reason = f"torchvision could not download them ({type(err).__name__}: {err})"
        raise _not_found(info, data_dir, reason) from err


def check_available(name: str, data_dir: Path | None, download: bool = True) -> None:
    """Fail before any work starts if `name` is neither on disk nor downloadable; reads no data."""
    info = dataset_info(name)
    if _search(info, data_dir)[0] is not None:
        return
    if not download:
        raise _not_found(info, data_dir, "the files are missing and download=False")
    _torchvision_datasets(info, data_dir)


def read_split(info: DatasetInfo, images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
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
    return read_split(info, *find_files(name, data_dir)[split])
