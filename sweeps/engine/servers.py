"""Checks that the study database and the MLflow store answer, before a command creates anything.

Mid-sweep, a lost server is waited for (``sweeps.engine.storage.reconnect``, MLflow's own retries); at the
start it is a typo or a server that is not up, and the user is better told at once, in one line, what was
tried and what to check: one connection attempt with a short timeout, nothing written.
"""

from __future__ import annotations

from pathlib import Path

from sweeps import workdir
from sweeps.engine.retry import first_line
from sweeps.masking import mask
from sweeps.tracking.uris import SQLITE, is_server

CONNECT_TIMEOUT_S = 10
"""One attempt per server: an unreachable host is reported within this, a refused port at once."""


class Unreachable(ValueError):
    """A server (or the folder of an embedded store) that a command needs is not there; the message says
    which, with any password masked, and what to check."""


def check_storage(url: str) -> None:
    """The study storage at ``url`` (normalised) can be opened: its SQLite folder exists, or its database
    server accepts a connection (no schema is created)."""
    if url.startswith(SQLITE):
        _folder_exists(url, "study storage", "--storage / $SWEEPS_STORAGE")
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        engine = sqlalchemy.create_engine(
            url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
        )
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise Unreachable(
            f"the study storage {mask(url)} needs a database driver that is not installed"
            f' ({first_line(exc)}); install it with: pip install "optimizer-sweeps[postgres]"'
        ) from None
    try:
        engine.connect().close()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise Unreachable(
            f"cannot reach the study database {mask(url)}: {first_line(exc)}; is the server running, and are"
            " the host, port, user, password and database right? (--storage / $SWEEPS_STORAGE)"
        ) from None
    finally:
        engine.dispose()


def check_tracking(uri: str) -> None:
    """The MLflow store at ``uri`` can be reached: its SQLite folder exists, or its server answers
    ``/health``."""
    if uri.startswith(SQLITE):
        _folder_exists(uri, "MLflow store", "--tracking-uri / $MLFLOW_TRACKING_URI")
        return
    if not is_server(uri):
        return  # file stores and hosted backends: MLflow itself reports their problems
    import requests

    health = f"{uri.rstrip('/')}/health"
    try:
        answer = requests.get(health, timeout=CONNECT_TIMEOUT_S)
    except requests.RequestException as exc:
        raise Unreachable(
            f"cannot reach the MLflow server {mask(uri)}: {_reason(exc)}; is `mlflow server` running there?"
            " (--tracking-uri / $MLFLOW_TRACKING_URI)"
        ) from None
    if answer.status_code != 200:
        raise Unreachable(
            f"{mask(health)} answered HTTP {answer.status_code}, not 200: is {mask(uri)} an MLflow server?"
        )


def _reason(error: Exception) -> str:
    """The innermost cause of a requests error, which says what failed (refused, timed out, name unknown)."""
    cause: BaseException = error
    while cause.__context__ is not None and cause.__context__ is not cause:
        cause = cause.__context__
    text = first_line(cause)
    return text.rsplit(": ", 1)[-1] if ": " in text else text


def _folder_exists(url: str, what: str, where: str) -> None:
    """A SQLite file's folder must exist (a mistyped one is not created), unless it is the tool's own folder,
    made when the file is opened."""
    folder = Path(url.removeprefix(SQLITE)).parent
    if not folder.is_dir() and folder != workdir.folder().absolute():
        raise Unreachable(f"the {what} {mask(url)} is in a folder that does not exist: {folder} ({where})")
