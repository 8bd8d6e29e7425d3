"""What every command shares: the consoles, the exit codes, the options several commands take, and how a
mistake ends a command. Nothing heavy is imported here: ``sweeps --help`` and a mistyped command must answer
before torch, Lightning or MLflow would have loaded."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI (default: sqlite:///mlflow.db here)",
    ),
]
Storage = Annotated[
    str | None,
    typer.Option(
        "--storage", envvar="SWEEPS_STORAGE", help="Optuna storage URL (default: the embedded SQLite file)"
    ),
]
Pack = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=256,
        envvar="SWEEPS_PACK",
        help="trials each worker trains as one stacked model (default: study.pack)",
    ),
]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


C = TypeVar("C")


def checked(loader: Callable[[Path, Sequence[str]], C], config: Path, overrides: list[str] | None) -> C:
    """A validated config, or exit 2 with the message that names every bad field."""
    from sweeps.config.files import ConfigError

    try:
        return loader(config, overrides or ())
    except ConfigError as exc:
        raise fail(str(exc)) from None


VERBOSE_ENV = "SWEEPS_VERBOSE"
"""Set by ``sweeps -v``; inherited by the workers a sweep starts, so their logs keep the libraries' lines."""
QUIET = ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning", "mlflow")


def quiet_libraries() -> None:
    """The libraries' banners, tips and notes (Lightning's device lines and tips, MLflow's table creation,
    its missing-experiment and pickle notes) are noise beside one line per epoch; ``sweeps -v`` keeps them.
    MLflow sets its logger's level when it is imported, hence its variable as well as the level."""
    if os.environ.get(VERBOSE_ENV):
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # its pickle caution: we load tensors only
    for creates_experiment in ("lightning.pytorch.loggers.mlflow", "pytorch_lightning.loggers.mlflow"):
        logging.getLogger(creates_experiment).setLevel(logging.ERROR)  # "not found. Creating it": expected
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings(
        "ignore", message=r".*The `srun` command is available on your system"
    )  # SLURM nodes
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def log_progress() -> None:
    """A worker's log (its stderr) shows what the engine reports at INFO: a trial pruned, or resumed from
    its checkpoint at some epoch."""
    engine = logging.getLogger("sweeps")
    engine.setLevel(logging.INFO)
    if not engine.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        engine.addHandler(handler)
