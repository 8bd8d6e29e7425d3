"""``sweeps ui``: the MLflow UI on a sweep's tracking store and, on request, optuna-dashboard on its study.

Both run as child processes (``sweeps.tools.servers``): a terminal's Ctrl-C stops them all, and nothing
outlives the command.

``mlflow server`` also starts a job runner with seven task-queue consumers (GenAI features, unused here):
with ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` and one worker it answered ``/health`` 6.5 s after start on
the 2-core development machine, against 17.6 s with its defaults (which add four uvicorn workers).
Store URIs go to the children by environment, never argv, where ``ps`` would show a password.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from sweeps import workdir
from sweeps.masking import mask
from sweeps.tools.servers import Server, running, stop_on_signals, watch
from sweeps.tracking.uris import SQLITE, artifact_location, is_server

MLFLOW_SERVER_FLAGS = ("--workers", "1")
"""One uvicorn worker: one person browsing needs no more, and each extra worker costs seconds at start."""

MODEL_TRAINING_VIEW = "workflowType=machine_learning"
_STORAGE_ENV = "SWEEPS_UI_STORAGE"
_DASHBOARD_MAIN = "from sweeps.tools.ui import serve_dashboard; serve_dashboard()"


class UiError(ValueError):
    """Bad input: what to show cannot be found, or a port is taken (exit 2)."""


@dataclass(frozen=True)
class Target:
    """What to show: an MLflow store (and the sweep's experiment in it) and, for the dashboard, a storage."""

    tracking_uri: str
    storage_url: str
    experiment_id: str | None = None
    study_id: int | None = None
    view: str | None = None


def locate(study: str | None, tracking_flag: str | None, storage_flag: str | None) -> Target:
    """The stores to show. With a study, its recorded MLflow store and experiment (``--tracking-uri`` still
    wins, as for ``sweeps worker``); without one, ``--tracking-uri``, ``$MLFLOW_TRACKING_URI`` or the default.
    Raises ``UiError`` (or the storage's ``StudyNotFoundError``) naming what is missing."""
    from sweeps.engine.storage.urls import storage_url
    from sweeps.tracking.uris import tracking_uri

    url = storage_url(storage_flag)
    if study is None:
        return Target(tracking_uri(tracking_flag), url)
    from sweeps.engine.storage.rdb import load_study, open_storage
    from sweeps.names import EXPERIMENT_ATTR, PARENT_ATTR, TRACKING_ATTR
    from sweeps.tracking.runs import view_key

    _require_sqlite_file(url, "Optuna storage")
    storage = open_storage(url, heartbeat=False)
    found = load_study(storage, study)
    recorded = found.user_attrs.get(TRACKING_ATTR)
    uri = tracking_uri(tracking_flag or recorded)
    experiment = found.user_attrs.get(EXPERIMENT_ATTR) if uri == recorded else None
    view = view_key(uri, experiment, found.user_attrs[PARENT_ATTR]) if experiment else None
    return Target(uri, url, experiment, storage.get_study_id_from_name(study), view)


def experiment_page(base: str, experiment_id: str | None, view: str | None = None) -> str:
    """The experiment's runs table in the UI's model-training view, in the sweep's own ``view`` where it has
    one (its metric as a column: ``sweeps.tracking.runs.runs_view``). MLflow 3.17's UI picks an
    experiment's first page by a global view (``workflowType``: the URL's, else the browser's last choice,
    else GenAI), not by the experiment's kind tag, so without the parameter a sweep opens on the GenAI
    overview."""
    if not experiment_id:
        return base
    shared = f"&viewStateShareKey={view}" if view else ""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}{shared}"


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
    page = experiment_page(base, target.experiment_id, target.view)
    return Server("MLflow UI", port, page, f"{base}/health", command, env, logs / "mlflow.log")


def dashboard_server(target: Target, host: str, port: int, logs: Path) -> Server:
    """optuna-dashboard in a child process (``serve_dashboard``), the storage passed by environment."""
    _require_sqlite_file(target.storage_url, "Optuna storage")
    command = [sys.executable, "-c", _DASHBOARD_MAIN, host, str(port)]
    base = _base_url(host, port)
    page = f"{base}/dashboard" + (f"/studies/{target.study_id}" if target.study_id is not None else "")
    env = {_STORAGE_ENV: target.storage_url}
    return Server(
        "Optuna dashboard", port, page, f"{base}/api/meta", command, env, logs / "optuna-dashboard.log"
    )


def serve_dashboard() -> None:
    """The dashboard child (argv: host, port): optuna-dashboard's WSGI app on the storage opened as ``sweeps``
    opens it (WAL, serialised writes), served by a threaded stdlib server as the dashboard's own CLI does
    without gunicorn, so nothing but the standard library runs it and there is one process to stop."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    from optuna_dashboard import wsgi

    from sweeps.engine.storage.rdb import open_storage

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


def _require_sqlite_file(url: str, what: str) -> None:
    """Opening a missing SQLite file would create an empty store and show nothing: say so instead."""
    if url.startswith(SQLITE) and not Path(url.removeprefix(SQLITE)).is_file():
        raise UiError(f"no {what} at {mask(url)}; run a sweep there first, or name another store")


def _base_url(host: str, port: int) -> str:
    """The URL to print and poll for a server bound to ``host``: a wildcard is reached on loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    study: str | None,
    tracking_flag: str | None,
    storage_flag: str | None,
    host: str,
    port: int,
    optuna: bool,
    optuna_port: int,
    console: Console,
    err: Console,
) -> None:
    """Start the UIs, print their pages once they answer, and serve until Ctrl-C or SIGTERM (which return
    normally). Raises ``UiError`` (or the storage's ``StudyNotFoundError``) before anything starts, and
    ``ServerFailed`` when a server dies or never answers."""
    target = locate(study, tracking_flag, storage_flag)
    logs = workdir.folder() / workdir.LOGS / "ui"
    external = is_server(target.tracking_uri)  # it serves its own UI: nothing to start
    servers = [] if external else [mlflow_server(target, host, port, logs)]
    if optuna:
        servers.append(dashboard_server(target, host, optuna_port, logs))
    check_ports(host, servers)
    if external:
        page = experiment_page(mask(target.tracking_uri), target.experiment_id, target.view)
        console.print(f"MLflow UI (the tracking server): {page}", highlight=False, soft_wrap=True)
    if not servers:
        return
    if not is_loopback(host):
        err.print(f"[yellow]warning:[/] listening on {host}: whoever can reach it can browse, with no login")
    stop_on_signals()
    try:
        with running(servers) as procs:
            for server in servers:
                console.print(f"{server.name}: {server.url}", highlight=False, soft_wrap=True)
            console.print(f"logs in {logs}/; Ctrl-C to stop", highlight=False, soft_wrap=True)
            watch(servers, procs)
    except KeyboardInterrupt:
        console.print("stopped")
