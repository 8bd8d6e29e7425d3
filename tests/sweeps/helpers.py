"""Helpers shared by the service tests: paths, the CLI runner, reading an MLflow store back, and PostgreSQL
databases of a test's own (which a test may take down without disturbing the others)."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from models.data.files import DEBIAN_FASHION_MNIST_DIR
from tests.tiers import slow_helper

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
TRAIN_YAML = CONF / "train.yaml"

HAS_FASHION_MNIST = all(
    (DEBIAN_FASHION_MNIST_DIR / f"{name}.gz").is_file()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
)
needs_fashion_mnist = pytest.mark.skipif(
    not HAS_FASHION_MNIST,
    reason=f"Fashion-MNIST not in {DEBIAN_FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)",
)


def tiny(folder: Path, *overrides: str) -> list[str]:
    """Overrides for a fast run on the ``tiny_data`` fixture's folder: 2 epochs on the CPU."""
    return [
        "data.name=mnist",
        f"data.dir={folder}",
        "data.download=false",
        "trainer.max_epochs=2",
        "trainer.accelerator=cpu",
        *overrides,
    ]


SMALL_SWEEP = {
    "data": {"name": "mnist", "train_subset": 192, "holdout_size": 64},
    "trainer": {"max_epochs": 2},
    "study": {"name": "e2e", "sampler": "random", "pruner": "none", "n_trials": 6},
    "search": {
        "optimizer": ["sgd", "momentum", "adam"],
        "lr": {"low": 1.0e-3, "high": 0.1, "log": True},
        "momentum": {"low": 0.5, "high": 0.95},
        "batch_size": [32, 64],
    },
}
"""A sweep of seconds per trial on the tiny IDX data (``write_idx_dataset`` with 256 train images)."""


FINISHED_SWEEP = [
    "data.name=mnist",
    "data.train_subset=192",
    "data.holdout_size=64",
    "trainer.max_epochs=2",
    "study.n_trials=2",
    "study.retrain_seeds=3",
    "search.optimizer=[sgd, momentum, adam]",
]
"""``conf/shootout.yaml`` shrunk for the ``finished_sweep`` fixture (study ``shootout``): 3 optimizers × 2
search trials, then each one's default and tuned config on 3 seeds."""


def small_sweep_spec(folder: Path, data_dir: Path, epochs: int = 2, **study: object) -> Path:
    """``folder/sweep.yaml``: ``SMALL_SWEEP`` on ``data_dir``, with ``study`` keys overridden."""
    spec = {
        **SMALL_SWEEP,
        "data": {**SMALL_SWEEP["data"], "dir": str(data_dir)},
        "study": {**SMALL_SWEEP["study"], **study},
        "trainer": {"max_epochs": epochs},
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on loopback now (all held open while picking, so none repeats)."""
    probes = [socket.socket() for _ in range(n)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


OUTSIDE_ENV = ("MLFLOW_TRACKING_URI", "SWEEPS_STORAGE")
"""Where a developer's shell may point at real stores; tests and their processes run without them."""


@slow_helper
def sweeps_process(*args: str, cwd: Path, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen:
    """``python -m sweeps ARGS`` as a real process, stdout and stderr merged into one text pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps", *args],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k not in OUTSIDE_ENV} | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def running_trials(database: Path) -> int:
    """RUNNING trials in a study file, read only: opening it as an Optuna storage while the launcher still
    writes the schema would race it (both insert the schema version)."""
    if not database.exists():
        return 0
    read_only = f"{database.as_uri()}?mode=ro"
    with contextlib.suppress(sqlite3.OperationalError), closing(sqlite3.connect(read_only, uri=True)) as db:
        return db.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]
    return 0  # the trials table is not written yet


QUICK_GRACE_S = 8
HEARTBEATS = {"SWEEPS_HEARTBEAT_INTERVAL": "1", "SWEEPS_GRACE_PERIOD": str(QUICK_GRACE_S)}
"""For worker processes of tests that kill one: a beat every second, a killed worker's trial stale after 8 s
of silence. The grace outlasts a live worker's beat delayed by a loaded machine or a lock wait (3 s did
not); a test waits for a dead trial to be stale with ``wait_until_stale``, never for a fixed time."""


def wait_until_stale(database: Path, timeout: float = 120) -> None:
    """Until a RUNNING trial in the study file ``database`` has been silent for longer than
    ``QUICK_GRACE_S`` by the database's own clock, as Optuna judges it (read only)."""
    silent = (
        "SELECT count(*) FROM trials JOIN trial_heartbeats USING (trial_id) WHERE state = 'RUNNING'"
        " AND (julianday('now') - julianday(heartbeat)) * 86400 > ?"
    )
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
        wait_for(lambda: db.execute(silent, (QUICK_GRACE_S + 1,)).fetchone()[0] > 0, timeout)


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    """Until ``condition()`` holds, polled every 0.1 s: a test waits for the event, not for a fixed time
    that a loaded machine may overrun. Fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.1)


def check_recorded_once(study: Any, tracking: str, expected: int) -> None:
    """``expected`` COMPLETE trials, none left RUNNING or WAITING; in MLflow one child run per trial, FINISHED
    with its two epochs of curves for each COMPLETE one, none RUNNING, and the best trial on the parent."""
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    states = [
        (t.number, t.state.name, t.system_attrs.get("failed_trial"), t.user_attrs.get("worker"))
        for t in trials
    ]
    assert len(complete) == expected, states
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], states
    client = MlflowClient(tracking)
    parent = study.user_attrs["sweeps.parent_run_id"]
    children = client.search_runs(
        [study.user_attrs["sweeps.experiment_id"]], f"tags.mlflow.parentRunId = '{parent}'", max_results=1000
    )
    by_trial = {}
    for run in children:
        by_trial.setdefault(run.data.tags["sweeps.trial"], []).append(run)
    assert all(len(runs) == 1 for runs in by_trial.values()), "a trial was recorded twice in MLflow"
    for t in complete:
        (run,) = by_trial[str(t.number)]
        assert run.info.status == "FINISHED"
        assert run.data.tags["sweeps.trial_state"] == "COMPLETE"
        assert run.data.params["optimizer"] == t.params["optimizer"]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2]
        if t.params["optimizer"] == "adam":
            assert not any(k.endswith("momentum") for k in t.params)
    assert not [r for r in children if r.info.status == "RUNNING"]
    assert client.get_run(parent).data.tags["best.trial"] in {str(t.number) for t in complete}


def logged_model(tracking: str, run_id: str) -> Any:
    """A run's model loaded as a user loads it, ``mlflow.pytorch.load_model("runs:/<id>/model")``, with
    ``tracking`` as MLflow's tracking URI meanwhile (an in-process run before may have set another)."""
    import mlflow.pytorch

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking)
    try:
        return mlflow.pytorch.load_model(f"runs:/{run_id}/model")
    finally:
        mlflow.set_tracking_uri(before)


def invoke(*args: str) -> Result:
    """Run the real ``sweeps`` Typer app in this process; ``stdout`` and ``stderr`` are kept apart."""
    from sweeps.cli import app

    return CliRunner().invoke(app, list(args))


def squash(text: str) -> str:
    """``text`` without whitespace: rich wraps long lines (paths included) at the console width."""
    return "".join(text.split())


@dataclass(frozen=True)
class Store:
    """An MLflow SQLite store, read back with the real ``MlflowClient``."""

    database: Path
    client: Any  # mlflow.MlflowClient (mlflow is imported lazily: it takes seconds)

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.database}"

    def runs(self, experiment: str | None = None) -> list[Any]:
        """Every run of ``experiment`` (default: of every experiment)."""
        experiments = self.client.search_experiments()
        ids = [e.experiment_id for e in experiments if experiment is None or e.name == experiment]
        return list(self.client.search_runs(ids)) if ids else []

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of every logged value of metric ``key``, by step."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))


def open_store(database: Path) -> Store:
    import mlflow

    return Store(database, mlflow.MlflowClient(f"sqlite:///{database}"))


def run_count(database: Path) -> int:
    """Runs in an MLflow SQLite file, 0 when the file does not exist."""
    return len(open_store(database).runs()) if database.exists() else 0


# --- PostgreSQL databases of their own ---------------------------------------------------------------------

POSTGRES_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (tests using it are marked ``postgres``); yields its name, and drops
    it afterwards, whatever is still connected."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(database: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"


def take_down(database: str, seconds: float) -> threading.Thread:
    """Database ``database`` goes away for ``seconds``, as while its server restarts: open connections are
    cut at once and new ones refused until then. Other databases (other tests) are untouched. Returns the
    thread that brings it back; join it to wait for that."""
    import psycopg

    def allow(allowed: bool) -> None:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
            if not allowed:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                )

    allow(False)
    back = threading.Timer(seconds, allow, args=(True,))
    back.start()
    return back


def tampered_study(folder: Path, data_dir: Path, **model: Any) -> tuple[str, Any]:
    """A one-trial quickstart study in ``folder`` whose stored spec has ``model`` written over its model
    section, as anyone who can write the study database could; its storage URL and the study."""
    import json

    from sweeps.config.sweep import load_sweep
    from sweeps.engine.study import create
    from sweeps.names import SPEC_ATTR

    sweep = load_sweep(
        CONF / "quickstart.yaml",
        [f"data.dir={data_dir}", "data.name=mnist", "data.train_subset=128", "data.holdout_size=64"]
        + ["trainer.max_epochs=1", "study.n_trials=1", "search.optimizer=[momentum]"],
    )
    url = f"sqlite:///{folder / 'optuna.db'}"
    created = create(sweep, url, f"sqlite:///{folder / 'mlflow.db'}")
    spec = json.loads(created.user_attrs[SPEC_ATTR])
    spec["model"] |= model
    created.set_user_attr(SPEC_ATTR, json.dumps(spec))
    return url, created
