"""Where MLflow runs go (``--tracking-uri``, ``$MLFLOW_TRACKING_URI``, the embedded default)."""

from __future__ import annotations

import os
from pathlib import Path

from sweeps import workdir

SQLITE = "sqlite:///"
TRACKING_ENV = "MLFLOW_TRACKING_URI"


def tracking_uri(flag: str | None = None) -> str:
    """``--tracking-uri`` beats ``MLFLOW_TRACKING_URI``, which beats the embedded default. A relative SQLite
    path is made absolute: MLflow caches one store per URI string, so a relative one would keep pointing at
    the first working directory it was used from."""
    return absolute_sqlite(flag or os.environ.get(TRACKING_ENV) or default_tracking_uri())


def default_tracking_uri() -> str:
    """Embedded store: one SQLite file in the tool's folder (``sweeps.workdir``), no server (MLflow refuses
    ./mlruns)."""
    return f"{SQLITE}{workdir.made(workdir.RUNS)}"


def absolute_sqlite(url: str) -> str:
    """A ``sqlite:///relative`` URL made absolute (any other URL as it is), so that every process and working
    directory names the same file."""
    path = url.removeprefix(SQLITE)
    if not url.startswith(SQLITE) or path.startswith("/"):
        return url
    return f"{SQLITE}{Path(path).expanduser().resolve()}"


def is_server(uri: str) -> bool:
    """An MLflow tracking server: it answers ``/health`` and serves its own UI."""
    return uri.startswith(("http://", "https://"))


def is_file(url: str) -> bool:
    """A store that is a file on this machine (SQLite, a folder), out of reach of other machines."""
    return url.startswith(("sqlite:", "file:")) or "://" not in url


def artifact_location(uri: str) -> str | None:
    """Artifacts of the embedded store live beside its database, not in a ./mlruns that MLflow refuses."""
    if not uri.startswith(SQLITE):
        return None
    database = Path(uri.removeprefix(SQLITE))
    return (database.parent / "mlartifacts").as_uri()
