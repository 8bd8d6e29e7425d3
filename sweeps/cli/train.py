"""``sweeps train``: one tracked training run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from sweeps.cli.bootstrap import quiet_libraries
from sweeps.cli.common import EXIT_DIVERGED, TrackingUri, checked, console, failing


def train(
    config: Annotated[Path, typer.Argument(help="YAML run config, e.g. conf/train.yaml")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Train once with one optimizer and record the run (params, per-epoch curves, config) in MLflow."""
    from sweeps.config.train import load

    cfg = checked(load, config, overrides)
    from sweeps.engine.runtime import tune_allocator

    tune_allocator()
    from models.data.files import DatasetNotFound
    from sweeps.config.files import ConfigError
    from sweeps.engine.servers import Unreachable, check_tracking
    from sweeps.engine.training import train as run
    from sweeps.tracking.uris import tracking_uri as resolve_tracking

    quiet_libraries()  # after the imports: Lightning sets its loggers' level when it is imported

    with failing(ConfigError, DatasetNotFound, Unreachable):
        uri = resolve_tracking(tracking_uri)
        check_tracking(uri)
        result = run(cfg, uri, show=_epoch)
    if result.outcome == "diverged":
        console.print(f"[bold red]diverged:[/] {result.reason} (run {result.run_id} marked FAILED)")
        raise typer.Exit(EXIT_DIVERGED)
    last = {k: v for k, v in (result.history or [{}])[-1].items() if k not in ("epoch", "epoch_seconds")}
    found = f"best val_acc {result.best_val_acc:.4f}" if "val_acc" in last else _shown(last)
    console.print(f"[bold green]done[/] {found} in {result.total_seconds:.1f}s (run {result.run_id})")


def _epoch(metrics: Mapping[str, float], epoch: int) -> None:
    """One line per epoch as the engine reports it: the metrics, then the epoch's seconds."""
    shown = _shown({k: v for k, v in metrics.items() if k != "epoch_seconds"})
    console.print(f"epoch {epoch:>3}  {shown}  {metrics['epoch_seconds']:.1f}s", highlight=False)


def _shown(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{key} {value:.4f}" for key, value in metrics.items()) or "no metrics logged"
