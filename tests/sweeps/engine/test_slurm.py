"""Sweeps through a real single-node SLURM cluster: the job array, its tags, a task requeued mid-trial,
Ctrl-C, and the input refused before anything is created."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweeps.engine.storage.rdb import open_storage
from sweeps.workdir import LOGS
from tests.sweeps.clusters import squeue
from tests.sweeps.helpers import (
    check_recorded_once,
    invoke,
    running_trials,
    small_sweep_spec,
    sweeps_process,
)
from tests.sweeps.test_cli import nothing_written

ON_THE_TEST_NODE = ["launcher.slurm.gpus_per_worker=0", "launcher.slurm.cpus_per_worker=1"]
"""The test node has 2 CPUs and no GPU: one CPU per worker, so that both array tasks run at once."""
TWO_TASKS = ["--launcher", "slurm", "--workers", "2"]

T = TypeVar("T")


def _wait_for(found: Callable[[], T], proc: subprocess.Popen, timeout: float = 180) -> T:
    deadline = time.monotonic() + timeout
    while not (value := found()):
        assert time.monotonic() < deadline, "timed out"
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.2)
    return value


def _worker_of(database: Path, number: int) -> str:
    """The worker label of trial ``number``, read only (the workers write the file meanwhile)."""
    query = (
        "SELECT a.value_json FROM trial_user_attributes a JOIN trials t ON a.trial_id = t.trial_id"
        " WHERE t.number = ? AND a.key = 'worker'"
    )
    with (
        contextlib.suppress(sqlite3.OperationalError),
        closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db,
    ):
        row = db.execute(query, (number,)).fetchone()
        return row[0].strip('"') if row else ""
    return ""


def _study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat=False)
    return optuna.load_study(study_name="e2e", storage=storage)


def test_no_sbatch_on_the_path_is_refused_before_anything_is_created(
    tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = invoke("run", str(small_sweep_spec(tmp_path, tiny_data)), *TWO_TASKS)

    assert result.exit_code == 2, result.output
    assert "sbatch is not on PATH" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert nothing_written(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "said"),
    [
        (
            "launcher.slurm.partition=gpuz",
            "no partition 'gpuz' on this cluster; it has debug* (* the default)",
        ),
        ("launcher.slurm.sbatch=[--constraint=bigmem]", "sbatch refuses the job array"),
        ("launcher.slurm.mem_gb=64", "sbatch refuses the job array"),
    ],
)
def test_what_the_cluster_refuses_is_one_line_before_anything_is_created(
    slurm: dict[str, str], tmp_path: Path, tiny_data: Path, override: str, said: str
) -> None:
    spec = small_sweep_spec(tmp_path, tiny_data)
    proc = sweeps_process("run", str(spec), *ON_THE_TEST_NODE, override, *TWO_TASKS, cwd=tmp_path, env=slurm)
    out, _ = proc.communicate(timeout=300)

    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and said in " ".join(out[out.index("error:") :].split()), out
    assert nothing_written(tmp_path)


@pytest.mark.slow
def test_a_detached_sweep_through_a_slurm_job_array_records_every_trial_once_tagged_with_its_task(
    slurm: dict[str, str], tmp_path: Path, tiny_data: Path
) -> None:
    spec = small_sweep_spec(tmp_path, tiny_data, n_trials=3)
    proc = sweeps_process(
        "run", str(spec), *ON_THE_TEST_NODE, *TWO_TASKS, "--detach", cwd=tmp_path, env=slurm
    )
    out, _ = proc.communicate(timeout=120)

    assert proc.returncode == 0, out
    study = _study(tmp_path)
    (job,) = study.user_attrs["sweeps.jobs"]
    assert job == {"launcher": "slurm", "job_id": job["job_id"], "workers": 2}
    said = " ".join(out.split())
    assert f"submitted SLURM job {job['job_id']} (2 workers); follow it with:" in said
    assert said.endswith("sweeps status e2e")
    deadline = time.monotonic() + 600
    while squeue(slurm, job["job_id"]):
        assert time.monotonic() < deadline
        time.sleep(1)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    check_recorded_once(study, tracking, 3)
    client = MlflowClient(tracking)
    for trial in study.get_trials(deepcopy=False):
        tags = client.get_run(trial.user_attrs["mlflow_run_id"]).data.tags
        assert tags["sweeps.launcher"] == "slurm" and tags["sweeps.job_id"] == job["job_id"]
        assert tags["sweeps.task_id"] in {"0", "1"} and tags["sweeps.node"] == os.uname().nodename
        assert tags["sweeps.worker"].endswith(f"slurm {job['job_id']}_{tags['sweeps.task_id']}")
    assert (
        client.get_run(study.user_attrs["sweeps.parent_run_id"]).info.status == "FINISHED"
    )  # the last worker
    status = sweeps_process("status", "e2e", cwd=tmp_path, env=slurm)
    shown, _ = status.communicate(timeout=120)
    assert f"SLURM job {job['job_id']} (2 workers): finished" in shown and "done 3" in shown


@pytest.mark.slow
def test_a_task_requeued_mid_trial_resumes_it_from_its_checkpoint_and_the_sweep_ends_with_its_budget(
    slurm: dict[str, str], tmp_path: Path, tiny_data: Path
) -> None:
    epochs = 12
    spec = small_sweep_spec(tmp_path, tiny_data, epochs=epochs, n_trials=2)
    proc = sweeps_process("run", str(spec), *ON_THE_TEST_NODE, *TWO_TASKS, cwd=tmp_path, env=slurm)
    saved = _wait_for(lambda: sorted((tmp_path / "checkpoints" / "e2e").glob("trial-*/seed-*/epoch-*")), proc)
    number = int(saved[0].parts[-3].removeprefix("trial-"))
    task = _wait_for(lambda: _worker_of(tmp_path / "optuna.db", number), proc).split()[-1]  # "<job>_<task>"
    subprocess.run(["scontrol", "requeue", task], env=os.environ | slurm, check=True)
    out, _ = proc.communicate(timeout=600)

    assert proc.returncode == 0, out
    assert "SLURM job" in out and "preempted 1×" in out  # the live view: the array's tasks, the preemption
    study = _study(tmp_path)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # the same two trials: no copy, no failure
    resumed = trials[number]
    assert resumed.user_attrs["sweeps.preempted"] == 1
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(resumed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["sweeps.preempted"] == "1"
    assert run.data.tags["sweeps.trial_state"] == "COMPLETE"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
    assert sorted(steps) == list(range(1, epochs + 1))  # every epoch once: resumed, not restarted
    logs = "".join(p.read_text() for p in (tmp_path / LOGS / "e2e" / "slurm").glob("*.err"))
    assert "SIGTERM received: stopping at the next epoch end" in logs
    assert f"trial {number} preempted after epoch" in logs
    assert f"trial-{number}/seed-" in logs and "resumed at epoch" in logs
    status = sweeps_process("status", "e2e", cwd=tmp_path, env=slurm)
    shown, _ = status.communicate(timeout=120)
    assert "preempted 1×" in shown and "failed 0" in shown


@pytest.mark.slow
def test_ctrl_c_cancels_the_job_array_and_gives_the_running_trials_back(
    slurm: dict[str, str], tmp_path: Path, tiny_data: Path
) -> None:
    spec = small_sweep_spec(tmp_path, tiny_data, epochs=12, n_trials=4)
    proc = sweeps_process(
        "run", str(spec), *ON_THE_TEST_NODE, *TWO_TASKS, cwd=tmp_path, env=slurm, start_new_session=True
    )
    _wait_for(lambda: running_trials(tmp_path / "optuna.db"), proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, _ = proc.communicate(timeout=300)

    assert proc.returncode == 130, out
    study = _study(tmp_path)
    (job,) = study.user_attrs["sweeps.jobs"]
    assert f"cancelling SLURM job {job['job_id']}" in out and f"cancelled SLURM job {job['job_id']}" in out
    assert squeue(slurm, job["job_id"]) == ""
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    given_back = [t for t in trials if t.user_attrs.get("sweeps.preempted")]
    assert given_back and all(t.state == TrialState.WAITING for t in given_back)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([study.user_attrs["sweeps.experiment_id"]], max_results=100)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert client.get_run(study.user_attrs["sweeps.parent_run_id"]).info.status == "KILLED"
