"""Study storage on real SQLite files and the real PostgreSQL: URLs, concurrent workers, killed workers."""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import optuna
import psycopg
import pytest
from optuna.trial import TrialState

from sweeps.engine.retry import RECONNECT_ENV
from sweeps.engine.storage.heartbeat import running_trial
from sweeps.engine.storage.rdb import StudyNotFoundError, create_study_once, load_study, open_storage
from sweeps.engine.storage.urls import STORAGE_ENV, storage_url
from sweeps.masking import mask
from sweeps.tools import storage_bench
from sweeps.workdir import DEFAULT_FOLDER, FOLDER_ENV, STUDIES
from tests.sweeps.helpers import POSTGRES_ADMIN, database_url, fresh_database, take_down, wait_for
from tests.tiers import slow_helper

POSTGRES_URL = database_url("test")
WORKERS = 8
TRIALS_PER_WORKER = 10
# Small heartbeat values for the killed-worker tests (seconds; Optuna wants integers). The grace is five
# beats: SQLite's CURRENT_TIMESTAMP has whole seconds, and a beat may be seconds late on a loaded machine.
BEAT, GRACE = 1, 5

KILLED_WORKER = f"""
import sys, time
from sweeps.engine.storage.heartbeat import running_trial
from sweeps.engine.storage.rdb import load_study, open_storage
study = load_study(open_storage(sys.argv[1], heartbeat_interval={BEAT}, grace_period={GRACE}), sys.argv[2])
with running_trial(study) as trial:
    x = trial.suggest_float("x", 0.0, 1.0)
    print(trial.number, repr(x), flush=True)
    time.sleep(600)
"""


@pytest.fixture
def study_name() -> str:
    return f"test-storage-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_url(study_name: str) -> Iterator[str]:
    """The test database (tests using it are marked ``postgres``, skipped by conftest when the server is
    unreachable); ``study_name`` is deleted afterwards."""
    yield POSTGRES_URL
    if study_name in optuna.get_all_study_names(POSTGRES_URL):
        optuna.delete_study(study_name=study_name, storage=POSTGRES_URL)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# --- URLs ---------------------------------------------------------------------------------------------------


def test_flag_beats_environment_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert storage_url() == f"sqlite:///{tmp_path.resolve() / STUDIES}"  # the tests' folder: SWEEPS_DIR=.
    monkeypatch.delenv(FOLDER_ENV)
    assert storage_url() == f"sqlite:///{tmp_path.resolve() / DEFAULT_FOLDER / STUDIES}"
    assert not (tmp_path / DEFAULT_FOLDER).exists()  # named only: a command that reads leaves nothing
    open_storage(storage_url(), heartbeat=False)  # opening makes the folder, which SQLite would not
    assert (tmp_path / DEFAULT_FOLDER / STUDIES).is_file()
    monkeypatch.setenv(STORAGE_ENV, "sqlite:////srv/env.db")
    assert storage_url() == "sqlite:////srv/env.db"
    assert storage_url("sqlite:////srv/flag.db") == "sqlite:////srv/flag.db"


def test_relative_sqlite_paths_become_absolute(tmp_path: Path) -> None:
    assert storage_url("sqlite:///runs/s.db") == f"sqlite:///{tmp_path.resolve() / 'runs' / 's.db'}"
    assert storage_url("sqlite:///~/s.db") == f"sqlite:///{Path.home().resolve() / 's.db'}"
    assert storage_url("sqlite:////abs/s.db") == "sqlite:////abs/s.db"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw@db.example:5432/sweeps",
        "postgres://u:pw@db.example:5432/sweeps",
        "postgresql+psycopg://u:pw@db.example:5432/sweeps",
    ],
)
def test_postgres_urls_use_psycopg_3(url: str) -> None:
    assert storage_url(url) == "postgresql+psycopg://u:pw@db.example:5432/sweeps"


@pytest.mark.parametrize(
    "url",
    ["mysql://u:hunter2@db.example/sweeps", "postgresql+psycopg2://u:hunter2@db.example/sweeps", "sqlite://"],
)
def test_unknown_schemes_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported storage URL") as refused:
        storage_url(url)
    assert "hunter2" not in str(refused.value)
    assert url.split("://")[0] in str(refused.value)
    with pytest.raises(ValueError, match="unsupported storage URL"):
        open_storage(url)


def test_mask_hides_the_password() -> None:
    assert mask("postgresql+psycopg://u:hunter2@db:5432/x") == "postgresql+psycopg://u:***@db:5432/x"
    assert mask("sqlite:////abs/optuna.db") == "sqlite:////abs/optuna.db"


# --- creating and loading studies ---------------------------------------------------------------------------


def test_create_study_once_creates_then_resumes(tmp_path: Path) -> None:
    storage = open_storage(sqlite_url(tmp_path))
    study, new = create_study_once(storage, "s", ["maximize"], user_attrs={"parent_run_id": "first"})
    assert new
    study.enqueue_trial({"x": 0.5})
    again, new = create_study_once(storage, "s", ["maximize"], user_attrs={"parent_run_id": "second"})
    assert not new
    assert again._study_id == study._study_id
    assert again.user_attrs == {"parent_run_id": "first"}
    assert len(again.trials) == 1
    with pytest.raises(ValueError, match=r"exists with directions \['maximize'\]"):
        create_study_once(storage, "s", ["minimize"])


@pytest.mark.parametrize("pickled", [False, True], ids=["opened", "unpickled"])
def test_sqlite_transactions_take_the_write_lock_before_they_read(tmp_path: Path, pickled: bool) -> None:
    storage = open_storage(sqlite_url(tmp_path))
    if pickled:
        storage = pickle.loads(pickle.dumps(storage))
    other = sqlite3.connect(tmp_path / "optuna.db", timeout=0)
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with storage.engine.connect() as connection:
        connection.exec_driver_sql("SELECT count(*) FROM studies")
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # released at the end of the transaction
    other.close()


def test_load_study_names_the_missing_study_and_those_there_are(tmp_path: Path) -> None:
    storage = open_storage(sqlite_url(tmp_path))
    with pytest.raises(StudyNotFoundError, match="no study 'nope' in sqlite:///.*it holds no study"):
        load_study(storage, "nope")
    for name in ("alpha", "beta"):
        create_study_once(storage, name, ["minimize"])
    with pytest.raises(StudyNotFoundError, match="no study 'nope' in .*; studies there: alpha, beta"):
        load_study(storage, "nope")


@pytest.mark.postgres
def test_load_study_error_masks_the_postgres_password(postgres_url: str, study_name: str) -> None:
    # trust authentication ignores the password, so the URL works and only the message can leak it
    storage = open_storage(postgres_url.replace("postgres@", "postgres:hunter2@"), heartbeat=False)
    with pytest.raises(
        StudyNotFoundError, match=f"no study '{study_name}' in .*postgres:\\*\\*\\*@"
    ) as missing:
        load_study(storage, study_name)
    assert "hunter2" not in str(missing.value)


# --- concurrent workers -------------------------------------------------------------------------------------


def _ask_and_tell(url: str, name: str, n_trials: int, results: multiprocessing.Queue) -> None:
    """A sweep worker in miniature: its own storage, the existing study, ask → objective → tell (the random
    sampler keeps the CPU on the storage)."""
    try:
        study = load_study(open_storage(url), name, sampler=optuna.samplers.RandomSampler())
        numbers = []
        for _ in range(n_trials):
            with running_trial(study) as trial:
                x = trial.suggest_float("x", 0.0, 1.0)
            study.tell(trial, x)
            numbers.append(trial.number)
        results.put(numbers)
    except BaseException:
        results.put(traceback.format_exc())
        raise


@slow_helper
def _run_workers(url: str, name: str) -> list[int]:
    """Create the study once, queue half the trials as WAITING (what retries do), run the workers at once."""
    study, _ = create_study_once(open_storage(url), name, ["minimize"])
    for i in range(WORKERS * TRIALS_PER_WORKER // 2):
        study.enqueue_trial({"x": i / 100})
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_ask_and_tell, args=(url, name, TRIALS_PER_WORKER, results))
        for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    failures = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert not failures, failures[0]
    assert [worker.exitcode for worker in workers] == [0] * WORKERS
    trials = study.get_trials(deepcopy=False)
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * WORKERS * TRIALS_PER_WORKER
    return [number for outcome in outcomes for number in outcome]


def test_eight_workers_on_the_embedded_default_record_every_trial_once(study_name: str) -> None:
    told = _run_workers(storage_url(), study_name)
    assert sorted(told) == list(range(WORKERS * TRIALS_PER_WORKER))


@pytest.mark.postgres
def test_eight_workers_on_postgres_record_every_trial_once(postgres_url: str, study_name: str) -> None:
    told = _run_workers(postgres_url, study_name)
    assert sorted(told) == list(range(WORKERS * TRIALS_PER_WORKER))


# --- killed workers and database blips ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_workers_trial_is_failed_and_retried_with_its_params(
    backend: str, tmp_path: Path, study_name: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else sqlite_url(tmp_path)
    study, _ = create_study_once(
        open_storage(url, heartbeat_interval=BEAT, grace_period=GRACE), study_name, ["minimize"]
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, url, study_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = worker.stdout.readline()
        assert line, worker.communicate()[1]
        number, x = int(line.split()[0]), float(line.split()[1])

        time.sleep(GRACE + 1)  # a live worker keeps beating: past the grace its trial is still not stale
        optuna.storages.fail_stale_trials(study)
        assert study.trials[number].state == TrialState.RUNNING
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate()

    deadline = time.monotonic() + GRACE + 30
    while study.trials[number].state == TrialState.RUNNING and time.monotonic() < deadline:
        optuna.storages.fail_stale_trials(study)
        time.sleep(0.25)
    trials = study.trials
    assert trials[number].state == TrialState.FAIL
    [retry] = [trial for trial in trials if trial.state == TrialState.WAITING]
    assert retry.params == {"x": x}
    assert retry.system_attrs["failed_trial"] == number

    with running_trial(study) as trial:  # the next trial any worker starts is the retry
        assert trial.number == retry.number
        assert trial.suggest_float("x", 0.0, 1.0) == x
    study.tell(trial, x)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]


@pytest.mark.postgres
def test_a_worker_survives_postgres_dropping_its_connections(postgres_url: str, study_name: str) -> None:
    application = f"sweeps-test-{uuid.uuid4().hex[:8]}"
    study, _ = create_study_once(
        open_storage(f"{postgres_url}?application_name={application}"), study_name, ["minimize"]
    )
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        dropped = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (application,),
        ).fetchone()
    assert dropped is not None and dropped[0] >= 1
    with running_trial(study) as trial:
        x = trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, x)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


@pytest.mark.postgres
def test_a_storage_call_waits_for_its_database_to_come_back(caplog: pytest.LogCaptureFixture) -> None:
    with fresh_database("sweeps_blip") as database:
        study, _ = create_study_once(open_storage(database_url(database)), "s", ["minimize"])
        with running_trial(study) as trial:
            x = trial.suggest_float("x", 0.0, 1.0)
            started = time.monotonic()
            back = take_down(database, 3)
            with caplog.at_level(logging.WARNING, logger="sweeps.engine.retry"):
                study.tell(trial, x)
        back.join()
        assert time.monotonic() - started > 2.5
        assert "retrying in" in caplog.text and "not currently accepting connections" in caplog.text
        assert [(t.state, t.value) for t in study.trials] == [(TrialState.COMPLETE, x)]


@pytest.mark.postgres
def test_a_storage_gives_up_after_the_reconnect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RECONNECT_ENV, "2")
    with fresh_database("sweeps_blip") as database:
        study, _ = create_study_once(open_storage(database_url(database), heartbeat=False), "s", ["minimize"])
        back = take_down(database, 8)
        started = time.monotonic()
        with pytest.raises(optuna.exceptions.StorageInternalError):
            study.ask()
        assert time.monotonic() - started < 6
        back.join()


@pytest.mark.postgres
def test_after_an_outage_live_trials_get_time_to_beat_before_any_is_found_stale() -> None:
    """The database is away longer than the grace: every heartbeat was missed, none of its workers is dead.
    Failing stale trials right after it is back must not fail a trial whose worker was waiting too."""
    with fresh_database("sweeps_blip") as database:
        url = database_url(database)
        study, _ = create_study_once(
            open_storage(url, heartbeat_interval=2, grace_period=3), "s", ["minimize"]
        )
        with running_trial(study) as trial:
            take_down(database, 5).join()  # the beats at 2 s and 4 s fail; the last one recorded is 5 s old
            optuna.storages.fail_stale_trials(study)
            assert load_study(open_storage(url, heartbeat=False), "s").trials[0].state == TrialState.RUNNING
            study.tell(trial, 1.0)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE]


def test_a_failed_heartbeat_is_logged_and_beating_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "optuna.db"
    study, _ = create_study_once(
        open_storage(sqlite_url(tmp_path), heartbeat_interval=BEAT), "s", ["minimize"]
    )

    def last_beat() -> str:
        with sqlite3.connect(database) as connection:
            return connection.execute("SELECT heartbeat FROM trial_heartbeats").fetchone()[0]

    with (
        caplog.at_level(logging.WARNING, logger="sweeps.engine.storage.heartbeat"),
        running_trial(study) as trial,
    ):
        first = last_beat()
        with sqlite3.connect(database) as connection:  # the heartbeat table goes away until a beat fails
            connection.execute("ALTER TABLE trial_heartbeats RENAME TO away")
        wait_for(lambda: "heartbeat of trial id" in caplog.text)
        with sqlite3.connect(database) as connection:
            connection.execute("ALTER TABLE away RENAME TO trial_heartbeats")
        wait_for(lambda: last_beat() > first)
    study.tell(trial, 0.0)
    assert "heartbeat of trial id" in caplog.text
    assert "no such table: trial_heartbeats" in caplog.text


def test_a_trial_whose_first_beat_is_lost_still_runs_and_is_beaten(tmp_path: Path) -> None:
    """The database goes away between taking a trial and its first beat: the trial was taken, so the worker
    runs it (no error) and the thread beats it once the database is back."""
    database = tmp_path / "optuna.db"
    study, _ = create_study_once(
        open_storage(sqlite_url(tmp_path), heartbeat_interval=BEAT), "s", ["minimize"]
    )
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE trial_heartbeats RENAME TO away")
    with running_trial(study, fail_stale=False) as trial:
        with sqlite3.connect(database) as connection:
            connection.execute("ALTER TABLE away RENAME TO trial_heartbeats")

        def beaten() -> bool:
            with sqlite3.connect(database) as connection:
                return connection.execute("SELECT count(*) FROM trial_heartbeats").fetchone()[0] == 1

        wait_for(beaten)
        study.tell(trial, 0.0)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]


def test_one_heartbeat_thread_beats_for_all_of_a_workers_running_trials(tmp_path: Path) -> None:
    """A pack of 16 trials: one thread, every trial's heartbeat kept fresh; the thread ends with the last."""
    database = tmp_path / "optuna.db"
    study, _ = create_study_once(
        open_storage(sqlite_url(tmp_path), heartbeat_interval=BEAT), "s", ["minimize"]
    )

    def beats() -> dict[int, str]:
        with sqlite3.connect(database) as connection:
            return dict(connection.execute("SELECT trial_id, heartbeat FROM trial_heartbeats").fetchall())

    def beating() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name == "heartbeat"]

    with ExitStack() as stack:
        trials = [stack.enter_context(running_trial(study, fail_stale=False)) for _ in range(16)]
        assert len(beating()) == 1
        first = beats()
        time.sleep(BEAT * 2.5)
        later = beats()
        assert len(first) == len(later) == 16
        assert all(later[trial] > first[trial] for trial in first)
        for trial in trials:
            study.tell(trial, 0.0)
    deadline = time.monotonic() + 5
    while beating() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert beating() == []


# --- the bench ----------------------------------------------------------------------------------------------


def test_storage_bench_counts_every_trial_once(tmp_path: Path) -> None:
    load = storage_bench.Load(workers=2, trials=8)
    results = storage_bench.run(["journal", "sqlite"], load, tmp_path)
    assert all(result.ok for result in results)
    rows = [line.split() for line in storage_bench.summary(results, load).splitlines()[3:5]]
    assert [(row[0], row[3], row[-1]) for row in rows] == [("journal", "8/8", "ok"), ("sqlite", "8/8", "ok")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_trial_taken_but_never_beaten_is_failed_and_retried(
    backend: str, tmp_path: Path, study_name: str, request: pytest.FixtureRequest
) -> None:
    """A worker took a queued trial but never beat it: the reply to its write was lost, so it took another,
    or it died at once. Once the grace is over the trial is failed and queued again, not RUNNING for ever."""
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else sqlite_url(tmp_path)
    storage = open_storage(url, heartbeat_interval=BEAT, grace_period=GRACE)
    study, _ = create_study_once(storage, study_name, ["minimize"])
    study.enqueue_trial({"x": 0.25})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ask() outside optimize(), on purpose: no heartbeat at all
        lost = study.ask()
    lost.suggest_float("x", 0.0, 1.0)

    optuna.storages.fail_stale_trials(study)
    assert study.trials[lost.number].state == TrialState.RUNNING  # within the grace: left alone
    deadline = time.monotonic() + GRACE + 30
    while study.trials[lost.number].state == TrialState.RUNNING and time.monotonic() < deadline:
        optuna.storages.fail_stale_trials(study)
        time.sleep(0.25)

    trials = study.trials
    assert trials[lost.number].state == TrialState.FAIL
    [retry] = [t for t in trials if t.state == TrialState.WAITING]
    assert retry.params == {"x": 0.25} and retry.system_attrs["failed_trial"] == lost.number


@pytest.mark.postgres
def test_a_read_whose_connection_dropped_mid_transaction_counts_as_a_lost_connection() -> None:
    """Optuna's trial read catches a dropped connection and runs a slower query in the same session, which
    SQLAlchemy refuses (``PendingRollbackError``) until the lost transaction is rolled back: a connection to
    wait for, not a bad statement that ends the worker. A rollback pending after a conflict stays an error."""
    import sqlalchemy
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import exc, orm

    from sweeps.engine.storage.reconnect import _lost_connection

    with fresh_database("sweeps_drop") as database:
        engine = sqlalchemy.create_engine(database_url(database))
        session = orm.Session(engine)
        pid = session.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with (
            pytest.raises(optuna.exceptions.StorageInternalError) as raised,
            _create_scoped_session(lambda: session),
        ):
            try:
                session.execute(sqlalchemy.text("SELECT 1"))
            except exc.OperationalError:  # as Optuna's read does: try another query
                session.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    assert isinstance(raised.value.__cause__, exc.PendingRollbackError)
    assert _lost_connection(raised.value)
    try:
        try:
            raise exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
        except exc.IntegrityError:
            raise exc.PendingRollbackError("a flush failed")  # noqa: B904 (raised while handling, as SQLAlchemy does)
    except exc.PendingRollbackError as conflict:
        assert not _lost_connection(conflict)
