"""Sweeps through Ray: a real local Ray cluster runs the workers as actors, and a killed worker's trial is
retried; an address where no Ray answers is refused before anything is created."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweeps.engine.storage.rdb import open_storage
from tests.sweeps.helpers import HEARTBEATS, free_ports, invoke, small_sweep_spec, sweeps_process
from tests.sweeps.test_cli import nothing_written


def test_a_ray_address_that_does_not_answer_is_one_line_before_anything_is_created(
    tmp_path: Path, tiny_data: Path
) -> None:
    (port,) = free_ports(1)
    spec = small_sweep_spec(tmp_path, tiny_data)
    started = time.monotonic()
    result = invoke("run", str(spec), "--launcher", "ray", "--ray-address", f"127.0.0.1:{port}")

    assert result.exit_code == 2, result.output
    assert f"--ray-address 127.0.0.1:{port}: no Ray cluster answers there" in " ".join(result.stderr.split())
    assert len(result.stderr.strip().splitlines()) <= 2  # one line, wrapped at most once
    assert time.monotonic() - started < 30
    assert nothing_written(tmp_path)


def test_detach_is_refused_without_slurm(tmp_path: Path, tiny_data: Path) -> None:
    result = invoke("run", str(small_sweep_spec(tmp_path, tiny_data)), "--launcher", "ray", "--detach")

    assert result.exit_code == 2 and "--detach needs --launcher slurm" in result.stderr
    assert nothing_written(tmp_path)


@pytest.mark.slow
@pytest.mark.long
def test_a_local_ray_runs_the_sweep_and_a_killed_workers_trial_is_retried(
    tmp_path: Path, tiny_data: Path
) -> None:
    spec = small_sweep_spec(tmp_path, tiny_data, epochs=8, n_trials=3)
    proc = sweeps_process(
        "run", str(spec), "--launcher", "ray", "--workers", "2", cwd=tmp_path, env=HEARTBEATS
    )
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat=False)
    deadline = time.monotonic() + 600  # Ray starts slowly on a loaded machine (300 s was too short)
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.5)
        if not (tmp_path / "optuna.db").exists() or "e2e" not in optuna.get_all_study_names(storage):
            continue
        running = optuna.load_study(study_name="e2e", storage=storage).get_trials(
            states=(TrialState.RUNNING,)
        )
        victim = next((t for t in running if "mlflow_run_id" in t.user_attrs), None)
    label = victim.user_attrs["worker"]  # host:pid:ray <job>_<index>
    os.kill(int(label.split(":")[1]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)

    assert proc.returncode == 0, out
    assert "Ray job" in out
    study = optuna.load_study(study_name="e2e", storage=storage)
    trials = study.get_trials(deepcopy=False)
    lost = trials[victim.number]
    assert lost.state == TrialState.FAIL
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3  # the whole budget
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tags = client.get_run(retry.user_attrs["mlflow_run_id"]).data.tags
    assert tags["sweeps.launcher"] == "ray" and tags["sweeps.task_id"] in {"0", "1"}
    assert client.get_run(lost.user_attrs["mlflow_run_id"]).info.status == "FAILED"
