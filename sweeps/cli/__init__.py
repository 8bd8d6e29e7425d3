"""The ``sweeps`` command line: parses, validates and hands off. One module per group of commands, listed
here in the order people use them. Heavy imports (torch, Lightning, MLflow) happen inside the commands,
after the arguments and the config have been checked, so help and mistakes answer at once."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from sweeps.cli import benches, report, storage, sweep, tools, train, ui
from sweeps.cli.bootstrap import bootstrap
from sweeps.masking import mask
from sweeps.workdir import DEFAULT_FOLDER, FOLDER_ENV

app = typer.Typer(
    name="sweeps",
    help="Train, sweep and compare deep-learning optimizers on the MNIST CNN, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        print(f"sweeps {version('optimizer-sweeps')}")
        raise typer.Exit()


@app.callback()
def _every_command(
    context: typer.Context,
    _: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Keep the libraries' notes (MLflow, Lightning, Optuna).")
    ] = False,
    folder: Annotated[
        Path,
        typer.Option(
            "--dir",
            envvar=FOLDER_ENV,
            help="The tool's folder: what it writes here by default (studies, MLflow runs, checkpoints,"
            " logs, reports) goes there.",
        ),
    ] = Path(DEFAULT_FOLDER),
) -> None:
    """Passwords in URLs never reach the terminal or a log, whichever command runs; the tool's folder is
    exported, so that the workers a command starts use it too."""
    bootstrap(context, verbose, {FOLDER_ENV: str(folder)})


def main() -> None:
    """``sweeps`` as a process: an error no command handled is printed with its URLs masked, as everything
    the command printed was (its traceback would be printed after the command's masking ended), exit 1."""
    try:
        app()
    except Exception:
        sys.stderr.write(mask(traceback.format_exc()))
        raise SystemExit(1) from None


def _command(function: Callable[..., Any], name: str | None = None) -> None:
    """``function`` as a command whose help is its docstring as one paragraph: the terminal wraps it, so
    the docstring's own line breaks do not show."""
    app.command(name, help=" ".join((function.__doc__ or "").split()))(function)


_command(sweep.run_sweep, "run")
_command(sweep.status)
_command(report.report)
_command(ui.ui)
_command(train.train)
_command(sweep.worker)
_command(storage.storage_proxy)
_command(tools.optimizers)
_command(tools.bench)
_command(tools.trajectories)
_command(benches.bench_checkpoints, "bench-checkpoints")
_command(benches.bench_sweep, "bench-sweep")
_command(benches.bench_storage, "bench-storage")
_command(benches.bench_help, "bench-help")
_command(benches.gpu_check, "gpu-check")
