"""Servers in child processes, each in a session of its own, so that a terminal's Ctrl-C reaches the command
alone and the children are stopped in order: SIGTERM to the child's whole process group (``mlflow server``
runs uvicorn under it), a wait, then SIGKILL. Nothing outlives the command."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sweeps.masking import mask

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
_POLL_S = 0.2
_WATCH_S = 1.0
_LOG_TAIL_LINES = 15


class ServerFailed(RuntimeError):
    """A server exited or did not answer in time; the message ends with the tail of its log."""


@dataclass(frozen=True)
class Server:
    """A UI to start: the page to print, the URL that answers once it is up, and how to run it."""

    name: str
    port: int
    url: str
    health: str
    command: Sequence[str]
    env: dict[str, str] = field(repr=False)
    log: Path


@contextmanager
def running(servers: Sequence[Server]) -> Iterator[list[subprocess.Popen]]:
    """Start every server, wait until each answers, and stop them all on leaving, however that happens."""
    procs: list[subprocess.Popen] = []
    try:
        for server in servers:
            procs.append(_start(server))
        for server, proc in zip(servers, procs, strict=True):
            _wait_ready(server, proc, time.monotonic() + READY_TIMEOUT_S)
        yield procs
    finally:
        stop(procs)


def watch(servers: Sequence[Server], procs: Sequence[subprocess.Popen]) -> None:
    """Block until interrupted; a server that exits on its own raises ``ServerFailed``."""
    while True:
        for server, proc in zip(servers, procs, strict=True):
            if proc.poll() is not None:
                raise ServerFailed(_died(server, proc))
        time.sleep(_WATCH_S)


def stop(procs: Sequence[subprocess.Popen]) -> None:
    """SIGTERM each child's process group, wait, SIGKILL what is left. A second Ctrl-C (or SIGTERM) cannot
    cut this short and leave orphans: both are ignored meanwhile."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            _signal_group(proc, signal.SIGKILL)  # stragglers whose parent has already exited
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_on_signals() -> None:
    """Ctrl-C raises ``KeyboardInterrupt`` even where the shell started us with SIGINT ignored (a background
    job), and SIGTERM (``kill``, ``docker stop``, systemd) stops the servers the same way."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def interrupt(*_: object) -> None:
    """A signal handler that stops a command as Ctrl-C does."""
    raise KeyboardInterrupt


def _start(server: Server) -> subprocess.Popen:
    server.log.parent.mkdir(parents=True, exist_ok=True)
    with server.log.open("wb") as log:
        return subprocess.Popen(
            list(server.command),
            env=os.environ | server.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_ready(server: Server, proc: subprocess.Popen, deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            raise ServerFailed(_died(server, proc))
        if _answers(server.health):
            return
        if time.monotonic() > deadline:
            raise ServerFailed(
                f"{server.name} did not answer {server.health} within {READY_TIMEOUT_S:.0f} s"
                f"{_tail(server.log)}"
            )
        time.sleep(_POLL_S)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _died(server: Server, proc: subprocess.Popen) -> str:
    return f"{server.name} exited with code {proc.returncode}{_tail(server.log)}"


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:] if log.exists() else []
    return mask(f"; last lines of {log}:\n" + "\n".join(lines)) if lines else ""


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)  # the child leads its own session, so its group id is its pid
