"""What ``sweeps run`` says before a cluster's workers start."""

from __future__ import annotations

import pytest

from sweeps.cli.sweep import this_machine_only

POSTGRES = "postgresql+psycopg://u@db:5432/x"


@pytest.mark.parametrize(
    ("storage", "tracking", "named"),
    [
        ("sqlite:///sweeps-out/optuna.db", "http://mlflow:5000", ["the study is a SQLite file"]),
        (POSTGRES, "sqlite:///sweeps-out/mlflow.db", ["MLflow's store is a file here"]),
        (POSTGRES, "/shared/mlruns", ["MLflow's store is a file here"]),
        ("sqlite:///o.db", "file:///m", ["the study is a SQLite file", "MLflow's store is a file here"]),
        (POSTGRES, "https://mlflow.example", []),
        (POSTGRES, "postgresql://u@db:5432/mlflow", []),  # a database server MLflow writes to directly
    ],
)
def test_a_cluster_sweep_is_told_which_store_keeps_its_workers_on_this_machine(storage, tracking, named):
    notes = this_machine_only(storage, tracking)

    assert [note.split(":")[0] for note in notes] == named
