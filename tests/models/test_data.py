"""The MNIST-family data module on tiny IDX files written by the tests (and on Debian's Fashion-MNIST)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import lightning
import pytest
import torch

from models.data import files, module
from models.data.files import DatasetNotFound, check_available, download, find_files, load_split
from models.data.idx import read_idx
from models.data.module import MNISTDataModule, TensorBatches

DEBIAN_DIR = files.DEBIAN_FASHION_MNIST_DIR


pytestmark = pytest.mark.usefixtures("no_local_data")


def fake_torchvision(monkeypatch: pytest.MonkeyPatch, **classes: type) -> None:
    module = types.ModuleType("torchvision")
    module.datasets = types.SimpleNamespace(**classes)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", module)


# --- read_idx -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.float32, torch.float64])
def test_read_idx_round_trips(tmp_path, write_idx, suffix, dtype):
    tensor = (torch.arange(2 * 3 * 5) * 37 - 100).reshape(2, 3, 5).to(dtype)
    path = write_idx(tmp_path / f"x-idx3{suffix}", tensor)

    read = read_idx(path)

    assert read.dtype == dtype
    assert torch.equal(read, tensor)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_rejects_truncated_file_naming_it(tmp_path, write_idx, suffix):
    path = write_idx(tmp_path / f"images{suffix}", torch.zeros(4, 28, 28, dtype=torch.uint8))
    path.write_bytes(path.read_bytes()[:-7])

    with pytest.raises(ValueError, match="images") as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_read_idx_rejects_bad_magic(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(b"PK\x03\x04 something else")

    with pytest.raises(ValueError, match="not an IDX file") as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


# --- finding and reading files --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("torchvision_layout", [False, True])
def test_find_files_in_data_dir_and_torchvision_layout(tmp_path, write_idx_dataset, gz, torchvision_layout):
    write_idx_dataset(tmp_path, "mnist", gz=gz, torchvision_layout=torchvision_layout)
    folder = tmp_path / "MNIST" / "raw" if torchvision_layout else tmp_path
    suffix = ".gz" if gz else ""

    files = find_files("mnist", tmp_path)

    assert files == {
        "train": (folder / f"train-images-idx3-ubyte{suffix}", folder / f"train-labels-idx1-ubyte{suffix}"),
        "test": (folder / f"t10k-images-idx3-ubyte{suffix}", folder / f"t10k-labels-idx1-ubyte{suffix}"),
    }


def test_find_files_without_data_dir_uses_default(tmp_path, write_idx_dataset):
    write_idx_dataset(files.DEFAULT_DATA_DIR, "kmnist", torchvision_layout=True)

    assert (
        find_files("kmnist", None)["test"][0] == files.DEFAULT_DATA_DIR / "KMNIST/raw/t10k-images-idx3-ubyte"
    )


def test_load_split_returns_uint8_images_and_int64_labels(tmp_path, write_idx_dataset):
    written = write_idx_dataset(tmp_path, "mnist", n_train=30, n_test=12, gz=True)

    images, labels = load_split("mnist", tmp_path, "test")

    assert images.dtype == torch.uint8 and images.shape == (12, 28, 28)
    assert labels.dtype == torch.int64
    assert torch.equal(images, written["test"][0]) and torch.equal(labels, written["test"][1])


def test_load_split_reads_emnist_upright(tmp_path, write_idx_dataset):
    written = write_idx_dataset(tmp_path, "emnist", n_train=10, n_test=5)

    images, labels = load_split("emnist", tmp_path, "train")

    assert torch.equal(images, written["train"][0].transpose(1, 2))
    assert torch.equal(labels, written["train"][1])


def test_load_split_rejects_label_count_mismatch(tmp_path, write_idx_dataset, write_idx):
    write_idx_dataset(tmp_path, "mnist", n_train=10)
    write_idx(tmp_path / "train-labels-idx1-ubyte", torch.zeros(9, dtype=torch.uint8))

    with pytest.raises(ValueError, match="10 images"):
        load_split("mnist", tmp_path, "train")


# --- missing data, downloads ----------------------------------------------------------------------------


def test_missing_files_name_folders_and_remedies(tmp_path):
    with pytest.raises(DatasetNotFound) as caught:
        find_files("mnist", tmp_path)

    message = str(caught.value)
    assert f"{tmp_path}: missing train-images-idx3-ubyte" in message
    assert f"{tmp_path / 'MNIST' / 'raw'}: no such folder" in message
    assert "pip install 'optimizer-sweeps[vision]'" in message
    assert f"copy the IDX files (gzipped or not) into {tmp_path}" in message
    assert "apt-get" not in message
    assert isinstance(caught.value, FileNotFoundError)


def test_missing_fashion_mnist_suggests_debian_package(tmp_path):
    with pytest.raises(DatasetNotFound, match="apt-get install dataset-fashion-mnist") as caught:
        find_files("fashion_mnist", tmp_path)
    assert f"{tmp_path / 'no-debian'}: no such folder" in str(caught.value)


def test_prepare_data_without_torchvision_explains_why(tmp_path):
    module = MNISTDataModule("mnist", data_dir=tmp_path)

    with pytest.raises(DatasetNotFound, match="torchvision is not usable") as caught:
        module.prepare_data()
    assert isinstance(caught.value.__cause__, ImportError)
    assert str(tmp_path) in str(caught.value)


def test_prepare_data_without_download_does_not_try_torchvision(tmp_path, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("downloaded although download=False")

    fake_torchvision(monkeypatch, MNIST=must_not_run)

    with pytest.raises(DatasetNotFound, match="the files are missing"):
        MNISTDataModule("mnist", data_dir=tmp_path, download=False).prepare_data()


def test_prepare_data_downloads_with_torchvision(tmp_path, monkeypatch, write_idx_dataset):
    calls = []

    def fake_mnist(root: str, download: bool) -> None:
        calls.append((root, download))
        write_idx_dataset(Path(root), "mnist", n_train=16, n_test=8, gz=True, torchvision_layout=True)

    fake_torchvision(monkeypatch, MNIST=fake_mnist)
    module = MNISTDataModule("mnist", data_dir=tmp_path / "new")

    module.prepare_data()
    module.setup()

    assert calls == [(str(tmp_path / "new"), True)]
    assert (module.train_size, len(module.val_dataloader().y)) == (16, 8)


def test_download_failure_is_dataset_not_found(tmp_path, monkeypatch):
    def offline(**kwargs):
        raise OSError("network unreachable")

    fake_torchvision(monkeypatch, EMNIST=offline)

    with pytest.raises(DatasetNotFound, match="could not download them.*network unreachable"):
        download("emnist", tmp_path)


def test_torchvision_that_fails_at_import_counts_as_missing(tmp_path, monkeypatch):
    class Broken(types.ModuleType):
        def __getattr__(self, name):
            raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setitem(sys.modules, "torchvision", Broken("torchvision"))

    with pytest.raises(DatasetNotFound, match="nms does not exist") as caught:
        check_available("mnist", tmp_path)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_check_available(tmp_path, monkeypatch, write_idx_dataset):
    with pytest.raises(DatasetNotFound, match="torchvision is not usable"):
        check_available("mnist", tmp_path)
    with pytest.raises(DatasetNotFound, match="download=False"):
        check_available("mnist", tmp_path, download=False)

    fake_torchvision(monkeypatch, MNIST=object)
    check_available("mnist", tmp_path)

    monkeypatch.setitem(sys.modules, "torchvision", None)
    write_idx_dataset(tmp_path, "mnist")
    check_available("mnist", tmp_path, download=False)


@pytest.mark.skipif(
    not DEBIAN_DIR.is_dir(),
    reason="Debian package dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)
def test_debian_fashion_mnist_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "DEBIAN_FASHION_MNIST_DIR", DEBIAN_DIR)

    found = find_files("fashion_mnist", tmp_path)
    images, labels = load_split("fashion_mnist", tmp_path, "test")

    assert found["train"][0] == DEBIAN_DIR / "train-images-idx3-ubyte.gz"
    assert images.shape == (10_000, 28, 28)
    assert torch.equal(labels.bincount(), torch.full((10,), 1000))


# --- TensorBatches --------------------------------------------------------------------------------------


def epoch_orders(seed: int, epochs: int = 2, n: int = 50, batch_size: int = 8) -> list[list[int]]:
    x = torch.arange(n)
    batches = TensorBatches(
        x, x.clone(), batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    return [torch.cat([xb for xb, _ in batches]).tolist() for _ in range(epochs)]


def test_shuffling_is_seeded_and_new_each_epoch():
    first, second = epoch_orders(seed=1)

    assert [first, second] == epoch_orders(seed=1)
    assert first != second
    assert epoch_orders(seed=2)[0] != first
    assert sorted(first) == sorted(second) == list(range(50))


def test_shuffled_batches_keep_pairs_shapes_and_partial_last_batch():
    y = torch.arange(10)
    x = (y * 10).view(10, 1, 1, 1).expand(10, 1, 2, 3).contiguous()
    batches = TensorBatches(x, y, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))

    pairs = list(batches)

    assert len(batches) == 3
    assert [tuple(xb.shape) for xb, _ in pairs] == [(4, 1, 2, 3), (4, 1, 2, 3), (2, 1, 2, 3)]
    assert all(torch.equal(xb, (yb * 10).view(-1, 1, 1, 1).expand(-1, 1, 2, 3)) for xb, yb in pairs)


def test_unshuffled_batches_are_views_in_order():
    x = torch.randn(7, 1, 28, 28)
    y = torch.arange(7)
    batches = TensorBatches(x, y, batch_size=3, shuffle=False)

    pairs = list(batches)

    assert len(batches) == 3
    assert torch.equal(torch.cat([yb for _, yb in pairs]), y)
    assert all(xb.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() for xb, _ in pairs)


def test_tensor_batches_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        TensorBatches(torch.zeros(3), torch.zeros(4), batch_size=2, shuffle=False)


# --- MNISTDataModule ------------------------------------------------------------------------------------


def test_setup_normalises_with_train_statistics(tmp_path, write_idx_dataset):
    written = write_idx_dataset(tmp_path, "mnist", n_train=40, n_test=15, torchvision_layout=True)
    module = MNISTDataModule("mnist", data_dir=tmp_path, batch_size=16)

    module.setup("fit")
    x_train, y_train = module.train_dataloader().x, module.train_dataloader().y
    x_val, y_val = module.val_dataloader().x, module.val_dataloader().y

    assert x_train.shape == (40, 1, 28, 28) and x_train.dtype == torch.float32
    assert x_val.shape == (15, 1, 28, 28)
    assert abs(x_train.mean().item()) < 1e-5 and abs(x_train.std().item() - 1) < 1e-5
    raw = written["train"][0].float() / 255
    expected_val = (written["test"][0].float() / 255 - raw.mean()) / raw.std()
    torch.testing.assert_close(x_val.squeeze(1), expected_val)
    assert torch.equal(y_train, written["train"][1]) and torch.equal(y_val, written["test"][1])
    assert (
        module.num_classes,
        module.train_size,
        len(module.val_dataloader().y),
        module.steps_per_epoch,
    ) == (10, 40, 15, 3)


def test_unit_scaling_divides_by_255_and_nothing_else(tmp_path, write_idx_dataset):
    """What the classic Keras comparison fed its network: pixels in [0, 1]."""
    written = write_idx_dataset(tmp_path, "mnist", n_train=40, n_test=15)
    module = MNISTDataModule("mnist", data_dir=tmp_path, val_split="test", scaling="unit")

    module.setup("fit")

    torch.testing.assert_close(module.val_dataloader().x.squeeze(1), written["test"][0].float() / 255)
    assert module.train_dataloader().x.min() >= 0 and module.train_dataloader().x.max() <= 1


def test_the_default_hold_out_is_a_sixth_of_the_train_split(tmp_path, write_idx_dataset):
    write_idx_dataset(tmp_path, "mnist", n_train=60, n_test=15)
    module = MNISTDataModule("mnist", data_dir=tmp_path, val_split="holdout")

    module.setup("fit")

    assert (module.train_size, len(module.val_dataloader().y)) == (50, 10)


def test_batch_size_full_and_one(tmp_path, write_idx_dataset):
    write_idx_dataset(tmp_path, "mnist", n_train=30)
    full = MNISTDataModule("mnist", data_dir=tmp_path, batch_size="full")
    single = MNISTDataModule("mnist", data_dir=tmp_path, batch_size=1)
    full.setup()
    single.setup()

    assert [len(xb) for xb, _ in full.train_dataloader()] == [30]
    assert full.steps_per_epoch == 1
    assert single.steps_per_epoch == len(single.train_dataloader()) == 30


def test_train_epochs_are_reproducible_per_seed(tmp_path, write_idx_dataset):
    write_idx_dataset(tmp_path, "mnist", n_train=50)

    def labels_per_epoch(seed: int) -> list[list[int]]:
        module = MNISTDataModule("mnist", data_dir=tmp_path, batch_size=8, seed=seed)
        module.setup()
        loader = module.train_dataloader()
        return [torch.cat([yb for _, yb in loader]).tolist() for _ in range(2)]

    first = labels_per_epoch(0)

    assert first == labels_per_epoch(0)
    assert first[0] != first[1]
    assert labels_per_epoch(1) != first


def images_of(x: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in x}


def test_subset_and_holdout_are_seeded_by_split_seed_and_disjoint(tmp_path, write_idx_dataset):
    written = write_idx_dataset(tmp_path, "mnist", n_train=60, n_test=20)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"corrupt: a hold-out run must not read the test split")

    def split(split_seed: int, seed: int = 0) -> tuple[set[bytes], set[bytes]]:
        module = MNISTDataModule(
            "mnist",
            data_dir=tmp_path,
            train_subset=25,
            val_split="holdout",
            holdout_size=15,
            seed=seed,
            split_seed=split_seed,
        )
        module.setup()
        assert (module.train_size, len(module.val_dataloader().y)) == (25, 15)
        return images_of(module.train_dataloader().x), images_of(module.val_dataloader().x)

    train, held_out = split(split_seed=3)

    assert not train & held_out
    assert (train, held_out) == split(split_seed=3)
    assert split(split_seed=4) != (train, held_out)
    assert split(split_seed=3, seed=7) == (train, held_out)  # every trial of a sweep validates on the same
    assert len(images_of(written["train"][0].float())) == 60


def test_the_trial_seed_draws_the_epoch_orders_of_one_split(tmp_path, write_idx_dataset):
    write_idx_dataset(tmp_path, "mnist", n_train=50)

    def first_epoch(seed: int) -> list[int]:
        module = MNISTDataModule("mnist", data_dir=tmp_path, batch_size=8, train_subset=40, seed=seed)
        module.setup()
        return torch.cat([yb for _, yb in module.train_dataloader()]).tolist()

    a, b = first_epoch(0), first_epoch(1)
    assert a != b and sorted(a) == sorted(b)


def test_setup_checks_sizes_against_the_files(tmp_path, write_idx_dataset):
    write_idx_dataset(tmp_path, "mnist", n_train=20)

    with pytest.raises(ValueError, match="train_subset=30"):
        MNISTDataModule("mnist", data_dir=tmp_path, train_subset=30).setup()
    with pytest.raises(ValueError, match="holdout_size=20"):
        MNISTDataModule("mnist", data_dir=tmp_path, val_split="holdout", holdout_size=20).setup()
    with pytest.raises(ValueError, match="train_subset=11"):
        MNISTDataModule(
            "mnist", data_dir=tmp_path, val_split="holdout", holdout_size=10, train_subset=11
        ).setup()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "cifar10"}, "mnist, fashion_mnist, kmnist, emnist"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "half"}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"train_subset": 0}, "train_subset"),
        ({"train_subset": 60_001}, "train_subset"),
        ({"val_split": "train"}, "val_split"),
        ({"val_split": "holdout", "holdout_size": 60_000}, "holdout_size"),
        ({"val_split": "holdout", "train_subset": 50_001}, "train_subset"),
        ({"holdout_size": -1}, "holdout_size"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
    ],
)
def test_bad_arguments_fail_in_init_without_io(monkeypatch, kwargs, field):
    def no_io(*args, **kwargs):
        raise AssertionError("file I/O in __init__")

    monkeypatch.setattr(module, "find_files", no_io)
    monkeypatch.setattr(files, "read_idx", no_io)
    monkeypatch.setattr(Path, "is_dir", no_io)

    with pytest.raises(ValueError, match=field):
        MNISTDataModule(**{"name": "mnist", **kwargs})


def test_properties_need_setup():
    with pytest.raises(RuntimeError, match="setup"):
        _ = MNISTDataModule("mnist").train_size


class TinyClassifier(lightning.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(28 * 28, 10)
        self.seen: list[int] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append(len(y))
        return torch.nn.functional.cross_entropy(self.layer(x.flatten(1)), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self.layer(x.flatten(1)), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_trains_on_the_data_module(tmp_path, write_idx_dataset):
    write_idx_dataset(tmp_path, "fashion_mnist", n_train=20, n_test=10)
    module = MNISTDataModule("fashion_mnist", data_dir=tmp_path, batch_size=8, eval_batch_size=4)
    model = TinyClassifier()
    trainer = lightning.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )

    trainer.fit(model, datamodule=module)

    assert model.seen == [8, 8, 4] * 2
    assert trainer.num_training_batches == module.steps_per_epoch == 3
    assert trainer.num_val_batches == [3]
    assert "val_loss" in trainer.callback_metrics
