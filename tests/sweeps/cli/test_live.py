"""The live view: what a narrow terminal and a file show of a running sweep."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState
from rich.console import Console

from sweeps.cli.live import LiveView, summary
from sweeps.config.sweep import load_sweep
from sweeps.engine import launcher
from sweeps.names import FAIL_REASON_ATTR, PHASE_ATTR, TUNED
from tests.sweeps.helpers import CONF


def test_the_live_view_keeps_optimizer_names_whole_and_says_why_trials_failed(tmp_path: Path) -> None:
    sweep = load_sweep(CONF / "shootout.yaml", ["study.n_trials=1"])
    study = optuna.create_study(directions=["maximize"])
    study.add_trial(_trial(TrialState.COMPLETE, 0.8, {"optimizer": "adadelta", "lr": 0.5}))
    study.add_trial(_trial(TrialState.COMPLETE, 0.95, {"optimizer": "rmsprop"}, {PHASE_ATTR: TUNED}))
    for reason in ("CUDA out of memory", "CUDA out of memory", "Diverged: non-finite training loss"):
        study.add_trial(_trial(TrialState.FAIL, None, {"optimizer": "nadam"}, {FAIL_REASON_ATTR: reason}))
    study.add_trial(_trial(TrialState.RUNNING, None, {"optimizer": "adamax", "lr": 0.002}, {"worker": "h:1"}))
    for width in (40, 80):
        out = io.StringIO()
        Console(file=out, width=width).print(summary(study, sweep))
        shown = out.getvalue()
        assert "adadelta" in shown and "adamax" in shown and "…" not in shown
        assert "best (search, hold-out of the train split): best_val_acc 0.8000" in " ".join(shown.split())
        assert "2× CUDA out of memory" in shown and "1× Diverged" in shown
        assert "last failure (trial 4): Diverged" in " ".join(shown.split())


def test_the_live_view_shows_the_schedulers_jobs_and_tells_preemptions_from_failures() -> None:
    sweep = load_sweep(CONF / "shootout.yaml", ["study.n_trials=1"])
    study = optuna.create_study(directions=["maximize"])
    study.add_trial(_trial(TrialState.COMPLETE, 0.8, {"optimizer": "adam"}, {"sweeps.preempted": 1}))
    study.add_trial(_trial(TrialState.FAIL, None, {"optimizer": "sgd"}))
    jobs = [launcher.JobStates("SLURM job 1234", {"running": 3, "pending": 1})]
    out = io.StringIO()
    Console(file=out, width=80).print(summary(study, sweep, jobs))
    shown = " ".join(out.getvalue().split())
    assert "SLURM job 1234: 3 running, 1 pending" in shown
    assert "preempted 1× (given back at an epoch end and resumed: not failures)" in shown
    assert "failed 1" in shown and "1× its worker was lost or stopped" in shown


def test_the_live_views_last_line_ends_in_a_file() -> None:
    sweep = load_sweep(CONF / "shootout.yaml", ["study.n_trials=1"])
    study = optuna.create_study(directions=["maximize"])
    study.add_trial(_trial(TrialState.COMPLETE, 0.8, {"optimizer": "adadelta", "lr": 0.5}))
    out = io.StringIO()
    workers = launcher.Processes([], launcher.Join("none", "", "", Path("logs")), refresh=0.05)
    workers.procs = [subprocess.Popen([sys.executable, "-c", "pass"])]
    assert launcher.supervise(workers, study, LiveView(study, sweep, Console(file=out, width=60))) == 0
    assert out.getvalue().endswith("\n") and "done 1" in out.getvalue()


def _trial(state: TrialState, value: float | None, config: dict, attrs: dict | None = None) -> object:
    return optuna.trial.create_trial(state=state, value=value, user_attrs={"config": config, **(attrs or {})})
