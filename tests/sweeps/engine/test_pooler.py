"""The storage proxy on the real PgBouncer and PostgreSQL: many workers on a few server connections, every
trial once, a lost trial still failed and retried; what it refuses, and a proxy that is down."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.engine.storage.heartbeat import running_trial
from sweeps.engine.storage.pooler import DEFAULT_PORT, ProxyError, storage_proxy
from sweeps.engine.storage.rdb import create_study_once, load_study, open_storage
from sweeps.tools import storage_bench
from tests.sweeps.helpers import (
    check_recorded_once,
    database_url,
    free_ports,
    invoke,
    small_sweep_spec,
    sweeps_process,
)

POSTGRES_URL = database_url("test")


@pytest.fixture
def port() -> int:
    return free_ports(1)[0]


@pytest.fixture
def study_name() -> Iterator[str]:
    name = f"test-pooler-{uuid.uuid4().hex[:12]}"
    yield name
    if name in optuna.get_all_study_names(POSTGRES_URL):
        optuna.delete_study(study_name=name, storage=POSTGRES_URL)


def test_only_postgresql_is_proxied(port: int) -> None:
    with pytest.raises(ProxyError, match="is for PostgreSQL"), storage_proxy("sqlite:///x.db", port=port):
        pass


def test_a_proxy_for_other_machines_needs_a_password(port: int) -> None:
    with (
        pytest.raises(ProxyError, match="has no password"),
        storage_proxy("postgresql://postgres@127.0.0.1:5432/test", listen="0.0.0.0", port=port),
    ):
        pass


@pytest.mark.postgres
def test_a_taken_port_is_refused_before_pgbouncer_starts(port: int) -> None:
    with (
        storage_proxy(POSTGRES_URL, port=port),
        pytest.raises(ProxyError, match=f"port {port}"),
        storage_proxy(POSTGRES_URL, port=port),
    ):
        pass


@pytest.mark.postgres
@pytest.mark.slow
def test_workers_beyond_the_pool_share_it_and_record_every_trial_once(tmp_path: Path, port: int) -> None:
    """24 workers, each with its own connection pool, through 2 server connections (a deadlock at start
    when a worker holds one while asking for a second, which Optuna's own schema check does)."""
    load = storage_bench.Load(24, 48, postgres_url=POSTGRES_URL, threads=12, proxy_port=port, pool_size=2)
    result = storage_bench.run_backend("pgbouncer", load, tmp_path)
    assert result.ok, result
    assert result.complete == 48 and result.duplicates == 0 and not result.errors
    assert result.peak_connections is not None and 1 <= result.peak_connections <= 2


@pytest.mark.postgres
@pytest.mark.slow
def test_a_lost_trial_behind_the_proxy_is_failed_and_retried(port: int, study_name: str) -> None:
    """Workers keep Optuna's heartbeats through PgBouncer: a trial whose worker stopped beating is failed
    by the next worker to ask, and queued again with its params."""
    with storage_proxy(POSTGRES_URL, port=port, pool_size=2) as proxy:
        study, _ = create_study_once(
            open_storage(proxy.url, heartbeat_interval=1, grace_period=2), study_name, ["minimize"]
        )
        lost = study.ask()  # taken and never beaten: its worker died in between
        x = lost.suggest_float("x", 0.0, 1.0)
        time.sleep(3)
        other = load_study(open_storage(proxy.url, heartbeat_interval=1, grace_period=2), study_name)
        with running_trial(other) as retried:
            other.tell(retried, retried.suggest_float("x", 0.0, 1.0))
    trials = load_study(open_storage(POSTGRES_URL, heartbeat=False), study_name).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == {"x": x}


@pytest.mark.postgres
def test_a_proxy_that_is_down_is_one_line_and_exit_2(port: int) -> None:
    with storage_proxy(POSTGRES_URL, port=port) as proxy:
        url = proxy.url
    result = invoke("status", "some-sweep", "--storage", url)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the study database" in lines[0] and f":{port}/" in lines[0]


@pytest.mark.postgres
@pytest.mark.slow
def test_storage_proxy_command_serves_until_ctrl_c(tmp_path: Path, port: int, study_name: str) -> None:
    process = sweeps_process(
        "storage-proxy", "--storage", POSTGRES_URL, "--port", str(port), "--pool-size", "2", cwd=tmp_path
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        assert f"127.0.0.1:{port}" in lines[0], lines
        url = lines[1].split("'")[1]
        study, _ = create_study_once(open_storage(url), study_name, ["minimize"])
        study.enqueue_trial({"x": 0.5})
        assert len(load_study(open_storage(POSTGRES_URL, heartbeat=False), study_name).trials) == 1
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "storage proxy stopped" in out
    with pytest.raises(subprocess.CalledProcessError):  # pgbouncer is gone with it
        subprocess.run(
            ["psql", f"host=127.0.0.1 port={port} user=postgres dbname=test", "-c", "select 1"],
            check=True,
            capture_output=True,
        )


def test_sweeps_run_refuses_a_storage_proxy_for_sqlite_before_creating_anything(
    tmp_path: Path, write_idx_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=64)
    spec = small_sweep_spec(tmp_path, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    result = invoke("run", str(spec), "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--storage-proxy")
    assert result.exit_code == 2 and "is for PostgreSQL" in result.stderr
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.postgres
@pytest.mark.slow
def test_sweeps_run_starts_the_proxy_for_its_workers_and_stops_it(tmp_path: Path, write_idx_dataset) -> None:
    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=64)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    spec = small_sweep_spec(tmp_path, tmp_path / "data", name=name, n_trials=4)
    proc = sweeps_process(
        "run", str(spec), "--workers", "2", "--storage", POSTGRES_URL, "--storage-proxy", cwd=tmp_path
    )
    out, _ = proc.communicate(timeout=600)
    storage = open_storage(POSTGRES_URL, heartbeat=False)
    try:
        assert proc.returncode == 0, out
        assert f"127.0.0.1:{DEFAULT_PORT}/test" in out  # the study as its workers reach it
        check_recorded_once(load_study(storage, name), f"sqlite:///{tmp_path / 'mlflow.db'}", expected=4)
    finally:
        optuna.delete_study(study_name=name, storage=storage)
    with socket.socket() as probe:  # the proxy stopped with the command
        assert probe.connect_ex(("127.0.0.1", DEFAULT_PORT)) != 0
