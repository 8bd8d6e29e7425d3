"""``--log``: the trajectories' files and numbers as one MLflow run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sweeps.tools.trajectories.simulate import Path2D
from sweeps.tracking.runs import files_run

EXPERIMENT = "trajectories"
"""The MLflow experiment that ``--log`` writes to: one run per invocation, the files as its artifacts."""


def log_run(paths: Sequence[Path2D], files: Sequence[Path], settings: Mapping[str, Any], uri: str) -> str:
    """One run in the ``trajectories`` experiment: settings and lrs as params, each path's final loss and
    length as metrics, the written files as artifacts. Returns the run id."""
    params = dict(settings) | {f"lr.{p.surface}.{p.optimizer}": f"{p.lr:g}" for p in paths}
    metrics = {
        f"{key}.{p.surface}.{p.optimizer}": value
        for p in paths
        for key, value in (("final_loss", p.final_loss), ("path_length", p.length))
        if math.isfinite(value)
    }
    name = f"{settings.get('preset', 'torch')}-{settings.get('steps')}-steps"
    return files_run(uri, EXPERIMENT, name, "trajectories", params, metrics, files)
