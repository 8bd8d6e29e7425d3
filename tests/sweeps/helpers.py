"""Helpers shared by the service tests: paths, the CLI runner, and reading an MLflow store back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from models.data import DEBIAN_FASHION_MNIST_DIR

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
