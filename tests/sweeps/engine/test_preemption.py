"""A worker told to stop (SIGTERM, SIGUSR2) gives its trial back at the next epoch end, and the next worker
resumes it in place: the same trial, run and curve, no failure, no retry spent."""

from __future__ import annotations

import logging
import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweeps.config.sweep import load_sweep
from sweeps.engine import study as sweep_study
from sweeps.engine.preemption import STOP, TIME_LIMIT_SIGNAL, finish
from sweeps.engine.worker import run_worker
from tests.sweeps.helpers import small_sweep_spec


@pytest.fixture
def stop() -> Iterator[None]:
    """The process's stop request cleared before and after, and its signal handlers put back."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, TIME_LIMIT_SIGNAL)}
    STOP.signal, STOP.listening = None, False
    yield
    STOP.signal, STOP.listening = None, False
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _signal_once_saved(folder: Path, signum: int) -> threading.Thread:
    """Send this process ``signum`` as soon as a checkpoint of epoch 1 is saved in ``folder``."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not list(folder.glob("trial-0/seed-*/epoch-0001.ckpt")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signum)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


@pytest.mark.slow
def test_a_stopped_worker_gives_its_trial_back_at_the_epoch_end_and_the_next_resumes_it_in_place(
    tmp_path: Path, tiny_data: Path, stop: None, caplog: pytest.LogCaptureFixture
) -> None:
    epochs = 4
    sweep = load_sweep(small_sweep_spec(tmp_path, tiny_data, epochs=epochs, n_trials=1))
    url, tracking = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    created = sweep_study.create(sweep, url, tracking)
    STOP.listen()
    watcher = _signal_once_saved(tmp_path / "checkpoints" / "e2e", signal.SIGTERM)
    assert run_worker("e2e", url) == 1
    watcher.join()

    (trial,) = created.get_trials(deepcopy=False)
    assert trial.state == TrialState.WAITING and trial.user_attrs["sweeps.preempted"] == 1
    assert not trial.user_attrs.get("spent") and "sweeps.fail_reason" not in trial.user_attrs
    client = MlflowClient(tracking)
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and run.data.tags["sweeps.outcome"] == "preempted"
    assert run.data.tags["sweeps.trial_state"] == "WAITING" and run.data.tags["sweeps.preempted"] == "1"
    assert run.data.tags["sweeps.reason"].startswith("preempted after epoch ")
    stopped_at = len(client.get_metric_history(run.info.run_id, "val_acc"))
    assert 1 <= stopped_at < epochs

    STOP.signal = None  # the next worker
    with caplog.at_level(logging.INFO, logger="sweeps.engine.checkpoints"):
        assert run_worker("e2e", url) == 1
    (trial,) = created.get_trials(deepcopy=False)
    assert trial.state == TrialState.COMPLETE and trial.number == 0
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["sweeps.preempted"] == "1"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
    assert sorted(steps) == list(
        range(1, epochs + 1)
    )  # each epoch once: the earlier ones kept, not rewritten
    assert f"trial-0/seed-0 resumed at epoch {stopped_at + 1}" in caplog.text
    assert client.get_run(created.user_attrs["sweeps.parent_run_id"]).info.status == "FINISHED"


def test_a_worker_told_to_stop_while_it_starts_takes_nothing_and_leaves_a_timed_sweep_running(
    tmp_path: Path, tiny_data: Path, stop: None
) -> None:
    """A timed sweep queues nothing, so an empty study looks finished; a worker stopped before it began must
    not end the sweep's parent run for the ones still to come (the requeued task)."""
    sweep = load_sweep(small_sweep_spec(tmp_path, tiny_data, n_trials=None, timeout=3600))
    url, tracking = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    created = sweep_study.create(sweep, url, tracking)
    STOP.signal = "SIGTERM"

    assert run_worker("e2e", url) == 0
    assert created.get_trials(deepcopy=False) == []
    assert MlflowClient(tracking).get_run(created.user_attrs["sweeps.parent_run_id"]).info.status == "RUNNING"


def _fake_scontrol(folder: Path) -> Path:
    """An ``scontrol`` that records its arguments."""
    folder.mkdir()
    script = folder / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" > {folder / "called"}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder / "called"


@pytest.mark.parametrize(
    ("heard", "requeued"), [("SIGUSR2", "requeue 41_3"), ("SIGTERM", None)], ids=["time limit", "preemption"]
)
def test_a_worker_warned_of_its_time_limit_asks_slurm_to_requeue_its_array_task(
    tmp_path: Path, stop: None, monkeypatch: pytest.MonkeyPatch, heard: str, requeued: str | None
) -> None:
    called = _fake_scontrol(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    STOP.signal = heard
    said = finish({"SLURM_JOB_ID": "44", "SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "3"})

    assert (called.read_text().strip() if called.exists() else None) == requeued
    assert "given back" in said and (("requeued" in said) == bool(requeued))
