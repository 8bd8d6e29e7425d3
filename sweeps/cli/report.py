"""``sweeps report``: what a finished sweep found, or several compared as workloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from sweeps import workdir
from sweeps.cli.bootstrap import quiet_libraries
from sweeps.cli.common import Storage, console, fail, failing, reached_storage


def report(
    study_names: Annotated[
        list[str], typer.Argument(help="a sweep's study name; several: each one workload of a comparison")
    ],
    storage: Storage = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow URI (default: the one each study records)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="folder for the files (default: reports/NAME in the tool's folder; several: reports/A+B)"
        ),
    ] = None,
    target_acc: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="accuracy for the time to target (default: 95 % of the best)"),
    ] = None,
    alpha: Annotated[
        float, typer.Option(min=0.0001, max=0.5, help="significance level of the group ranks")
    ] = 0.05,
    test: Annotated[
        Literal["t", "wilcoxon"],
        typer.Option(help="paired test per pair of optimizers: t (paired t) or wilcoxon (signed-rank)"),
    ] = "t",
) -> None:
    """Compare the optimizers of a sweep: groups, intervals, tunability and the tables printed, saved as
    Markdown, CSV, PNG and one interactive HTML page, and logged on the sweep's parent run. Several sweeps
    are also compared as workloads, by performance profiles."""
    quiet_libraries()
    from sweeps.engine.storage.rdb import StudyNotFoundError
    from sweeps.engine.study import open_sweep, tracking_store
    from sweeps.report.publish import make, make_workloads
    from sweeps.report.terminal import show

    if len(set(study_names)) < len(study_names):
        raise fail(f"a sweep is named twice: {' '.join(study_names)}")
    several = len(study_names) > 1
    folder = out or workdir.folder() / workdir.REPORTS / "+".join(study_names)
    with failing(StudyNotFoundError, ValueError):
        url = reached_storage(storage)
        sweeps = [open_sweep(name, url) for name in study_names]
        written = [
            make(
                found,
                sweep,
                tracking_store(found, tracking_uri),
                folder / sweep.study.name if several else folder,
                target_acc,
                alpha,
                test,
                url,
            )
            for found, sweep in sweeps
        ]
    for one in written:
        for line in one.answer:
            console.print(f"[bold]{line}[/]", highlight=False, soft_wrap=not console.is_terminal)
        for table in one.tables:
            if table.terminal:
                show(console, table)
        for line in one.conclusions:
            console.print(f"[bold]•[/] {line}", highlight=False)
        for name, why in one.skipped.items():
            console.print(f"[dim]skipped plot {name}: {why}[/]")
    files = [f for one in written for f in one.files]
    if several:
        tables, compared = make_workloads(written, folder)
        for table in tables:
            show(console, table)
        files += compared
    names = ", ".join(f.relative_to(folder).as_posix() for f in files)
    console.print(f"written to {folder}/ and logged on the parent run{'s' * several}: {names}")
