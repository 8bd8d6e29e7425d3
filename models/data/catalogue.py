"""The catalogue of MNIST-family data sets: names, files, sizes. Plain Python, so that validating a config
does not pay for importing torch and Lightning."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from models.registry import lookup

Split = Literal["train", "test"]
Scaling = Literal["unit", "standard"]
"""How pixels become inputs: ``unit`` divides by 255 (what the classic Keras comparison did); ``standard``
then subtracts the training images' mean and divides by their std."""
SPLITS: tuple[Split, ...] = ("train", "test")
IMAGE_SHAPE = (28, 28)


@dataclass(frozen=True)
class DatasetInfo:
    """What is needed to find, read and download one data set without torchvision."""

    name: str
    num_classes: int
    torchvision_class: str
    """Class in `torchvision.datasets`; torchvision also names its folder ROOT/<class>/raw/ after it."""
    files: Mapping[str, tuple[str, str]]
    """Split -> (images, labels) file names, without the optional `.gz`."""
    split_sizes: Mapping[str, int]
    """Sizes of the published splits: lets the data module reject impossible sizes before any I/O."""
    torchvision_kwargs: Mapping[str, str] = field(default_factory=dict)
    transposed: bool = False
    """EMNIST stores each image transposed; reading it upright keeps all data sets in one orientation."""
    debian_package: str | None = None

    @property
    def raw_folder(self) -> Path:
        """Folder, relative to a torchvision root, where torchvision keeps the IDX files."""
        return Path(self.torchvision_class, "raw")


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_SIZES = {"train": 60_000, "test": 10_000}

DATASETS: Mapping[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", 10, "MNIST", _MNIST_FILES, _MNIST_SIZES),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        10,
        "FashionMNIST",
        _MNIST_FILES,
        _MNIST_SIZES,
        debian_package="dataset-fashion-mnist",
    ),
    "kmnist": DatasetInfo("kmnist", 10, "KMNIST", _MNIST_FILES, _MNIST_SIZES),
    "emnist": DatasetInfo(
        "emnist",
        47,
        "EMNIST",
        {
            split: (
                f"emnist-balanced-{split}-images-idx3-ubyte",
                f"emnist-balanced-{split}-labels-idx1-ubyte",
            )
            for split in SPLITS
        },
        {"train": 112_800, "test": 18_800},
        torchvision_kwargs={"split": "balanced"},
        transposed=True,
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """Look a data set up by name; unknown names raise ValueError listing the choices."""
    return lookup(DATASETS, name, "dataset")
