"""``sweeps trajectories``: run the chosen optimizers on the chosen surfaces, write the figure, the GIF and
the tables, and optionally log them as one MLflow run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.tools.trajectories.draw import draw_png
from sweeps.tools.trajectories.gif import draw_gif
from sweeps.tools.trajectories.simulate import Path2D, checked_names, run_all
from sweeps.tools.trajectories.tables import table, write_tables
from sweeps.tracking.runs import files_run

__all__ = ["EXPERIMENT", "Made", "Settings", "checked_names", "make"]

EXPERIMENT = "trajectories"
"""The MLflow experiment that ``--log`` writes to: one run per invocation, the files as its artifacts."""


@dataclass(frozen=True)
class Settings:
    """What to run: optimizers and surfaces (checked names), steps, the preset and whose learning rates."""

    optimizers: list[str]
    surfaces: list[str]
    steps: int
    preset: str
    surface_lr: bool

    def recorded(self) -> dict[str, Any]:
        """As written into ``final.json`` and logged as params."""
        joined = {"surfaces": ",".join(self.surfaces), "optimizers": ",".join(self.optimizers)}
        return {"steps": self.steps, "preset": self.preset, "surface_lr": self.surface_lr} | joined


@dataclass(frozen=True)
class Made:
    files: list[Path]
    table: Any
    run_id: str | None


def make(settings: Settings, out: Path, gif: bool, tracking_uri: str | None) -> Made:
    """Everything into ``out`` (which exists); logged to ``tracking_uri`` when one is given."""
    recorded = settings.recorded()
    paths = run_all(
        settings.surfaces, settings.optimizers, settings.steps, settings.preset, settings.surface_lr
    )
    files = [draw_png(paths, out, recorded)]
    if gif:
        files.append(draw_gif(paths, out, recorded))
    files += write_tables(paths, out, recorded)
    run_id = log_run(paths, files, recorded, tracking_uri) if tracking_uri else None
    return Made(files, table(paths), run_id)


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
