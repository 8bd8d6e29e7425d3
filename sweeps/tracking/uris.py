"""Where MLflow runs go (``--tracking-uri``, ``$MLFLOW_TRACKING_URI``, the embedded default) and how URLs are
printed: with any password masked."""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""Embedded store: one SQLite file in the working directory, no server (MLflow refuses ./mlruns)."""

SQLITE = "sqlite:///"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<secret>[^\s/?#]+)(?P<tail>@)")
"""``scheme://user:password@`` and ``scheme://:password@``; the password runs to the last ``@`` before the
host, so one that holds an ``@`` is hidden whole."""
_QUERY = re.compile(
    r"(?P<head>[?&;][\w.-]*(?:password|passwd|pwd|token|secret)[\w.-]*=)(?P<secret>[^&;#\s]+)", re.I
)
"""Query parameters that carry a secret (``?password=``, ``&access_token=``, ``sslpassword=``, ...)."""


def tracking_uri(flag: str | None = None) -> str:
    """``--tracking-uri`` beats ``MLFLOW_TRACKING_URI``, which beats the embedded default.

    A relative SQLite path is made absolute: MLflow caches one store per URI string, so a relative one would
    keep pointing at the first working directory it was used from.
    """
    return absolute_sqlite(flag or os.environ.get(TRACKING_ENV) or DEFAULT_TRACKING_URI)


def absolute_sqlite(url: str) -> str:
    """A ``sqlite:///relative`` URL made absolute (any other URL as it is), so that every process and working
    directory names the same file."""
    path = url.removeprefix(SQLITE)
    if not url.startswith(SQLITE) or path.startswith("/"):
        return url
    return f"{SQLITE}{Path(path).expanduser().resolve()}"


def artifact_location(uri: str) -> str | None:
    """Artifacts of the embedded store live beside its database, not in a ./mlruns that MLflow refuses."""
    if not uri.startswith(SQLITE):
        return None
    database = Path(uri.removeprefix(SQLITE))
    return (database.parent / "mlartifacts").as_uri()


def mask(text: str) -> str:
    """``text`` with the password of every URL in it, and every secret query parameter, shown as ``***``."""
    return _QUERY.sub(r"\g<head>***", _USERINFO.sub(r"\g<head>***\g<tail>", text))


def has_secret(url: str) -> bool:
    """Whether printing ``url`` in full would show a password or token."""
    return mask(url) != url


def is_masked(url: str) -> bool:
    """Whether ``url`` was masked: its password left out, ``***`` in its place."""
    return "***" in url and mask(url) == url


class _MaskedStream:
    """A text stream whose writes are masked on their way to ``stream``; everything else is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(mask(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def mask_output() -> None:
    """From now on, whatever this process prints (libraries included: MLflow prints each run's link, its
    URL's password and all), every log record and every uncaught traceback shows URLs with their passwords
    masked: an error's text often quotes the URL it failed on."""
    if not isinstance(sys.stdout, _MaskedStream):
        sys.stdout = _MaskedStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, _MaskedStream):
        sys.stderr = _MaskedStream(sys.stderr)  # type: ignore[assignment]
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "masks", False):
        return

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.msg, record.args = mask(record.getMessage()), ()
        if record.exc_info:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return record

    def excepthook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        sys.stderr.write(mask("".join(traceback.format_exception(kind, error, trace))))

    masked_record.masks = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)
    sys.excepthook = excepthook
