"""Storage URLs: ``--storage``, ``$SWEEPS_STORAGE`` or the embedded SQLite default, normalised so that every
process names the same database, and printed with the password masked."""

from __future__ import annotations

import os

from sweeps import workdir
from sweeps.masking import has_secret, mask
from sweeps.tracking.uris import SQLITE, TRACKING_ENV, absolute_sqlite

STORAGE_ENV = "SWEEPS_STORAGE"

_POSTGRES = "postgresql+psycopg://"
_POSTGRES_ALIASES = ("postgresql://", "postgres://")


def storage_url(flag: str | None = None) -> str:
    """``--storage`` beats ``SWEEPS_STORAGE``, which beats the embedded default; returned normalised.

    A relative SQLite path is made absolute, so that every worker (whatever its working directory) opens the
    same file. ``postgresql://`` and ``postgres://`` get psycopg 3's driver name (SQLAlchemy would otherwise
    look for psycopg2). Any other scheme is refused with a ``ValueError`` naming the URL, password masked.
    """
    return normalise(flag or os.environ.get(STORAGE_ENV) or default_storage())


def in_shell(command: str, url: str, tracking_uri: str = "", quote: str = "") -> str:
    """``command`` (between ``quote``s) to paste into a shell, reaching the study at ``url`` and MLflow at
    ``tracking_uri`` as $SWEEPS_STORAGE and $MLFLOW_TRACKING_URI give them: a URL with a password is not
    printed, the variable that must hold it is named after the command instead."""
    urls = {STORAGE_ENV: url, TRACKING_ENV: tracking_uri}
    hidden = [variable for variable, value in urls.items() if has_secret(value)]
    shown = "" if has_secret(url) else f"{STORAGE_ENV}='{url}' "
    note = (
        f"   (with ${' and $'.join(hidden)} set: they hold a password, which is not printed)"
        if hidden
        else ""
    )
    return f"{quote}{shown}{command}{quote}{note}"


def default_storage() -> str:
    """Embedded store: one SQLite file in the tool's folder (``sweeps.workdir``); no server, 8 worker
    processes on this machine (not over a network filesystem: SQLite's locks and WAL need the workers on the
    machine with the disk). Named, not created: a command that only reads (``status``, ``report``) leaves
    nothing behind; :func:`sweeps.engine.storage.rdb.open_storage` makes the folder when it opens the file."""
    return f"{SQLITE}{workdir.folder().absolute() / workdir.STUDIES}"


def is_default(url: str) -> bool:
    """Whether ``url`` (normalised) is the embedded default itself, whatever this shell's $SWEEPS_STORAGE:
    a command printed for another shell names any other storage."""
    return url == normalise(default_storage())


def is_postgres(url: str) -> bool:
    """Whether ``url`` (normalised) names a PostgreSQL database."""
    return url.startswith(_POSTGRES)


def normalise(url: str) -> str:
    for alias in _POSTGRES_ALIASES:
        if url.startswith(alias):
            url = _POSTGRES + url.removeprefix(alias)
    if url.startswith(_POSTGRES):
        return url
    if url.startswith(SQLITE):
        return absolute_sqlite(url)
    raise ValueError(
        f"unsupported storage URL {mask(url)!r}: use sqlite:///PATH (embedded) or "
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    )
