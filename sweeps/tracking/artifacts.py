"""Files a sweep keeps in MLflow besides its records: trial checkpoints on a tracking server, trained models.

Checkpoints live among the artifacts of the sweep's parent run (``checkpoints/<key>/<file>``) when the study
is shared by machines, which all reach the tracking server; the engine uses :class:`ArtifactStore` like a
folder. A model is logged to the run that trained it in MLflow's PyTorch flavour, so that
``mlflow.pytorch.load_model("runs:/<run id>/model")`` gives it back in one call (unpickled: for a trusted
server), and its weights alone (``model/weights.pt``) load as tensors only.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from sweeps.compat import artifact_repository
from sweeps.tracking.runs import log_folder

MODEL_PATH = "model"
"""Where a run's model is: ``runs:/<run id>/model``."""
WEIGHTS_FILE = "weights.pt"
"""The model's ``state_dict`` alone, beside it: tensors only, safe to load from a server others can write."""


@dataclass(frozen=True)
class ArtifactStore:
    """Checkpoints as artifacts of ``run_id`` under ``prefix``: written, listed, fetched and deleted through
    the tracking server (its artifact proxy), so every machine of a sweep sees the same files."""

    uri: str
    run_id: str
    prefix: str = "checkpoints"

    @cached_property
    def _client(self) -> MlflowClient:
        return MlflowClient(self.uri)

    @cached_property
    def _repository(self) -> Any:
        """The parent run's artifact repository, which deletes (the client cannot); its location is fixed."""
        return artifact_repository(self._client.get_run(self.run_id).info.artifact_uri, self.uri)

    def put(self, key: str, file: Path) -> None:
        self._client.log_artifact(self.run_id, str(file), f"{self.prefix}/{key}")

    def files(self, key: str) -> list[str]:
        listed = self._client.list_artifacts(self.run_id, f"{self.prefix}/{key}")
        return sorted(Path(a.path).name for a in listed if not a.is_dir)

    def fetch(self, key: str, name: str, into: Path) -> Path:
        return Path(self._client.download_artifacts(self.run_id, f"{self.prefix}/{key}/{name}", str(into)))

    def remove(self, key: str, name: str | None = None) -> None:
        self._repository.delete_artifacts(f"{self.prefix}/{key}" + (f"/{name}" if name else ""))

    def trials(self) -> list[str]:
        return sorted(
            Path(a.path).name for a in self._client.list_artifacts(self.run_id, self.prefix) if a.is_dir
        )


def log_model(uri: str, run_id: str, model: Any) -> None:
    """``model`` (an ``nn.Module``) as the run's ``model`` artifact in MLflow's PyTorch flavour, pickled whole
    (the safer ``pt2`` format traces ``forward`` on an example input, which arbitrary user modules may not
    survive), so it loads back as the same class where its code is importable. Unpickling runs code, so its
    weights are also saved alone (``WEIGHTS_FILE``), for ``torch.load(..., weights_only=True)`` into a
    network built from code the reader trusts."""
    import mlflow.pytorch
    import torch

    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / MODEL_PATH
        mlflow.pytorch.save_model(
            model, str(local), serialization_format="pickle", pip_requirements=[f"torch=={torch.__version__}"]
        )
        torch.save(model.state_dict(), local / WEIGHTS_FILE)
        log_folder(uri, run_id, local, MODEL_PATH)
