"""Where each optimizer's path ended: a table for the terminal, and the same rows as CSV and JSON files."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from models.surfaces import get_surface
from sweeps.tools.trajectories.simulate import SURFACE_LRS, Path2D, nearest

SURFACE_KEYS = ("title", "summary", "start", "minima", "local_minima", "saddles")
"""What ``final.json`` says of each surface."""
FILES = {"png": "trajectories.png", "gif": "trajectories.gif", "csv": "final.csv", "json": "final.json"}


def table(paths: Sequence[Path2D]) -> Any:
    """A rich table of where each path ended, one section per surface, narrow enough for 80 columns."""
    from rich.table import Table

    out = Table("surface", "optimizer", "lr", "last (x, y)", "f", "ended at")
    previous = None
    for row in rows(paths):
        if previous is not None and row["surface"] != previous:
            out.add_section()
        previous = row["surface"]
        ended = row["ended_at"].replace("minimum", "min")
        if row["diverged_at"] is not None:
            ended = f"[red]diverged @{row['diverged_at']}[/]"
        out.add_row(
            row["surface"],
            row["optimizer"],
            f"{row['lr']:g}",
            f"({row['final_x']:.2f}, {row['final_y']:.2f})",
            f"{row['final_loss']:.3g}",
            ended,
        )
    return out


def rows(paths: Sequence[Path2D]) -> list[dict[str, Any]]:
    """One row per path: where it ended, at what loss, and whether it diverged."""
    out = []
    for path in paths:
        surface = get_surface(path.surface)
        x, y = path.final
        out.append(
            {
                "surface": path.surface,
                "optimizer": path.optimizer,
                "lr": path.lr,
                "steps": len(path.points) - 1,
                "diverged_at": path.diverged_at,
                "final_x": x,
                "final_y": y,
                "final_loss": path.final_loss,
                "start_loss": float(path.losses[0]),
                "ended_at": "diverged" if path.diverged_at is not None else nearest(surface, path.final),
                "path_length": path.length,
            }
        )
    return out


def write_tables(paths: Sequence[Path2D], out: Path, settings: Mapping[str, Any]) -> list[Path]:
    """``final.csv`` (one row per optimizer and surface) and ``final.json`` (the same, with every
    hyperparameter, the settings and each surface's known points)."""
    table = rows(paths)
    csv_path, json_path = out / FILES["csv"], out / FILES["json"]
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in table)
    surfaces = {}
    for name in dict.fromkeys(p.surface for p in paths):
        lrs = SURFACE_LRS.get(name)
        note = lrs.why if lrs and settings.get("surface_lr", True) else "preset learning rates"
        surfaces[name] = {k: getattr(get_surface(name), k) for k in SURFACE_KEYS} | {"lr_note": note}
    hyper = {(p.surface, p.optimizer): _jsonable(p.hyperparams) for p in paths}
    document = {
        "settings": dict(settings),
        "surfaces": surfaces,
        "results": [row | {"hyperparams": hyper[row["surface"], row["optimizer"]]} for row in table],
    }
    json_path.write_text(json.dumps(document, indent=2, allow_nan=True) + "\n")
    return [csv_path, json_path]


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
