"""A logged model's weights load as tensors only, into a network built from trusted code."""

from __future__ import annotations

from pathlib import Path

import mlflow.artifacts
import torch
from torch import nn

from sweeps.tracking.artifacts import MODEL_PATH, WEIGHTS_FILE, log_model
from tests.sweeps.helpers import Store


def test_a_logged_models_weights_load_with_weights_only(store: Store, tmp_path: Path) -> None:
    run = store.client.create_run(store.client.create_experiment("e")).info.run_id
    trained = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    log_model(store.uri, run, trained)

    file = mlflow.artifacts.download_artifacts(
        f"runs:/{run}/{MODEL_PATH}/{WEIGHTS_FILE}", dst_path=str(tmp_path), tracking_uri=store.uri
    )
    rebuilt = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    rebuilt.load_state_dict(torch.load(file, weights_only=True))

    x = torch.randn(5, 3)
    assert torch.equal(rebuilt(x), trained(x))
