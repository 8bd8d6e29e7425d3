"""Measure the sweep engine: trials/hour for 1, 2, 4, ... local workers on light trials, and the share of each
trial's wall time spent outside training (Optuna, MLflow, run setup).

    sweeps bench-sweep --workers 1,2,4,8 --trials 16 --out sweep_bench.json

Each worker count runs the same small sweep in a fresh folder (embedded SQLite storage, SQLite MLflow) through
``sweeps run``, exactly as a user would. Light trials (one epoch on a few hundred images) make coordination
the thing measured. Throughput runs from the first trial's start to the last one's end; process start-up (a
few seconds of imports per worker) is reported apart. Every worker runs one torch thread, so that up to the
cores no two share one; scaling efficiency is throughput over one worker's times the workers (capped at the
cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml


def _spec(name: str, trials: int, subset: int) -> dict:
    return {
        "data": dict(name="fashion_mnist", train_subset=subset, val_split="holdout", holdout_size=256),
        "trainer": {"max_epochs": 1},
        "study": {"name": name, "sampler": "random", "pruner": "none", "n_trials": trials},
        "search": {"optimizer": ["sgd", "adam"], "lr": {"low": 1.0e-3, "high": 0.1, "log": True}},
    }


def measure(workers: int, trials: int, subset: int) -> dict:
    import optuna
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    from sweeps import workdir
    from sweeps.names import RUN_ATTR

    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        folder = Path(tmp)
        (folder / "spec.yaml").write_text(yaml.safe_dump(_spec("bench", trials, subset)))
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sweeps", "run", "spec.yaml", "--workers", str(workers), "--threads", "1"],
            cwd=folder,
            env=os.environ | {workdir.FOLDER_ENV: str(folder)},  # the study and runs read back below
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - started
        study = optuna.load_study(study_name="bench", storage=f"sqlite:///{folder / workdir.STUDIES}")
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        client = MlflowClient(f"sqlite:///{folder / workdir.RUNS}")
        walls = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
        training = [client.get_run(t.user_attrs[RUN_ATTR]).data.metrics["total_seconds"] for t in done]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return {
        "workers": workers,
        "trials": len(done),
        "wall_seconds": wall,
        "startup_seconds": wall - span,
        "trials_per_hour": len(done) / span * 3600,
        "overhead_share_mean": sum(1 - t / w for t, w in zip(training, walls, strict=True)) / len(done),
        "trial_seconds_mean": sum(walls) / len(done),
    }


def run(workers: list[int], trials: int, subset: int) -> dict[str, Any]:
    """One row per worker count, each with its scaling efficiency against the first row's."""
    rows = [measure(n, trials, subset) for n in workers]
    base = rows[0]["trials_per_hour"] / rows[0]["workers"]
    cores = os.cpu_count() or 1
    for row in rows:
        row["scaling_efficiency"] = row["trials_per_hour"] / (base * min(row["workers"], cores))
    return {"cores": cores, "rows": rows}


def summary(measured: dict[str, Any]) -> list[str]:
    cores = measured["cores"]
    return [
        f"{row['workers']:>2} workers: {row['trials_per_hour']:7.0f} trials/h, "
        f"efficiency {row['scaling_efficiency']:.2f} (vs min(workers, {cores} cores)), "
        f"trial {row['trial_seconds_mean']:.2f} s, outside training {row['overhead_share_mean']:.1%}, "
        f"start-up {row['startup_seconds']:.1f} s"
        for row in measured["rows"]
    ]
