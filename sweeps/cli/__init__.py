"""The ``sweeps`` command line: parses, validates and hands off. One module per group of commands, listed
here in the order people use them. Heavy imports (torch, Lightning, MLflow) happen inside the commands,
after the arguments and the config have been checked, so help and mistakes answer at once."""

from __future__ import annotations

import typer

from sweeps.cli import benches, report, sweep, tools, train, ui

app = typer.Typer(
    name="sweeps",
    help="Train, sweep and compare deep-learning optimizers on the MNIST CNN, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _every_command() -> None:
    """Passwords in URLs never reach the terminal or a log, whichever command runs."""
    from sweeps.tracking.uris import mask_output

    mask_output()


app.command("run")(sweep.run_sweep)
app.command()(sweep.status)
app.command()(report.report)
app.command()(ui.ui)
app.command()(train.train)
app.command()(sweep.worker)
app.command()(tools.optimizers)
app.command()(tools.bench)
app.command()(tools.trajectories)
app.command("bench-checkpoints")(benches.bench_checkpoints)
app.command("bench-sweep")(benches.bench_sweep)
app.command("bench-storage")(benches.bench_storage)
app.command("gpu-check")(benches.gpu_check)
