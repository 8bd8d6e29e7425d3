"""End to end: ``sweeps run`` with real worker processes, real Optuna storage and real MLflow runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweeps.config.sweep import load_sweep
from sweeps.engine.storage.rdb import open_storage
from sweeps.engine.study import create
from sweeps.workdir import LOGS
from tests.sweeps.helpers import (
    HEARTBEATS,
    REPO,
    check_recorded_once,
    database_url,
    invoke,
    logged_model,
    needs_fashion_mnist,
    running_trials,
    small_sweep_spec,
    squash,
    sweeps_process,
    wait_until_stale,
)

POSTGRES = database_url("test")


def test_two_workers_share_the_embedded_storage(finished_sweep: Path) -> None:
    """The shared sweep ran with ``--workers 2`` on its SQLite study: both search workers took trials (the
    retrains have workers of their own), and each trial is recorded once in MLflow (one child run of the
    sweep's, ended), none left running or waiting, all in the sweep's ``--tracking-uri``: none went where
    the shell's ``MLFLOW_TRACKING_URI``, which the workers inherit, points."""
    assert not (finished_sweep / "elsewhere.db").exists()
    study = optuna.load_study(study_name="shootout", storage=f"sqlite:///{finished_sweep / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    searched = [t for t in trials if t.user_attrs.get("sweeps.phase", "search") == "search"]
    assert len(searched) == 6 and len({t.user_attrs["worker"] for t in searched}) == 2
    client = MlflowClient(f"sqlite:///{finished_sweep / 'mlflow.db'}")
    parent = study.user_attrs["sweeps.parent_run_id"]
    children = client.search_runs(
        [study.user_attrs["sweeps.experiment_id"]], f"tags.mlflow.parentRunId = '{parent}'", max_results=1000
    )
    assert sorted(int(r.data.tags["sweeps.trial"]) for r in children) == [t.number for t in trials]
    assert {r.info.status for r in children} <= {"FINISHED", "KILLED"}  # a pruned trial's run: KILLED
    assert {r.info.run_id for r in children} == {t.user_attrs["mlflow_run_id"] for t in trials}


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_a_postgres_study(tmp_path: Path, write_idx_dataset) -> None:
    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=64)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    spec = small_sweep_spec(tmp_path, tmp_path / "data", name=name)
    with_password = POSTGRES.replace("postgres@", "postgres:hunter2@")  # trust auth ignores it
    proc = sweeps_process("run", str(spec), "--workers", "2", "--storage", with_password, cwd=tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "hunter2" not in out and "***" in out
    storage = open_storage(POSTGRES)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        check_recorded_once(study, f"sqlite:///{tmp_path / 'mlflow.db'}", expected=6)
        runs = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(
            [study.user_attrs["sweeps.experiment_id"]], max_results=100
        )
        assert not [r for r in runs if "hunter2" in repr(r.data.params) + repr(r.data.tags)]
        logs = "".join(p.read_text() for p in (tmp_path / LOGS).rglob("*.log"))
        assert "hunter2" not in logs
    finally:
        optuna.delete_study(study_name=name, storage=storage)


@pytest.mark.slow
def test_a_worker_killed_during_the_last_trial_still_gets_its_trial_run(
    tmp_path: Path, write_idx_dataset
) -> None:
    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=64)
    spec = small_sweep_spec(tmp_path, tmp_path / "data", n_trials=2)
    env = {"SWEEPS_HEARTBEAT_INTERVAL": "1", "SWEEPS_GRACE_PERIOD": "10"}
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    created = sweeps_process("run", str(spec), "--workers", "0", cwd=tmp_path, env=env)
    assert created.wait(timeout=300) == 0, created.communicate()[0]
    storage = open_storage(url, heartbeat=False)
    study = optuna.load_study(study_name="e2e", storage=storage)

    def running() -> list[optuna.trial.FrozenTrial]:
        return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "mlflow_run_id" in t.user_attrs]

    victim = sweeps_process("worker", "--study", "e2e", "--storage", url, cwd=tmp_path, env=env)
    deadline = time.time() + 400
    while not running():
        assert time.time() < deadline and victim.poll() is None
        time.sleep(0.1)
    # Killed mid-trial, not stopped: a stopped process may hold its SQLite lock for ever. The test beats for
    # its trial (below) while the survivor starts, however slowly.
    victim.kill()
    victim.wait()
    [lost] = running()
    survivor = sweeps_process("worker", "--study", "e2e", "--storage", url, cwd=tmp_path, env=env)
    while len(running()) < 2:  # the survivor runs the last trial of the budget
        storage.record_heartbeat(lost._trial_id)
        assert survivor.poll() is None, survivor.communicate()[0]  # its output, once it has ended
        assert time.time() < deadline
        time.sleep(0.5)
    [last] = [t for t in running() if t.number != lost.number]
    while study.get_trials(deepcopy=False)[last.number].state == TrialState.RUNNING:
        assert time.time() < deadline
        storage.record_heartbeat(lost._trial_id)  # as if it died only now: the survivor finds nothing waiting
        time.sleep(0.2)
    out, _ = survivor.communicate(timeout=600)

    assert survivor.returncode == 0, out
    trials = study.get_trials(deepcopy=False)
    [failed] = [t for t in trials if t.state == TrialState.FAIL]
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == failed.number]
    assert failed.number == lost.number and retry.state == TrialState.COMPLETE and retry.params == lost.params
    check_recorded_once(study, f"sqlite:///{tmp_path / 'mlflow.db'}", expected=2)


def test_a_pruned_trial_is_a_killed_child_run(tmp_path: Path, write_idx_dataset) -> None:
    """A pruner that prunes at the first report: the trial ends PRUNED, its run KILLED with the epoch."""
    from sweeps.config.sweep import load_sweep
    from sweeps.engine import study as sweep_study
    from sweeps.engine.objective import Objective

    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=32)
    sweep = load_sweep(
        small_sweep_spec(tmp_path, tmp_path / "data", name="prune", pruner="median", n_trials=1)
    )
    tracking, url = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    created = sweep_study.create(sweep, url, tracking)
    study = optuna.load_study(
        study_name="prune", storage=url, pruner=optuna.pruners.ThresholdPruner(lower=2.0)
    )
    attrs = created.user_attrs
    objective = Objective(
        sweep, tracking, attrs["sweeps.experiment_id"], attrs["sweeps.parent_run_id"], "test"
    )
    study.optimize(objective, n_trials=1)
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.state == TrialState.PRUNED
    run = MlflowClient(tracking).get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"
    assert run.data.tags["sweeps.trial_state"] == "PRUNED"
    assert "pruned after epoch 1" in run.data.tags["sweeps.reason"]
    assert run.data.tags["mlflow.parentRunId"] == attrs["sweeps.parent_run_id"]


def test_a_bad_spec_creates_no_study_and_no_run(tmp_path: Path, write_idx_dataset) -> None:
    write_idx_dataset(tmp_path / "data", "mnist", n_train=128, n_test=32)
    spec = small_sweep_spec(tmp_path, tmp_path / "data")
    proc = sweeps_process("run", str(spec), "search.momentum.high=1.5", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "search.momentum" in out
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.long
def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path: Path, write_idx_dataset) -> None:
    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=64)
    # trials long enough to be caught running
    spec = small_sweep_spec(tmp_path, tmp_path / "data", epochs=6, n_trials=3)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = sweeps_process("run", str(spec), cwd=tmp_path, start_new_session=True)
    deadline = time.time() + 120
    while not running_trials(tmp_path / "optuna.db"):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    study = optuna.load_study(study_name="e2e", storage=open_storage(url, heartbeat=False))
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    tracking = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = tracking.search_runs([study.user_attrs["sweeps.experiment_id"]], max_results=100)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parent = study.user_attrs["sweeps.parent_run_id"]
    assert tracking.get_run(parent).info.status == "KILLED"

    again = sweeps_process("run", str(spec), cwd=tmp_path)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == 3
    assert tracking.get_run(parent).info.status == "FINISHED"
    status = sweeps_process("status", "e2e", cwd=tmp_path)
    out, _ = status.communicate(timeout=120)
    assert status.returncode == 0 and "done 3" in out


@pytest.mark.slow
@needs_fashion_mnist
def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    """``sweeps run conf/quickstart.yaml`` in a checkout-like folder, on Debian's Fashion-MNIST, with
    overrides appended that shrink its trials to one epoch of 256 images, printed to a pipe at 80 columns:
    3 optimizers × 3 trials recorded, each run named by its settings, the output ending with the next
    commands; then the report it names, whose first lines are the answer, whole, with the command that
    would test it."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "quickstart.yaml").write_text((REPO / "conf" / "quickstart.yaml").read_text())
    smallest = ["data.train_subset=256", "data.holdout_size=256", "trainer.max_epochs=1"]
    env = {"SWEEPS_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "80"}
    proc = sweeps_process("run", "conf/quickstart.yaml", *smallest, cwd=tmp_path, env=env)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    assert out.splitlines()[-2:] == ["next: sweeps report quickstart", "next: sweeps ui quickstart"]
    log = (tmp_path / LOGS / "quickstart" / "worker-0.log").read_text()
    assert "GPU available" not in log and "Tip:" not in log and "Pickle" not in log, log
    study = optuna.load_study(study_name="quickstart", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.metric_names == ["best_val_acc"]
    finished = [
        t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]
    assert sorted(Counter(t.params["optimizer"] for t in finished).values()) == [3, 3, 3]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(study.user_attrs["sweeps.parent_run_id"])
    assert parent.data.tags["sweeps.study"] == "quickstart" and "best.optimizer" in parent.data.tags
    children = client.search_runs(
        [study.user_attrs["sweeps.experiment_id"]], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 9
    assert {r.info.status for r in children} <= {"FINISHED", "KILLED"}
    for name in (r.info.run_name for r in children):
        assert re.fullmatch(r"t\d (sgd|momentum|adam) lr=\d\.\d+(e-0\d)?( momentum=0\.\d+)? bs=64", name), (
            name
        )
    report = sweeps_process("report", "quickstart", cwd=tmp_path, env={"COLUMNS": "80"})
    printed, _ = report.communicate(timeout=300)
    assert report.returncode == 0, printed
    lead, command = printed.splitlines()[:2]  # one seed each: the answer says so, and how to test it
    assert re.fullmatch(
        r"(sgd|momentum|adam) leads (sgd|momentum|adam) by \d\.\d{4} final val_acc on one seed each"
        r" \(best search trial, holdout split\): untested\.",
        lead,
    ), lead
    rerun = " ".join(["sweeps run conf/quickstart.yaml", *smallest, "study.retrain_seeds=5"])
    assert command == f"To rank them: `{rerun}`", command


@pytest.mark.parametrize(
    ("workers", "per_gpu", "gpus", "cores", "expected"),
    [
        (None, 1, 0, 2, [("", 2)]),
        (2, 1, 0, 2, [("", 1), ("", 1)]),
        (8, 1, 0, 2, [("", 1)] * 8),
        (None, 1, 2, 16, [("0", 8), ("1", 8)]),
        (None, 2, 2, 16, [("0", 4), ("0", 4), ("1", 4), ("1", 4)]),
        (3, 2, 2, 16, [("0", 5), ("0", 5), ("1", 5)]),
    ],
)
def test_workers_are_pinned_to_gpus_or_split_the_cores(workers, per_gpu, gpus, cores, expected) -> None:
    from sweeps.engine.launcher import plan

    visible = [str(g) for g in range(gpus)]
    slots = plan(workers, per_gpu, visible, cores)
    assert [s.threads for s in plan(workers, per_gpu, visible, cores, threads=1)] == [1] * len(expected)
    assert [(s.gpu, s.threads) for s in slots] == expected
    assert [s.index for s in slots] == list(range(len(expected)))


def test_status_counts_the_finished_sweeps_trials(finished_sweep: Path, monkeypatch) -> None:
    monkeypatch.chdir(finished_sweep)
    study = optuna.load_study(study_name="shootout", storage=f"sqlite:///{finished_sweep / 'optuna.db'}")
    trials = Counter(t.state for t in study.get_trials(deepcopy=False))

    result = invoke("status", "shootout")

    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    assert f"done {trials[TrialState.COMPLETE]} pruned {trials[TrialState.PRUNED]} failed 0" in shown
    assert "running 0 waiting 0" in shown


def test_a_diverged_trial_fails_with_its_reason_and_uses_its_budget(
    tmp_path: Path, write_idx_dataset
) -> None:
    from sweeps.config.sweep import load_sweep
    from sweeps.engine import study as sweep_study
    from sweeps.engine.objective import Objective

    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=32)
    spec = small_sweep_spec(tmp_path, tmp_path / "data", name="boom", n_trials=1)
    sweep = load_sweep(spec, ["search.optimizer=momentum", "search.lr={low: 1.0e+6, high: 1.0e+7}"])
    tracking, url = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    created = sweep_study.create(sweep, url, tracking)
    attrs = created.user_attrs
    objective = Objective(
        sweep, tracking, attrs["sweeps.experiment_id"], attrs["sweeps.parent_run_id"], "test"
    )
    created.optimize(objective, n_trials=1, catch=(Exception,))
    (trial,) = created.get_trials(deepcopy=False)
    assert trial.state == TrialState.FAIL and trial.user_attrs["spent"] is True
    run = MlflowClient(tracking).get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["sweeps.outcome"] == "diverged" and "non-finite" in run.data.tags["sweeps.reason"]
    assert sweep_study.top_up(created, sweep) == 0  # a diverged trial is a result: its slot is not re-queued


@pytest.mark.slow
@needs_fashion_mnist
def test_sweep_bench_reports_throughput_and_overhead(tmp_path: Path) -> None:
    out = tmp_path / "sb.json"
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sweeps",
            "bench-sweep",
            "--workers",
            "1",
            "--trials",
            "2",
            "--subset",
            "128",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=600,
    )
    wall = time.perf_counter() - started
    (row,) = json.loads(out.read_text())["rows"]
    assert row["trials"] == 2 and 0 < row["overhead_share_mean"] < 1
    # the rate against a clock of the test's own: both trials ran, one after the other, within its wall time
    assert row["trials_per_hour"] > 3600 * 2 / wall and 2 * row["trial_seconds_mean"] < wall


def test_two_workers_racing_for_the_last_queued_trial_leave_no_unrun_trial(
    tmp_path: Path, write_idx_dataset
) -> None:
    """Both saw one queued trial: the winner takes it, the loser gets none, and no fresh trial is made (it
    would end FAIL unrun, and the sweep would show a failure where none happened)."""
    from sweeps.config.sweep import load_sweep
    from sweeps.engine import study as sweep_study
    from sweeps.engine.storage.heartbeat import running_trial

    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=32)
    sweep = load_sweep(small_sweep_spec(tmp_path, tmp_path / "data", name="race", n_trials=1))
    tracking, url = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    created = sweep_study.create(sweep, url, tracking)

    with running_trial(created, queued=True) as winner, running_trial(created, queued=True) as loser:
        assert winner is not None and winner.number == 0 and loser is None
    assert len(created.get_trials(deepcopy=False)) == 1
    assert sweep_study.top_up(created, sweep) == 0


@pytest.mark.slow
@pytest.mark.long
def test_a_killed_workers_trial_resumes_at_its_saved_epoch_and_ends_as_if_uninterrupted(
    tmp_path: Path, write_idx_dataset
) -> None:
    """Kill -9 mid-trial on a 4-epoch trial: once its heartbeat is stale the next worker fails it (its MLflow
    run FAILED, saying why; none left RUNNING) and runs it again, a retry that starts at the epoch after the
    last one saved (its log says so), logs the whole curve, and ends with the metrics of an uninterrupted run
    of the same config. (A kill before any save, its retry from scratch: the last-trial test above.)"""
    import yaml

    write_idx_dataset(tmp_path / "data", "mnist", n_train=2048, n_test=256)  # epochs long enough to catch
    spec = small_sweep_spec(tmp_path, tmp_path / "data", epochs=4, name="resume", n_trials=1)
    sweep = yaml.safe_load(spec.read_text())
    sweep["data"] = {"name": "mnist", "dir": str(tmp_path / "data")}
    sweep["search"] = {"optimizer": "adam", "lr": 0.002}
    spec.write_text(yaml.safe_dump(sweep))
    env = HEARTBEATS
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    created = sweeps_process("run", str(spec), "--workers", "0", cwd=tmp_path, env=env)
    assert created.wait(timeout=300) == 0, created.stdout.read()
    victim = sweeps_process("worker", "--study", "resume", "--storage", url, cwd=tmp_path, env=env)
    saved = tmp_path / "checkpoints" / "resume" / "trial-0" / "seed-0"
    deadline = time.time() + 400
    while not list(saved.glob("epoch-*.ckpt")):
        assert time.time() < deadline and victim.poll() is None, victim.stdout.read()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)  # mid-epoch: at least one epoch saved, the trial not done
    victim.wait()
    wait_until_stale(tmp_path / "optuna.db")
    survivor = sweeps_process("worker", "--study", "resume", "--storage", url, cwd=tmp_path, env=env)
    out, _ = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, out

    study = optuna.load_study(study_name="resume", storage=open_storage(url, heartbeat=False))
    (lost,) = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    (retry,) = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert retry.system_attrs["failed_trial"] == lost.number == 0
    resumed_at = int(out.split("trial-0/seed-0 resumed at epoch ")[1].split()[0])
    assert 2 <= resumed_at <= 4, out
    tracking = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    lost_run = tracking.get_run(lost.user_attrs["mlflow_run_id"])
    assert lost_run.info.status == "FAILED" and "heartbeat" in lost_run.data.tags["sweeps.reason"]
    runs = tracking.search_runs([study.user_attrs["sweeps.experiment_id"]], max_results=100)
    assert not [r for r in runs if r.info.status == "RUNNING" and r.data.tags.get("sweeps.role") != "sweep"]
    run_id = retry.user_attrs["mlflow_run_id"]
    config = tracking.download_artifacts(run_id, "config.yaml", str(tmp_path / "fetched"))
    reference = sweeps_process(
        "train", config, "--tracking-uri", f"sqlite:///{tmp_path / 'ref.db'}", cwd=tmp_path
    )
    out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, out
    alone = MlflowClient(f"sqlite:///{tmp_path / 'ref.db'}")
    (uninterrupted,) = alone.search_runs([alone.get_experiment_by_name("resume").experiment_id])
    for metric in ("train_loss", "val_loss", "val_acc"):
        resumed = [(m.step, m.value) for m in tracking.get_metric_history(run_id, metric)]
        whole = [(m.step, m.value) for m in alone.get_metric_history(uninterrupted.info.run_id, metric)]
        assert sorted(resumed) == sorted(whole) and len(whole) == 4, (metric, resumed, whole)
    network = logged_model(f"sqlite:///{tmp_path / 'mlflow.db'}", run_id)  # the best trial's model
    assert type(network).__name__ == "SeedCNN"
    assert [p.name for p in (tmp_path / "checkpoints" / "resume").iterdir()] == ["trial-0"]  # kept: the best


@pytest.mark.slow
def test_a_killed_workers_pack_resumes_each_trial_at_its_saved_epoch(
    tmp_path: Path, write_idx_dataset
) -> None:
    """Kill -9 mid-pack: the heartbeat fails each trial of the lost pack, and each re-run resumes from the
    checkpoint its trial saved under its own key (re-packed or alone): its restored epochs are the lost run's
    rows as they were written, time included, and the sweep ends with its whole budget."""
    import yaml

    write_idx_dataset(tmp_path / "data", "mnist", n_train=512, n_test=16)
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "name": "mnist",
                    "dir": str(tmp_path / "data"),
                    "holdout_size": 64,
                    "download": False,
                },
                "trainer": {"max_epochs": 2, "accelerator": "cpu"},
                "study": {"name": "packed", "sampler": "grid", "pruner": "none", "n_trials": 2, "pack": 2},
                "search": {"optimizer": "adam", "lr": [0.001, 0.002]},
            }
        )
    )
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    create(load_sweep(spec, []), url, f"sqlite:///{tmp_path / 'mlflow.db'}")
    victim = sweeps_process("worker", "--study", "packed", "--storage", url, cwd=tmp_path, env=HEARTBEATS)
    saved = [tmp_path / "checkpoints" / "packed" / f"trial-{n}" / "seed-0" for n in (0, 1)]
    deadline = time.time() + 300
    while not all(list(folder.glob("epoch-*.ckpt")) for folder in saved):
        assert time.time() < deadline and victim.poll() is None, victim.stdout.read()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)  # mid-pack: each trial has an epoch saved, neither is done
    lost_out, _ = victim.communicate()
    wait_until_stale(tmp_path / "optuna.db")
    survivor = sweeps_process("worker", "--study", "packed", "--storage", url, cwd=tmp_path, env=HEARTBEATS)
    out, _ = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, out

    assert "pack of 2 trials (0, 1)" in lost_out and "resumed at epoch" in out
    study = optuna.load_study(study_name="packed", storage=open_storage(url, heartbeat=False))
    lost = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    retried = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert sorted(lost) == [0, 1] and sorted(t.system_attrs["failed_trial"] for t in retried) == [0, 1]
    tracking = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for retry in retried:
        before = lost[retry.system_attrs["failed_trial"]]
        assert retry.params == before.params
        was = tracking.get_metric_history(before.user_attrs["mlflow_run_id"], "epoch_seconds")
        now = tracking.get_metric_history(retry.user_attrs["mlflow_run_id"], "epoch_seconds")
        assert sorted(m.step for m in now) == [1, 2] and was
        first = {m.step: m.value for m in was}[1]
        assert {m.step: m.value for m in now}[1] == first  # not trained again: the lost run's row, restored


# --- off the happy path -------------------------------------------------------------------------------------


def test_a_worker_whose_store_is_not_the_sweeps_refuses_naming_both(
    tmp_path: Path, write_idx_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=32)
    spec = small_sweep_spec(tmp_path, tmp_path / "data", n_trials=2)
    created = invoke("run", str(spec), "--workers", "0")
    assert created.exit_code == 0, created.output
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:hunter2@127.0.0.1:1")
    worker = invoke("worker", "--study", "e2e")

    assert worker.exit_code == 2, worker.output
    assert "http://user:***@127.0.0.1:1" in squash(worker.output) and "hunter2" not in worker.output
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    worker = invoke("worker", "--study", "e2e")
    assert worker.exit_code == 2, worker.output
    assert "elsewhere.db" in squash(worker.output) and str(tmp_path / "mlflow.db") in squash(worker.output)
    study = optuna.load_study(study_name="e2e", storage=open_storage(f"sqlite:///{tmp_path / 'optuna.db'}"))
    assert {t.state for t in study.get_trials(deepcopy=False)} == {TrialState.WAITING}


@pytest.mark.slow
def test_a_sweep_whose_every_trial_fails_says_why_and_fails(tmp_path: Path, write_idx_dataset) -> None:
    write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=32)
    spec = small_sweep_spec(tmp_path, tmp_path / "data", epochs=1, n_trials=2)
    proc = sweeps_process(
        "run",
        str(spec),
        "search.optimizer=momentum",
        "search.lr=[1.0e+12]",
        "search.batch_size=64",
        cwd=tmp_path,
    )
    out, _ = proc.communicate(timeout=600)

    assert proc.returncode == 1, out
    assert "every search trial failed" in out and "non-finite training loss" in out
    study = optuna.load_study(study_name="e2e", storage=open_storage(f"sqlite:///{tmp_path / 'optuna.db'}"))
    tracking = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert tracking.get_run(study.user_attrs["sweeps.parent_run_id"]).info.status == "FAILED"
    status = invoke("status", "e2e")
    assert status.exit_code == 0, status.output
    assert "last failure (trial 1): Diverged: non-finite training loss" in " ".join(status.stdout.split())
    assert "2× Diverged" in status.stdout
    assert any("Traceback" in p.read_text() for p in (tmp_path / LOGS / "e2e").glob("*.log"))
