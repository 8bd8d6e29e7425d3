"""``sweeps ui``: the MLflow UI (and optuna-dashboard) on a sweep until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from sweeps.cli.common import Storage, TrackingUri, console, err, failing


def ui(
    study_name: Annotated[
        str | None, typer.Argument(help="a sweep's study: open its MLflow store at its experiment")
    ] = None,
    tracking_uri: TrackingUri = None,
    storage: Storage = None,
    host: Annotated[
        str, typer.Option(help="interface to listen on; beyond loopback anyone who reaches it can browse")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="MLflow UI port")] = 5000,
    optuna: Annotated[
        bool, typer.Option("--optuna/--no-optuna", help="also start optuna-dashboard on the storage")
    ] = False,
    optuna_port: Annotated[int, typer.Option(min=1, max=65535, help="optuna-dashboard port")] = 8080,
) -> None:
    """Browse sweeps: the MLflow UI on the tracking store (optuna-dashboard with --optuna) until Ctrl-C."""
    from sweeps.engine.storage.rdb import StudyNotFoundError
    from sweeps.tools.servers import ServerFailed
    from sweeps.tools.ui import serve

    with failing(ServerFailed, code=1), failing(StudyNotFoundError, ValueError):
        serve(study_name, tracking_uri, storage, host, port, optuna, optuna_port, console, err)
