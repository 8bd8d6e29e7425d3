"""Environment variables a library call needs for a while: set for its duration and put back afterwards, so
that whatever runs next in the process (a user's code after ``sweeps`` used as a library) finds them as they
were. A module of its own, beside ``names``, so that every layer scopes them the same way."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def scoped_environ(values: Mapping[str, str] | None = None, kept: Iterable[str] = ()) -> Iterator[None]:
    """``values`` set while it lasts; afterwards they and the variables in ``kept`` (which the block may set,
    as a library does) are as before, unset if they were."""
    values = values or {}
    before = {name: os.environ.get(name) for name in [*values, *kept]}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
