"""``sweeps ui``: the MLflow UI on a sweep's tracking store and, on request, optuna-dashboard on its study.

Both run as child processes, each in a session of its own, so that a terminal's Ctrl-C reaches ``sweeps ui``
alone and the children are stopped in order: SIGTERM to the child's whole process group (``mlflow server``
runs uvicorn under it), a wait, then SIGKILL. Nothing outlives the command.

``mlflow server`` also starts a job runner with seven task-queue consumers (GenAI features, unused here):
with ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` and one worker it answered ``/health`` 6.5 s after start on
the 2-core development machine, against 17.6 s with its defaults (which add four uvicorn workers).
Store URIs go to the children by environment, never argv, where ``ps`` would show a password.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sweeps.tracking import SQLITE, artifact_location, mask

MLFLOW_SERVER_FLAGS = ("--workers", "1")
"""One uvicorn worker: one person browsing needs no more, and each extra worker costs seconds at start."""

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
_POLL_S = 0.2
_WATCH_S = 1.0
_LOG_TAIL_LINES = 15
_STORAGE_ENV = "SWEEPS_UI_STORAGE"
_DASHBOARD_MAIN = "from sweeps.ui import serve_dashboard; serve_dashboard()"


class UiError(ValueError):
    """Bad input: what to show cannot be found, or a port is taken (exit 2)."""


class ServerFailed(RuntimeError):
    """A server exited or did not answer in time; the message ends with the tail of its log."""


@dataclass(frozen=True)
class Target:
    """What to show: an MLflow store (and the sweep's experiment in it) and, for the dashboard, a storage."""

    tracking_uri: str
    storage_url: str
    experiment_id: str | None = None
    study_id: int | None = None


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


def locate(study: str | None, tracking_flag: str | None, storage_flag: str | None) -> Target:
    """The stores to show. With a study, its recorded MLflow store and experiment (``--tracking-uri`` still
    wins, as for ``sweeps worker``); without one, ``--tracking-uri``, ``$MLFLOW_TRACKING_URI`` or the default.
    Raises ``UiError`` (or the storage's ``StudyNotFoundError``) naming what is missing."""
    from sweeps.storage import storage_url
    from sweeps.tracking import tracking_uri

    url = storage_url(storage_flag)
    if study is None:
        return Target(tracking_uri(tracking_flag), url)
    from sweeps.storage import load_study, open_storage
    from sweeps.study import EXPERIMENT_ATTR, TRACKING_ATTR

    _require_sqlite_file(url, "Optuna storage")
    storage = open_storage(url, heartbeat=False)
    found = load_study(storage, study)
    recorded = found.user_attrs.get(TRACKING_ATTR)
    uri = tracking_uri(tracking_flag or recorded)
    experiment = found.user_attrs.get(EXPERIMENT_ATTR) if uri == recorded else None
    return Target(uri, url, experiment, storage.get_study_id_from_name(study))


def is_server(uri: str) -> bool:
    """An MLflow tracking server already serves its own UI: nothing to start."""
    return uri.startswith(("http://", "https://"))


def experiment_page(base: str, experiment_id: str | None) -> str:
    """The experiment's runs table: MLflow 3 opens an experiment without a kind tag on its GenAI overview."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs" if experiment_id else base


def mlflow_server(target: Target, host: str, port: int, logs: Path) -> Server:
    """``mlflow server`` on the store; artifacts of experiments it creates go where the sweeps put theirs."""
    _require_sqlite_file(target.tracking_uri, "MLflow store")
    command = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port)]
    command += MLFLOW_SERVER_FLAGS
    artifacts = artifact_location(target.tracking_uri)
    if artifacts:
        command += ["--artifacts-destination", artifacts]
    env = {"MLFLOW_BACKEND_STORE_URI": target.tracking_uri, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    base = _base_url(host, port)
    return Server(
        "MLflow UI",
        port,
        experiment_page(base, target.experiment_id),
        f"{base}/health",
        command,
        env,
        logs / "mlflow.log",
    )


def dashboard_server(target: Target, host: str, port: int, logs: Path) -> Server:
    """optuna-dashboard in a child process (``serve_dashboard``), the storage passed by environment."""
    _require_sqlite_file(target.storage_url, "Optuna storage")
    command = [sys.executable, "-c", _DASHBOARD_MAIN, host, str(port)]
    base = _base_url(host, port)
    page = f"{base}/dashboard" + (f"/studies/{target.study_id}" if target.study_id is not None else "")
    return Server(
        "Optuna dashboard",
        port,
        page,
        f"{base}/api/meta",
        command,
        {_STORAGE_ENV: target.storage_url},
        logs / "optuna-dashboard.log",
    )


def serve_dashboard() -> None:
    """The dashboard child (argv: host, port): optuna-dashboard's WSGI app on the storage opened as ``sweeps``
    opens it (WAL, serialised writes), served by a threaded stdlib server as the dashboard's own CLI does
    without gunicorn, so nothing but the standard library runs it and there is one process to stop."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    from optuna_dashboard import wsgi

    from sweeps.storage import open_storage

    host, port = sys.argv[1], int(sys.argv[2])

    class Threaded(ThreadingMixIn, WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    app = wsgi(open_storage(os.environ[_STORAGE_ENV], heartbeat=False))
    make_server(host, port, app, server_class=Threaded).serve_forever()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_ports(host: str, servers: Sequence[Server]) -> None:
    """Refuse a taken port before anything starts: a server failing to bind would otherwise leave another
    program's page (maybe another MLflow) answering our health check."""
    ports = [server.port for server in servers]
    if len(set(ports)) < len(ports):
        raise UiError(f"the MLflow and Optuna dashboard ports must differ (both {ports[0]})")
    for port in ports:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise UiError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another port") from None


@contextmanager
def running(servers: Sequence[Server], timeout: float = READY_TIMEOUT_S) -> Iterator[list[subprocess.Popen]]:
    """Start every server, wait until each answers, and stop them all on leaving, however that happens."""
    procs: list[subprocess.Popen] = []
    try:
        for server in servers:
            procs.append(_start(server))
        for server, proc in zip(servers, procs, strict=True):
            _wait_ready(server, proc, time.monotonic() + timeout)
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


def stop(procs: Sequence[subprocess.Popen], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM each child's process group, wait, SIGKILL what is left. A second Ctrl-C (or SIGTERM) cannot
    cut this short and leave orphans: both are ignored meanwhile."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
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

    def _interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


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


def _require_sqlite_file(url: str, what: str) -> None:
    """Opening a missing SQLite file would create an empty store and show nothing: say so instead."""
    if url.startswith(SQLITE) and not Path(url.removeprefix(SQLITE)).is_file():
        raise UiError(f"no {what} at {mask(url)}; run a sweep there first, or name another store")


def _reachable(host: str) -> str:
    """The address to print and poll for a server bound to ``host``: a wildcard is reached on loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _base_url(host: str, port: int) -> str:
    host = _reachable(host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
