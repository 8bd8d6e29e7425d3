"""The report's tables in the terminal (rich). A table's first column holds names (optimizers, workloads):
never wrapped or cut, however narrow the terminal; numbers fold onto more lines instead of being cut. Printed
to a file or a pipe, a table takes the width it needs, so ``sweeps report NAME > file`` keeps every row on
one line."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from sweeps.report.tables import Report

UNBOUNDED = 10_000
"""Columns a table may take when printed to a file: more than any table needs."""


def rich_table(report: Report) -> Table:
    table = Table(title=report.title, caption="\n".join(report.notes), caption_justify="left")
    return named_rows(
        table,
        list(report.display.columns),
        [list(map(str, r)) for r in report.display.itertuples(index=False)],
    )


def named_rows(table: Table, columns: list[str], rows: list[list[str]]) -> Table:
    """``table`` with ``columns`` and ``rows``: the first column (names) never wrapped or cut, the others
    folding onto more lines when the terminal is narrow."""
    first, *rest = columns
    table.add_column(first, no_wrap=True, min_width=max([len(first), *(len(row[0]) for row in rows)]))
    for column in rest:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def show(console: Console, table: Table | Report) -> None:
    """Print one table: at the terminal's width on a terminal; elsewhere at its natural width (rich caps a
    print at its console's width, hence a console of that width on the same file)."""
    table = rich_table(table) if isinstance(table, Report) else table
    if console.is_terminal:
        console.print(table)
        return
    needed = Measurement.get(console, console.options.update_width(UNBOUNDED), table).maximum
    Console(file=console.file, width=max(console.width, needed)).print(table)
