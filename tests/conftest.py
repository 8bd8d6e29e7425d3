"""Shared fixtures: tiny MNIST-family data sets as real IDX files (real MNIST cannot be downloaded here)."""

from __future__ import annotations

import gzip
import signal
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.tiers import is_slow

_IDX_CODES = {
    torch.uint8: 0x08,
    torch.int8: 0x09,
    torch.int16: 0x0B,
    torch.int32: 0x0C,
    torch.float32: 0x0D,
    torch.float64: 0x0E,
}


def _write_idx(path: Path, tensor: torch.Tensor) -> Path:
    """Write `tensor` as a big-endian IDX file, gzipped when `path` ends in .gz."""
    array = tensor.numpy()
    header = bytes([0, 0, _IDX_CODES[tensor.dtype], tensor.dim()]) + struct.pack(
        f">{tensor.dim()}I", *array.shape
    )
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


def _write_idx_dataset(
    directory: Path,
    name: str = "mnist",
    n_train: int = 60,
    n_test: int = 20,
    gz: bool = False,
    torchvision_layout: bool = False,
    seed: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Write random images and labels for `name` into `directory` (or `directory/<Class>/raw`).

    Returns {split: (uint8 images [N, 28, 28] as stored in the files, int64 labels [N])}.
    """
    from models.data.catalogue import DATASETS

    info = DATASETS[name]
    folder = directory / info.raw_folder if torchvision_layout else directory
    generator = torch.Generator().manual_seed(seed)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, info.num_classes, (n,), dtype=torch.uint8, generator=generator)
        suffix = ".gz" if gz else ""
        images_name, labels_name = info.files[split]
        _write_idx(folder / f"{images_name}{suffix}", images)
        _write_idx(folder / f"{labels_name}{suffix}", labels)
        written[split] = (images, labels.long())
    return written


def _postgres_unreachable() -> str | None:
    import psycopg

    try:
        psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3").close()
    except psycopg.OperationalError as error:
        return f"PostgreSQL not reachable on 127.0.0.1:5432 (database test): {str(error).splitlines()[0]}"
    return None


def _no_slurm() -> str | None:
    from tests.sweeps.clusters import missing

    return missing()


def _no_cuda_device() -> str | None:
    return None if torch.cuda.is_available() else "no CUDA device on this machine"


SLOW_SECONDS = 5.0
"""A test outside the slow tier that takes longer is named at the end of the run, to be given a slow cause."""


SHARED_FIXTURES = ("finished_sweep", "slurm")
"""Session fixtures that cost a minute to build: under ``pytest -n 2 --dist loadgroup`` (pytest-xdist) their
users run in one worker process, so each is built once, not once per worker."""


@pytest.fixture(scope="session")
def slow_setup() -> None:
    """Requested by a fixture that trains, starts a subprocess or a server: every test using that fixture,
    directly or through other fixtures, lands in the slow tier (``-m slow``) without a mark of its own."""


def pytest_configure(config: pytest.Config) -> None:
    """The Ctrl-C tests send SIGINT to the processes they start, which inherit an ignored SIGINT: a suite
    started as a background job (``nohup pytest &`` in a script) has SIGINT ignored, so Python in its children
    would never raise ``KeyboardInterrupt``. The test processes take the default back."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests whose fixtures or helpers are slow are marked ``slow`` where the slowness lives (``slow_setup``,
    ``tests.tiers.slow_helper``). Tests marked ``postgres`` need the server on 127.0.0.1:5432, tests
    marked ``gpu`` a CUDA device, tests using the ``slurm`` fixture (marked ``slurm`` here) SLURM's
    packages; without the resource they skip, naming it. Tests marked ``long`` run first: pytest-xdist hands
    out its groups, then single tests in this order, and a long one handed out last ends the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
    for item in items:
        if not item.get_closest_marker("slow") and is_slow(item):
            item.add_marker(pytest.mark.slow)
        if "slurm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slurm)
        shared = [name for name in SHARED_FIXTURES if name in getattr(item, "fixturenames", ())]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
    resources = (("postgres", _postgres_unreachable), ("gpu", _no_cuda_device), ("slurm", _no_slurm))
    for marker, missing in resources:
        marked = [item for item in items if item.get_closest_marker(marker)]
        reason = missing() if marked else None
        for item in marked if reason else []:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def no_local_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide Debian's Fashion-MNIST, the default data folder and torchvision from the in-process code, so that
    results do not depend on this machine."""
    from models.data import files

    monkeypatch.setattr(files, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(files, "DEFAULT_DATA_DIR", tmp_path / "no-default")
    monkeypatch.setitem(sys.modules, "torchvision", None)


@pytest.fixture(scope="session")
def write_idx() -> Callable[[Path, torch.Tensor], Path]:
    """`write_idx(path, tensor)`: one IDX file."""
    return _write_idx


@pytest.fixture(scope="session")
def write_idx_dataset() -> Callable[..., dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """`write_idx_dataset(dir, name="mnist", n_train=60, n_test=20, gz=False, torchvision_layout=False)`."""
    return _write_idx_dataset


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Name the tests of the fast tier that took longer than ``SLOW_SECONDS`` (set-up included): the quick
    loop stays quick only if each of them gets a slow fixture or helper (or a mark)."""
    seconds: dict[str, float] = {}
    for report in (r for reports in terminalreporter.stats.values() for r in reports):
        if isinstance(report, pytest.TestReport) and "slow" not in report.keywords:
            seconds[report.nodeid] = seconds.get(report.nodeid, 0.0) + report.duration
    laggards = sorted(((s, n) for n, s in seconds.items() if s > SLOW_SECONDS), reverse=True)
    if laggards:
        terminalreporter.section(f"fast-tier tests over {SLOW_SECONDS:.0f} s: give their cause a slow mark")
        for duration, nodeid in laggards:
            terminalreporter.line(f"{duration:7.1f} s  {nodeid}")
