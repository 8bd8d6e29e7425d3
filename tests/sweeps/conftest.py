"""Fixtures for the service tests: a working directory per test, tiny IDX data, a real MLflow SQLite store.

Every test runs in its own ``tmp_path``, which is also the tool's folder (``SWEEPS_DIR=.``: a default
``mlflow.db``, ``optuna.db``, ``logs/`` or ``reports/`` lands there, where the tests look, never in the repo;
the default folder has tests of its own), and starts without ``MLFLOW_TRACKING_URI``: Lightning's MLflow
logger calls ``mlflow.set_tracking_uri``, which exports that variable into ``os.environ``, so one in-process
run would otherwise leak its store into the next test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sweeps.workdir import FOLDER_ENV
from tests.sweeps import clusters
from tests.sweeps.helpers import CONF, FINISHED_SWEEP, OUTSIDE_ENV, Store, open_store, sweeps_process

# Variables a run sets process-wide; restored after every test so that tests stay independent.
_PROCESS_ENV = (
    "MLFLOW_TRACKING_URI",
    "PL_GLOBAL_SEED",
    "SWEEPS_STORAGE",
    "SWEEPS_VERBOSE",
    "MLFLOW_LOGGING_LEVEL",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in _PROCESS_ENV}
    for name in OUTSIDE_ENV:  # a developer's own stores are never touched
        os.environ.pop(name, None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(FOLDER_ENV, ".")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def tiny_data(tmp_path: Path, write_idx_dataset: Any) -> Path:
    """A folder holding a random MNIST of 256 train and 128 test images."""
    folder = tmp_path / "idx"
    write_idx_dataset(folder, name="mnist", n_train=256, n_test=128)
    return folder


@pytest.fixture(scope="session")
def _schema_only_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its schema created once (creating it costs 1-2 s per file)."""
    database = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    open_store(database).client.search_experiments()
    return database


@pytest.fixture
def store(tmp_path: Path, _schema_only_store: Path) -> Store:
    """An empty MLflow store at ``tmp_path/mlflow.db`` (a copy of the schema-only database)."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(_schema_only_store, database)
    return open_store(database)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real single-node SLURM cluster for the session (tests using it are ``slow``); yields the environment
    its commands need. Its tests skip, naming the packages, where SLURM is not installed (see
    ``tests/conftest.py``)."""
    with clusters.slurm_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


@pytest.fixture(scope="session")
def finished_sweep(
    tmp_path_factory: pytest.TempPathFactory, write_idx_dataset: Any, slow_setup: None
) -> Path:
    """The folder of one finished, reported sweep, shared by every test that reads one (report, UI, status),
    instead of each running its own: ``conf/shootout.yaml`` shrunk (``FINISHED_SWEEP``), run by the real
    ``sweeps run`` with two worker processes on tiny MNIST files, then ``sweeps report shootout``, both from
    a shell whose ``MLFLOW_TRACKING_URI`` points elsewhere (``elsewhere.db``) while the sweep names its store
    by ``--tracking-uri``. Its ``optuna.db``, ``mlflow.db`` and ``reports/`` are read-only to the tests: one
    that adds to it works on a copy."""
    where = tmp_path_factory.mktemp("finished-sweep")
    write_idx_dataset(where / "idx", "mnist", n_train=256, n_test=64)
    spec = str(CONF / "shootout.yaml")
    args = ["run", spec, *FINISHED_SWEEP, f"data.dir={where / 'idx'}", "--workers", "2"]
    args += ["--tracking-uri", f"sqlite:///{where / 'mlflow.db'}"]
    elsewhere = f"sqlite:///{where / 'elsewhere.db'}"
    for command in (args, ["report", "shootout"]):
        env = {"COLUMNS": "200", FOLDER_ENV: ".", "MLFLOW_TRACKING_URI": elsewhere}
        proc = sweeps_process(*command, cwd=where, env=env)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
        if command is args:
            assert "retraining each optimizer's default and best config on 3 seeds" in out
            assert "retrained 6/6" in out
    return where
