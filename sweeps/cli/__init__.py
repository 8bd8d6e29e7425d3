"""The ``sweeps`` command line: parses, validates and hands off. One module per group of commands, listed
here in the order people use them. Heavy imports (torch, Lightning, MLflow) happen inside the commands,
after the arguments and the config have been checked, so help and mistakes answer at once."""

from __future__ import annotations

import sys
import traceback

import typer

from sweeps.cli import benches, report, storage, sweep, tools, train, ui
from sweeps.cli.bootstrap import bootstrap
from sweeps.masking import mask

app = typer.Typer(
    name="sweeps",
    help="Train, sweep and compare deep-learning optimizers on the MNIST CNN, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _every_command(context: typer.Context) -> None:
    """Passwords in URLs never reach the terminal or a log, whichever command runs."""
    bootstrap(context)


def main() -> None:
    """``sweeps`` as a process: an error no command handled is printed with its URLs masked, as everything
    the command printed was (its traceback would be printed after the command's masking ended), exit 1."""
    try:
        app()
    except Exception:
        sys.stderr.write(mask(traceback.format_exc()))
        raise SystemExit(1) from None


app.command("run")(sweep.run_sweep)
app.command()(sweep.status)
app.command()(report.report)
app.command()(ui.ui)
app.command()(train.train)
app.command()(sweep.worker)
app.command()(storage.storage_proxy)
app.command()(tools.optimizers)
app.command()(tools.bench)
app.command()(tools.trajectories)
app.command("bench-checkpoints")(benches.bench_checkpoints)
app.command("bench-sweep")(benches.bench_sweep)
app.command("bench-storage")(benches.bench_storage)
app.command("gpu-check")(benches.gpu_check)
