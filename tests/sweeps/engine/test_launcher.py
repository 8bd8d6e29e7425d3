"""The launcher and the live view: GPUs the user chose, workers that fail, the sweep's running time, what a
narrow terminal shows."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweeps.config.sweep import load_sweep
from sweeps.engine import launcher
from sweeps.engine import study as sweep_study
from sweeps.engine.worker import run_worker
from sweeps.names import EXIT_PREEMPTED, WORKER_ATTR
from tests.sweeps.helpers import small_sweep_spec


@pytest.mark.parametrize(
    ("environ", "count", "expected"),
    [
        ({}, 2, ["0", "1"]),
        ({"CUDA_VISIBLE_DEVICES": "2,3"}, 2, ["2", "3"]),
        ({"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}, 2, ["GPU-aa", "GPU-bb"]),
        ({"CUDA_VISIBLE_DEVICES": ""}, 0, []),
    ],
)
def test_workers_go_on_the_gpus_the_user_chose(environ: dict, count: int, expected: list[str]) -> None:
    gpus = launcher.visible_gpus(environ, count)
    assert gpus == expected
    per_gpu = [g for g in expected for _ in range(2)] or [""]  # no GPU: one worker on the CPU
    assert [s.gpu for s in launcher.plan(None, 2, gpus, 16)] == per_gpu


def _created(tmp_path: Path, data: Path, *overrides: str) -> tuple[optuna.Study, object, str, str]:
    sweep = load_sweep(small_sweep_spec(tmp_path, data, epochs=1, n_trials=2), list(overrides))
    url, tracking = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    return sweep_study.create(sweep, url, tracking), sweep, url, tracking


def test_a_worker_that_exits_with_an_error_ends_the_parent_failed(
    tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created, sweep, url, tracking = _created(tmp_path, tiny_data)

    def broken(slot: launcher.Slot, join: launcher.Join) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    monkeypatch.setattr(launcher, "start", broken)
    join = launcher.Join("e2e", url, tracking, tmp_path / "logs")
    workers = launcher.Processes(launcher.plan(2, 1, [], 2), join)
    outcome = launcher.run(created, sweep, tracking, workers, Recorded())

    assert outcome.failed == 2
    parent = MlflowClient(tracking).get_run(created.user_attrs["sweeps.parent_run_id"])
    assert parent.info.status == "FAILED"


A_TASK_STOPPED_WHILE_IT_IMPORTS = """
import os, signal, sys
signal.signal(signal.SIGTERM, lambda *_: print("bypassed", flush=True))  # submitit's handler in an array task


class StopOnImport:  # the scheduler's SIGTERM comes while the worker still imports Lightning
    def find_spec(self, name, path=None, target=None):
        if name == "lightning":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGTERM)


sys.meta_path.insert(0, StopOnImport())
from sweeps.engine.launcher import worker_main

sys.exit(worker_main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_an_array_task_stopped_while_it_starts_runs_no_trial_and_exits_as_preempted(
    tmp_path: Path, tiny_data: Path
) -> None:
    created, _, url, tracking = _created(tmp_path, tiny_data)
    args = ["--study", "e2e", "--storage", url, "--tracking-uri", tracking]
    task = subprocess.run(
        [sys.executable, "-c", A_TASK_STOPPED_WHILE_IT_IMPORTS, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert task.returncode == EXIT_PREEMPTED, task.stdout + task.stderr
    assert "bypassed" not in task.stdout and "stopped by SIGTERM" in task.stdout
    assert {t.state for t in created.get_trials(deepcopy=False)} == {TrialState.WAITING}


def test_the_worker_log_files_are_closed_by_the_launcher(tmp_path: Path) -> None:
    before = _open_files()
    proc = launcher.start(
        launcher.Slot(0, "", 1), launcher.Join("none", "sqlite:////x", "sqlite:////y", tmp_path / "logs")
    )
    proc.wait(timeout=120)
    assert not [f for f in _open_files() - before if f.endswith("worker-0.log")]


def _open_files() -> set[str]:
    fds = Path("/proc/self/fd")
    return {str(fd.resolve()) for fd in fds.iterdir() if fd.exists()}


def test_a_resumed_sweep_gets_what_is_left_of_its_timeout(
    tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(sweep_study.time, "time", lambda: clock[0])
    created, sweep, url, tracking = _created(tmp_path, tiny_data, "study.timeout=600")
    assert sweep_study.deadline(created, sweep) == 1600
    clock[0] = 1100  # the first run stops after 100 s ...
    sweep_study.count_running_time(created)
    clock[0] = 90_000  # ... and is resumed a day later
    resumed = sweep_study.create(sweep, url, tracking)
    assert sweep_study.deadline(resumed, sweep) == 90_000 + 500


def test_a_sweep_resumes_where_its_workers_run_has_changed(tmp_path: Path, tiny_data: Path) -> None:
    created, sweep, url, tracking = _created(tmp_path, tiny_data)
    moved = load_sweep(
        small_sweep_spec(tmp_path, tiny_data, epochs=1, n_trials=2), ["launcher.slurm.partition=gpu"]
    )
    assert sweep_study.create(moved, url, tracking).study_name == created.study_name  # not "a different spec"


def test_a_trial_running_at_the_timeout_is_stopped_and_its_budget_given_back(
    tmp_path: Path, tiny_data: Path
) -> None:
    created, sweep, url, tracking = _created(
        tmp_path, tiny_data, "study.timeout=10", "study.n_trials=1", "trainer.max_epochs=1000"
    )
    assert run_worker("e2e", url) == 1

    (trial,) = created.get_trials(deepcopy=False)
    assert trial.state == TrialState.FAIL and not trial.user_attrs.get("spent")
    run = MlflowClient(tracking).get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and run.data.tags["sweeps.reason"] == "stopped at the sweep's timeout"
    assert sweep_study.top_up(created, sweep) == 1  # the slot is queued again when the sweep resumes


def test_stopping_fails_only_this_machines_trials_even_when_a_remote_pid_is_the_same() -> None:
    workers = launcher.Processes([], launcher.Join("none", "", "", Path("logs")))
    workers.procs = [subprocess.Popen([sys.executable, "-c", "pass"])]
    workers.procs[0].wait()
    pid = workers.procs[0].pid
    study = optuna.create_study()
    labels = [f"{platform.node()}:{pid}:gpu0", f"elsewhere:{pid}", f"{platform.node()}:{pid}7"]
    for label in labels:
        study.enqueue_trial({}, user_attrs={WORKER_ATTR: label})
        study.ask()
    launcher.fail_running(study, workers.owns)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]


class Recorded:
    """A view that keeps what the launcher showed and said."""

    def __init__(self) -> None:
        self.shown: list[list[launcher.JobStates]] = []
        self.said: list[str] = []

    def __enter__(self) -> Recorded:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, jobs: list[launcher.JobStates]) -> None:
        self.shown.append(list(jobs))

    def say(self, message: str) -> None:
        self.said.append(message)
