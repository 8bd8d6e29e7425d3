"""Printed tables: optimizer names whole in a narrow terminal and in a file; numbers fold, never cut."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

from sweeps.report.tables import Report
from sweeps.report.terminal import show

NAMES = ["adadelta", "rmsprop", "momentum", "nesterov"]
CELL = "0.8815 ± 0.0043 [0.8762, 0.8868]"


def _report() -> Report:
    display = pd.DataFrame([{"optimizer": n, "acc": CELL, "loss": CELL, "group": "1"} for n in NAMES])
    return Report("t", "Table", display, display, ("a note",))


def _printed(console: Console) -> list[str]:
    show(console, _report())
    return console.file.getvalue().splitlines()


def test_a_narrow_terminal_keeps_names_whole_and_folds_numbers() -> None:
    lines = _printed(Console(file=io.StringIO(), width=40, force_terminal=True, color_system=None))
    assert all(len(line) <= 40 for line in lines)
    rows = [line for line in lines if any(n in line for n in NAMES)]
    assert [next(n for n in NAMES if n in line) for line in rows] == NAMES  # each name whole, on one line
    assert "…" not in "".join(lines)  # nothing cut: the numbers wrap instead
    assert "0.8868]" in "".join(lines)


def test_output_to_a_file_keeps_every_row_on_one_line() -> None:
    lines = _printed(Console(file=io.StringIO(), width=60))  # a file: not a terminal, 60 columns
    rows = [line for line in lines if any(n in line for n in NAMES)]
    assert len(rows) == len(NAMES)
    assert all(line.count(CELL) == 2 for line in rows)


def test_at_80_columns_no_number_is_split_and_the_optional_columns_drop_first() -> None:
    row = {"optimizer": "momentum", "acc @1": "0.7485", "loss @1": "0.7180", "acc @2": "0.7790"}
    row |= {"loss @2": "0.5972", "time": "0:01.0", "rank": "1", "settings": "lr=0.0307 momentum=0.795 bs=64"}
    display = pd.DataFrame([row, {**row, "optimizer": "adam", "settings": "lr=1.0e-03 bs=64"}])
    report = Report("e", "Table", display, display, ("a note",), optional=("loss @1", "acc @1", "time"))
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    show(console, report)
    lines = console.file.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if "optimizer" in line)
    assert "loss @1" not in header and "acc @1" in header and "settings" in header
    text = "".join(lines)
    for word in ("0.7485", "0.5972", "0:01.0", "lr=0.0307", "momentum=0.795", "lr=1.0e-03"):
        assert word in text, word  # whole, on one line
    assert "Not shown at this width (in report.md and the CSV): loss @1." in text
