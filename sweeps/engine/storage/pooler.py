"""PgBouncer in front of a sweep's PostgreSQL, so that hundreds of workers share a few server connections.

Every worker process opens its own SQLAlchemy pool; PostgreSQL at its defaults takes 100 connections, and 64
plain Optuna workers already got "too many clients already". PgBouncer in transaction pooling hands each
transaction one of ``pool_size`` server connections, so the server sees ``pool_size`` whatever the number of
workers. Chosen over Optuna's gRPC storage proxy, which also holds many workers on few connections, because
workers still talk to an ``RDBStorage``: Optuna's heartbeats, stale-trial failing and retries work unchanged,
where behind the gRPC proxy (no heartbeat) a lost trial would stay RUNNING unless we rebuilt liveness
ourselves. The README's storage section has the measurements (``sweeps bench-storage``).

Transaction pooling gives a transaction whichever server connection is free, so a session's server-side
prepared statements would be missing on the next one: ``open_storage`` turns psycopg's off
(``prepare_threshold=None``) for every PostgreSQL URL.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sweeps.engine.storage.urls import is_postgres, normalise
from sweeps.masking import mask

DEFAULT_PORT = 6432
DEFAULT_POOL_SIZE = 20
"""Server connections per database and user: a fifth of PostgreSQL's default 100, leaving the rest to the
MLflow server and to people; 20 held 256 bench workers without a wait longer than the objective."""

MAX_CLIENTS = 10_000
"""Workers (each holding a few client connections) PgBouncer accepts; each costs it one file descriptor."""

START_TIMEOUT_S = 10.0

_UNPRIVILEGED = "nobody"
"""PgBouncer refuses to run as root; as root (a container) it runs as this user."""


class ProxyError(ValueError):
    """The storage proxy cannot start: what is wrong, in one line."""


@dataclass(frozen=True)
class RunningProxy:
    """A started PgBouncer: ``url`` is what workers pass as ``--storage``."""

    url: str
    process: subprocess.Popen[bytes]

    def wait(self) -> int:
        """Block until PgBouncer exits (it does not by itself); its exit code."""
        return self.process.wait()


@contextmanager
def storage_proxy(
    url: str,
    *,
    listen: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    pool_size: int = DEFAULT_POOL_SIZE,
    advertise: str | None = None,
) -> Iterator[RunningProxy]:
    """Run PgBouncer for the PostgreSQL at ``url`` while the block runs; yields it, with the URL workers use.

    ``listen`` is the address PgBouncer binds (``0.0.0.0`` for workers on other machines), ``advertise`` the
    host name put in the yielded URL (default: ``listen``, or this machine's name when that is ``0.0.0.0``).
    Refused with ``ProxyError`` before anything starts: a URL that is not PostgreSQL, one without a password
    for a proxy reachable from other machines (it would let anyone there in as that user), no ``pgbouncer``
    installed, a port already taken.
    """
    from sqlalchemy.engine import make_url

    url = normalise(url)
    if not is_postgres(url):
        raise ProxyError(f"the storage proxy is for PostgreSQL; {mask(url)} is not a postgresql:// URL")
    if not make_url(url).password and listen not in ("127.0.0.1", "localhost", "::1"):
        raise ProxyError(
            f"{mask(url)} has no password: a proxy listening on {listen} would let anyone who reaches it in"
            " as that user; give the database user a password and put it in the URL"
        )
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        raise ProxyError("pgbouncer is not installed (Debian/Ubuntu: apt-get install pgbouncer)")
    if not _port_free(listen, port):
        raise ProxyError(f"port {port} on {listen} is taken; choose another with --port")
    with tempfile.TemporaryDirectory(prefix="sweeps-pgbouncer-") as folder:
        config, user = _write_config(Path(folder), url, listen, port, pool_size)
        log = Path(folder) / "pgbouncer.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                [binary, *(["-u", user] if user else []), str(config)],
                stdout=subprocess.DEVNULL,
                stderr=output,
            )
        try:
            _wait_listening(process, listen, port, log)
            host = advertise or (socket.getfqdn() if listen == "0.0.0.0" else listen)
            proxied = make_url(url).set(host=host, port=port).render_as_string(hide_password=False)
            yield RunningProxy(proxied, process)  # user, password and database kept
        finally:
            process.terminate()
            try:
                process.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def proxy_for(url: str, remote: bool) -> tuple[str, Callable[[], None]]:
    """Start the storage proxy for a launching command: the URL its workers use, and what stops it.
    ``remote``: workers on other machines, so it listens on every address and the URL names this machine."""
    from sweeps.engine.servers import check_storage

    proxy = ExitStack()
    try:
        started = proxy.enter_context(storage_proxy(url, listen="0.0.0.0" if remote else "127.0.0.1"))
        check_storage(started.url)
    except BaseException:
        proxy.close()
        raise
    return started.url, proxy.close


def _write_config(folder: Path, url: str, listen: str, port: int, pool_size: int) -> tuple[Path, str | None]:
    """PgBouncer's ini and user list in ``folder`` (readable only by the user it runs as); returns the ini
    and that user when it must be switched to (running as root)."""
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    user = parts.username or pwd.getpwuid(os.getuid()).pw_name
    password = parts.password or ""
    users = folder / "users.txt"
    users.write_text(f'"{_quoted(user)}" "{_quoted(password)}"\n')
    config = folder / "pgbouncer.ini"
    config.write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={parts.host or '127.0.0.1'} port={parts.port or 5432}",
                "[pgbouncer]",
                f"listen_addr = {listen}",
                f"listen_port = {port}",
                "unix_socket_dir =",
                # md5 also accepts a plain password from the user list; no password: the server trusts us
                f"auth_type = {'md5' if password else 'trust'}",
                f"auth_file = {users}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                f"max_client_conn = {MAX_CLIENTS}",
                "ignore_startup_parameters = extra_float_digits,options",
                "log_connections = 0",  # two lines per worker connection would flood the log at scale
                "log_disconnections = 0",
                "",
            ]
        )
    )
    switch = _UNPRIVILEGED if os.geteuid() == 0 else None
    for path in (folder, users, config):
        if switch:
            shutil.chown(path, user=switch)
        path.chmod(0o700 if path.is_dir() else 0o600)
    return config, switch


def _quoted(text: str) -> str:
    return text.replace('"', '""')


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _wait_listening(process: subprocess.Popen[bytes], host: str, port: int, log: Path) -> None:
    """Return once PgBouncer accepts connections; its own last line if it exits first."""
    target = "127.0.0.1" if host == "0.0.0.0" else host
    ends = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < ends:
        if process.poll() is not None:
            lines = log.read_text().strip().splitlines()
            raise ProxyError(f"pgbouncer exited with {process.returncode}: {lines[-1] if lines else ''}")
        try:
            socket.create_connection((target, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise ProxyError(f"pgbouncer did not listen on {host}:{port} within {START_TIMEOUT_S:g} s")
