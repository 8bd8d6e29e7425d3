"""The Docker stack's topology without Docker: a real ``mlflow server`` on PostgreSQL serving the artifacts,
the study in PostgreSQL, and ``sweeps worker`` processes joining it as they would from several machines.
Workers are killed, the tracking server restarted and the study database taken away mid-sweep; every trial
must still be recorded exactly once in Optuna and in MLflow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from sweeps.engine.storage.rdb import load_study, open_storage
from sweeps.names import WORKER_ATTR
from sweeps.tools.ui import MLFLOW_SERVER_FLAGS
from tests.sweeps.helpers import (
    HEARTBEATS,
    QUICK_GRACE_S,
    check_recorded_once,
    database_url,
    free_ports,
    fresh_database,
    small_sweep_spec,
    take_down,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
]

WORKER_ENV = HEARTBEATS | {"SWEEPS_RECONNECT_TIMEOUT": "180"}
"""A killed worker's trial is found stale within seconds; a blip is waited out for up to three minutes."""


@dataclass
class TrackingServer:
    """``mlflow server`` on its own PostgreSQL database, storing artifacts that clients upload through it."""

    database: str
    artifacts: Path
    log: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--backend-store-uri", database_url(self.database), *MLFLOW_SERVER_FLAGS]
        command += ["--artifacts-destination", str(self.artifacts), "--serve-artifacts"]
        env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # as compose.yaml and sweeps ui
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2).read()
                return
            except OSError:
                assert time.monotonic() < deadline, f"no /health: {self.log.read_text()[-3000:]}"
                time.sleep(0.2)

    def stop(self) -> None:
        """What a restart does to it: SIGTERM, in-flight requests answered, then the port closed."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    folder = tmp_path_factory.mktemp("tracking")
    (port,) = free_ports(1)
    with fresh_database("sweeps_mlflow") as database:
        server = TrackingServer(database, folder / "artifacts", folder / "server.log", port)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@dataclass
class Sweep:
    """A sweep created by ``sweeps run --workers 0``, with ``sweeps worker`` processes joining it."""

    name: str
    storage: str
    folder: Path
    workers: dict[int, subprocess.Popen]

    def join(self, index: int) -> subprocess.Popen:
        command = [sys.executable, "-m", "sweeps", "worker", "--study", self.name, "--storage", self.storage]
        with (self.folder / f"worker-{index}.log").open("a") as log:
            self.workers[index] = subprocess.Popen(
                [*command, "--index", str(index), "--threads", "1"],
                cwd=self.folder,
                env=os.environ | WORKER_ENV,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.workers[index]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.folder.glob("*.log")))

    def study(self) -> optuna.Study:
        return load_study(open_storage(self.storage, heartbeat=False), self.name)

    def wait_for(self, running: Callable[[FrozenTrial], bool], timeout: float = 240) -> FrozenTrial:
        """The first RUNNING trial that ``running`` accepts, once it has its MLflow run (it is training)."""
        deadline = time.monotonic() + timeout
        study = self.study()
        while True:
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if "mlflow_run_id" in trial.user_attrs and running(trial):
                    return trial
            assert time.monotonic() < deadline, self.logs()
            assert all(p.poll() is None for p in self.workers.values()), self.logs()
            time.sleep(0.2)

    def finish(self, timeout: float = 400) -> optuna.Study:
        for process in self.workers.values():
            process.wait(timeout=timeout)
        assert [p.returncode for p in self.workers.values()] == [0] * len(self.workers), self.logs()
        return self.study()


@pytest.fixture
def sweep(
    request: pytest.FixtureRequest, tracking_server: TrackingServer, tmp_path: Path, write_idx_dataset
) -> Iterator[Sweep]:
    """A 2-epoch sweep of ``request.param`` trials in a fresh study database, created but not yet run."""
    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=64)
    with fresh_database("sweeps_study") as database:
        name = f"stack-{database[-10:]}"
        spec = small_sweep_spec(tmp_path, tmp_path / "data", name=name, n_trials=request.param)
        storage = database_url(database)
        created = subprocess.run(
            [sys.executable, "-m", "sweeps", "run", str(spec), "--workers", "0"]
            + ["--storage", storage, "--tracking-uri", tracking_server.uri],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        running = Sweep(name, storage, tmp_path, {})
        try:
            yield running
        finally:
            for process in running.workers.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()


def trials_of(study: optuna.Study, state: TrialState) -> list[FrozenTrial]:
    """Trials in ``state`` that ran (an over-budget trial, which lost a race for the last queued one, has no
    MLflow run and is not counted)."""
    return [t for t in study.get_trials(deepcopy=False, states=(state,)) if "mlflow_run_id" in t.user_attrs]


def check_artifacts_went_through_the_server(
    study: optuna.Study, server: TrackingServer, complete: list[FrozenTrial]
) -> None:
    client = MlflowClient(server.uri)
    for trial in complete:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
        stored = server.artifacts / run.info.experiment_id / run.info.run_id / "artifacts" / "config.yaml"
        assert stored.is_file()


@pytest.mark.parametrize("sweep", [6], indirect=True)
def test_a_worker_killed_mid_trial_and_restarted_loses_nothing(
    sweep: Sweep, tracking_server: TrackingServer
) -> None:
    victim = sweep.join(0)
    sweep.join(1)
    killed = sweep.wait_for(lambda t: t.user_attrs.get("worker", "").endswith(f":{victim.pid}"))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    sweep.join(0)  # the machine comes back and its worker rejoins the sweep
    study = sweep.finish()

    check_recorded_once(study, tracking_server.uri, expected=6)
    (failed,) = trials_of(study, TrialState.FAIL)
    assert failed.number == killed.number
    trials = study.get_trials(deepcopy=False)
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == failed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == failed.params
    lost = MlflowClient(tracking_server.uri).get_run(failed.user_attrs["mlflow_run_id"])
    assert lost.info.status == "FAILED" and "heartbeat" in lost.data.tags["sweeps.reason"]
    check_artifacts_went_through_the_server(study, tracking_server, trials_of(study, TrialState.COMPLETE))
    parent = MlflowClient(tracking_server.uri).get_run(study.user_attrs["sweeps.parent_run_id"])
    assert parent.info.status == "FINISHED"  # ended by the last worker, with no launcher
    stored = server_checkpoints(tracking_server, parent)
    assert stored == {study.best_trial.user_attrs["sweeps.checkpoint"]}, stored  # the best's alone is kept
    assert "model" in {a.path for a in MlflowClient(tracking_server.uri).list_artifacts(best_run(study))}


def server_checkpoints(server: TrackingServer, parent) -> set[str]:
    """The trial keys whose checkpoints the server stores, read from its artifact folder."""
    folder = server.artifacts / parent.info.experiment_id / parent.info.run_id / "artifacts" / "checkpoints"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def best_run(study: optuna.Study) -> str:
    return study.best_trial.user_attrs["mlflow_run_id"]


@pytest.mark.parametrize("sweep", [4], indirect=True)
def test_a_sweep_outlives_a_tracking_server_restart_and_a_database_outage(
    sweep: Sweep, tracking_server: TrackingServer
) -> None:
    sweep.join(0)
    sweep.join(1)
    first = sweep.wait_for(lambda t: True)
    # both workers past their start checks: a trial of each (one worker may run two before the other starts)
    second = sweep.wait_for(lambda t: t.user_attrs[WORKER_ATTR] != first.user_attrs[WORKER_ATTR])
    stopped = datetime.now()
    tracking_server.stop()
    time.sleep(2)
    tracking_server.start()  # meanwhile the workers' MLflow calls wait in MLflow's own retries
    restarted = datetime.now()
    sweep.wait_for(lambda t: t.number not in (first.number, second.number))
    take_down(sweep.storage.rsplit("/", 1)[1], QUICK_GRACE_S + 2).join()  # longer than the heartbeat grace
    study = sweep.finish()

    check_recorded_once(study, tracking_server.uri, expected=4)
    complete = trials_of(study, TrialState.COMPLETE)
    assert [t for t in complete if t.datetime_start < stopped and t.datetime_complete > restarted]
    assert trials_of(study, TrialState.FAIL) == [], sweep.logs()
    assert "is not currently accepting connections" in sweep.logs()  # the workers saw the database go
    assert "View run" not in sweep.logs()  # MLflow's link to each run it ends is noise in a worker's log
    check_artifacts_went_through_the_server(study, tracking_server, trials_of(study, TrialState.COMPLETE))


def test_passwords_in_the_urls_never_leave_them(
    tracking_server: TrackingServer, tmp_path: Path, write_idx_dataset
) -> None:
    """Storage and tracking URLs with passwords (the servers here accept any): none appears in the terminal,
    the worker's log, the study's attrs or the MLflow records, and the printed join command works as pasted
    once the variables it names are set."""
    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=64)
    with fresh_database("sweeps_secret") as database:
        storage = database_url(database).replace("postgres@", "postgres:hunter2@")
        tracking = tracking_server.uri.replace("http://", "http://sweeps:hunter2@")
        spec = small_sweep_spec(tmp_path, tmp_path / "data", name="secret", n_trials=1, epochs=1)
        created = subprocess.run(
            [sys.executable, "-m", "sweeps", "run", str(spec), "--workers", "0"]
            + ["--storage", storage, "--tracking-uri", tracking],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        printed = " ".join(created.stdout.split())
        assert "join with: sweeps worker --study secret" in printed
        assert "$SWEEPS_STORAGE and $MLFLOW_TRACKING_URI set" in printed

        env = os.environ | WORKER_ENV | {"SWEEPS_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking}
        worker = subprocess.run(
            [sys.executable, "-m", "sweeps", "worker", "--study", "secret"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert worker.returncode == 0, worker.stdout + worker.stderr
        study = load_study(open_storage(database_url(database), heartbeat=False), "secret")
        assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.COMPLETE]

        client = MlflowClient(tracking_server.uri)
        runs = client.search_runs([study.user_attrs["sweeps.experiment_id"]])
        recorded = [created.stdout, created.stderr, worker.stdout, worker.stderr, repr(study.user_attrs)]
        recorded += [repr(t.user_attrs) + repr(t.system_attrs) for t in study.get_trials(deepcopy=False)]
        for run in runs:
            recorded += [repr(run.data.params), repr(run.data.tags)]
            for artifact in client.list_artifacts(run.info.run_id):
                if not artifact.is_dir:
                    recorded.append(
                        Path(
                            client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path))
                        ).read_text()
                    )
        assert len(runs) == 2 and not [text for text in recorded if "hunter2" in text]
        assert "sweeps:***@" in study.user_attrs["sweeps.tracking_uri"]
