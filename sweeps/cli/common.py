"""What every command shares: the consoles, the exit codes, the options several commands take, and how a
mistake ends a command. Nothing heavy is imported here: ``sweeps --help`` and a mistyped command must answer
before torch, Lightning or MLflow would have loaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
        help="MLflow tracking URI (default: mlflow.db in the tool's folder)",
    ),
]
Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="SWEEPS_STORAGE",
        help="Optuna storage URL (default: optuna.db in the tool's folder)",
    ),
]
AllowImports = Annotated[
    str | None,
    typer.Option(
        envvar="SWEEPS_ALLOW_IMPORTS",
        help="comma-separated packages a spec's targets may be imported from, e.g. 'mynets,torch'; the study"
        " database names what a worker imports and calls (default: any)",
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

Out = Annotated[
    Path | None, typer.Option(help="where to write the JSON results (default: in the tool's folder)")
]
Dataset = Annotated[str, typer.Option(help="data set to time on")]
DataDir = Annotated[Path | None, typer.Option(help="folder with the IDX files")]


def in_folder(out: Path | None, name: str) -> Path:
    """``--out`` as given, else ``name`` in the tool's folder (``sweeps.workdir``, created): what a command
    writes by default stays out of the working directory."""
    from sweeps import workdir

    return out or workdir.made(name)


def reached_storage(storage: str | None) -> str:
    """``--storage`` (else ``$SWEEPS_STORAGE``, else the tool's folder's) as a URL that answers."""
    from sweeps.engine.servers import check_storage
    from sweeps.engine.storage.urls import storage_url

    url = storage_url(storage)
    check_storage(url)
    return url


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def failing(*errors: type[Exception], code: int = EXIT_BAD_INPUT) -> Iterator[None]:
    """One of ``errors`` ends the command: its message after ``error:``, exit ``code``, no traceback."""
    try:
        yield
    except errors as exc:
        raise fail(str(exc), code) from None


C = TypeVar("C")


def checked(loader: Callable[[Path, Sequence[str]], C], config: Path, overrides: list[str] | None) -> C:
    """A validated config, or exit 2 with the message that names every bad field."""
    from sweeps.config.files import ConfigError

    with failing(ConfigError):
        return loader(config, overrides or ())
