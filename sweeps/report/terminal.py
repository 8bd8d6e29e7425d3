"""The report's tables in the terminal (rich). A table's first column holds names (optimizers, workloads):
never wrapped or cut, however narrow the terminal; a cell wraps between its words, never inside a number, and
where even that does not fit, the table's lower-priority columns drop (the files keep them). Printed to a
file or a pipe, a table takes the width it needs, so ``sweeps report NAME > file`` keeps every row on one
line."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from sweeps.report.tables import Report

UNBOUNDED = 10_000
"""Columns a table may take when printed to a file: more than any table needs."""


def rich_table(report: Report, dropped: tuple[str, ...] = ()) -> Table:
    """``report`` as a rich table, less the ``dropped`` columns (named in its caption)."""
    notes = list(report.notes)
    if dropped:
        notes.append(f"Not shown at this width (in report.md and the CSV): {', '.join(dropped)}.")
    table = Table(title=report.title, caption="\n".join(notes), caption_justify="left")
    display = report.display.drop(columns=list(dropped))
    return named_rows(
        table, list(display.columns), [list(map(str, r)) for r in display.itertuples(index=False)]
    )


def named_rows(table: Table, columns: list[str], rows: list[list[str]]) -> Table:
    """``table`` with ``columns`` and ``rows``: the first column (names) never wrapped or cut, the others
    wrapping between words when the terminal is narrow, each at least as wide as its longest word."""
    first, *rest = columns
    table.add_column(first, no_wrap=True, min_width=max([len(first), *(len(row[0]) for row in rows)]))
    for i, column in enumerate(rest, start=1):
        words = [w for text in (column, *(row[i] for row in rows)) for w in text.split()]
        table.add_column(column, overflow="fold", min_width=max(map(len, words), default=1))
    for row in rows:
        table.add_row(*row)
    return table


def show(console: Console, table: Table | Report) -> None:
    """Print one table: at the terminal's width on a terminal (a report's lower-priority columns dropped
    until it fits); elsewhere at its natural width (rich caps a print at its console's width, hence a
    console of that width on the same file)."""
    if console.is_terminal:
        console.print(fitted(console, table) if isinstance(table, Report) else table)
        return
    table = rich_table(table) if isinstance(table, Report) else table
    needed = Measurement.get(console, console.options.update_width(UNBOUNDED), table).maximum
    Console(file=console.file, width=max(console.width, needed)).print(table)


def fitted(console: Console, report: Report) -> Table:
    """``report`` with its ``optional`` columns dropped, in order, until no cell must break inside a word."""
    dropped: tuple[str, ...] = ()
    table = rich_table(report)
    for column in report.optional:
        if Measurement.get(console, console.options.update_width(UNBOUNDED), table).minimum <= console.width:
            break
        dropped += (column,)
        table = rich_table(report, dropped)
    return table
