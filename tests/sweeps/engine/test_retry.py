"""The backoff helper, with a fake clock: how long it waits, what it retries, when it gives up."""

from __future__ import annotations

import logging

import pytest

from sweeps.engine.retry import RECONNECT_ENV, Backoff, retry


class Blip(ConnectionError):
    """Stands for a lost connection: the kind of error the caller says to retry."""


class Clock:
    """A fake monotonic clock that ``sleep`` moves on; records every sleep."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def failing(times: int, error: Exception) -> object:
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return f"done after {len(calls)} calls"

    return call


def transient(error: BaseException) -> bool:
    return isinstance(error, Blip)


def attempt(call: object, clock: Clock, what: str = "ask", backoff: Backoff | None = None) -> object:
    return retry(call, transient, what, backoff or Backoff(), sleep=clock.sleep, clock=clock)


def test_delays_double_up_to_the_cap() -> None:
    delays = Backoff(first=0.5, factor=2, cap=3).delays()
    assert [next(delays) for _ in range(6)] == [0.5, 1.0, 2.0, 3, 3, 3]


def test_a_transient_error_is_retried_until_the_call_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with caplog.at_level(logging.WARNING, logger="sweeps.engine.retry"):
        result = attempt(failing(3, Blip("refused")), clock)
    assert result == "done after 4 calls"
    assert clock.slept == [0.5, 1.0, 2.0]
    assert "ask failed (refused); attempt 3, retrying in 2.0 s" in caplog.text


def test_any_other_error_is_raised_at_once() -> None:
    clock = Clock()
    with pytest.raises(ValueError, match="bad value"):
        attempt(failing(1, ValueError("bad value")), clock)
    assert clock.slept == []


def test_it_gives_up_rather_than_wait_past_the_give_up_time(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    backoff = Backoff(first=1, factor=2, cap=8, give_up=30)
    with pytest.raises(Blip), caplog.at_level(logging.ERROR, logger="sweeps.engine.retry"):
        attempt(failing(100, Blip("down")), clock, "tell", backoff)
    assert clock.slept == [1, 2, 4, 8, 8]  # one more 8 s wait would end past 30 s
    assert "tell failed (down); gave up after 23 s" in caplog.text


def test_the_give_up_time_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RECONNECT_ENV, "42")
    assert Backoff.from_env().give_up == 42
    monkeypatch.delenv(RECONNECT_ENV)
    assert Backoff.from_env().give_up == Backoff().give_up == 300


def test_a_logged_error_shows_its_cause_first_line_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    wrapped = Blip("wrapped")  # as Optuna wraps a driver's error
    wrapped.__cause__ = OSError("connection to postgresql://u:hunter2@db:5432/x failed\nDETAIL: refused")
    with caplog.at_level(logging.WARNING, logger="sweeps.engine.retry"):
        attempt(failing(1, wrapped), clock)
    assert "postgresql://u:***@db:5432/x failed); attempt 1" in caplog.text
    assert "hunter2" not in caplog.text and "DETAIL" not in caplog.text
