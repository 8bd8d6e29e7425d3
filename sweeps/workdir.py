"""The one folder where everything the tool writes in the working directory lives: the studies
(``optuna.db``), the MLflow store (``mlflow.db`` and ``mlartifacts/``), the trial checkpoints
(``checkpoints/``, beside the study), the workers' and servers' logs (``logs/``), the reports (``reports/``),
the optimizer paths and the benchmarks' results. ``./sweeps-out/`` unless ``$SWEEPS_DIR`` (or ``sweeps
--dir``) names another, so that one line of ``.gitignore`` keeps it out of a repository and one ``rm -r``
clears it. A module of its own, beside ``names``, so that the engine and tracking (which must not import
each other) agree on it. A URL or folder given explicitly (``--storage``, ``--tracking-uri``, ``--out``) is
used as given."""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_ENV = "SWEEPS_DIR"
DEFAULT_FOLDER = "sweeps-out"

STUDIES = "optuna.db"
RUNS = "mlflow.db"
LOGS = "logs"
REPORTS = "reports"


def folder() -> Path:
    """The folder, relative to the working directory unless ``$SWEEPS_DIR`` is absolute; not created."""
    return Path(os.environ.get(FOLDER_ENV) or DEFAULT_FOLDER)


def made(name: str) -> Path:
    """``name`` in the folder, the folder created if it is not there yet: SQLite creates a database file,
    but not the folder it is in."""
    where = folder()
    where.mkdir(parents=True, exist_ok=True)
    return where / name
