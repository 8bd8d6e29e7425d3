"""Capped exponential backoff for calls that must outlive a database restart.

A worker that dies when PostgreSQL restarts loses its trial's result; one that waits, logging each attempt,
carries on once the server is back. Written here rather than taken from tenacity: it is one loop, and the
project would otherwise need another dependency for it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from sweeps.masking import mask

RECONNECT_ENV = "SWEEPS_RECONNECT_TIMEOUT"
DEFAULT_GIVE_UP_S = 300.0
"""Five minutes: a database restart or failover takes seconds to a minute or two; past that, the worker
stops with the error (its trial's heartbeat stops too, so the trial is retried once the database is back)."""

T = TypeVar("T")

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Wait ``first`` seconds, then ``factor`` times longer each attempt, never more than ``cap``; raise the
    last error once waiting again would pass ``give_up`` seconds since the first failure."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 10.0
    give_up: float = DEFAULT_GIVE_UP_S

    @classmethod
    def from_env(cls) -> Backoff:
        """The default policy, with the give-up time from ``$SWEEPS_RECONNECT_TIMEOUT`` (seconds) if set."""
        return cls(give_up=float(os.environ.get(RECONNECT_ENV, DEFAULT_GIVE_UP_S)))

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield min(delay, self.cap)
            delay *= self.factor


def retry(
    call: Callable[[], T],
    transient: Callable[[BaseException], bool],
    what: str,
    backoff: Backoff,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, called again after each error that ``transient`` accepts, waiting as ``backoff`` says;
    any other error, or a transient one past the give-up time, is raised. Each retry is logged (with any
    password in the error masked), so an operator sees a worker waiting, not a hung one."""
    delays, started, attempt = backoff.delays(), None, 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as error:
            if not transient(error):
                raise
            now, delay = clock(), next(delays)
            started = now if started is None else started
            if now - started + delay > backoff.give_up:
                _logger.error("%s failed (%s); gave up after %.0f s", what, first_line(error), now - started)
                raise
            _logger.warning(
                "%s failed (%s); attempt %d, retrying in %.1f s", what, first_line(error), attempt, delay
            )
            sleep(delay)


def first_line(error: BaseException) -> str:
    """The error's (or its cause's) first line, password masked: driver errors span several lines."""
    text = str(error.__cause__ or error) or repr(error)
    return mask(text.splitlines()[0])
