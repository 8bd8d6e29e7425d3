"""Passwords in URLs never leave the URL they came in: every layer masks what it prints, logs or records, and
an entry point masks the whole process's output for as long as it runs.

A module of its own, beside ``names``, so that the config, the engine, tracking and the CLI all use one
masking without importing one another."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

_USERINFO = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<secret>[^\s/?#]+)(?P<tail>@)")
"""``scheme://user:password@`` and ``scheme://:password@``; the password runs to the last ``@`` before the
host, so one that holds an ``@`` is hidden whole."""
_QUERY = re.compile(
    r"(?P<head>[?&;][\w.-]*(?:password|passwd|pwd|token|secret)[\w.-]*=)(?P<secret>[^&;#\s]+)", re.I
)
"""Query parameters that carry a secret (``?password=``, ``&access_token=``, ``sslpassword=``, ...)."""


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


@contextmanager
def masked_output() -> Iterator[None]:
    """While it lasts, whatever this process prints (libraries included: MLflow prints each run's link, its
    URL's password and all) and every log record (its traceback too) shows URLs with their passwords masked:
    an error's text often quotes the URL it failed on. Afterwards the streams and the log record factory are
    the ones before, for whatever runs next in the process."""
    saved = sys.stdout, sys.stderr, logging.getLogRecordFactory()
    make_record = saved[2]

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.msg, record.args = mask(record.getMessage()), ()
        if record.exc_info:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return record

    sys.stdout, sys.stderr = _MaskedStream(sys.stdout), _MaskedStream(sys.stderr)  # type: ignore[assignment]
    logging.setLogRecordFactory(masked_record)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved[0], saved[1]
        logging.setLogRecordFactory(saved[2])
