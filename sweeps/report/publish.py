"""``sweeps report``: a finished sweep's tables and figures written as Markdown, CSV and HTML, and logged on
its parent run so the MLflow UI shows them beside the runs."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from sweeps.config.sweep import SweepConfig
from sweeps.names import PARENT_ATTR
from sweeps.report import plots
from sweeps.report.results import collect
from sweeps.report.tables import Report, reports
from sweeps.tracking import runs


def write(tables: Sequence[Report], out: Path, heading: str, figures: Sequence[Path] = ()) -> list[Path]:
    """``report.md`` and ``report.html`` (every table, then the figures) and one CSV per table."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = [f"# {heading}"]
    page = [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(heading)}</title>",
        f"<h1>{html.escape(heading)}</h1>",
    ]
    written = []
    for table in tables:
        markdown += [
            f"## {table.title}",
            table.display.to_markdown(index=False),
            *(f"- {n}" for n in table.notes),
        ]
        page += [f"<h2>{html.escape(table.title)}</h2>", table.display.to_html(index=False)]
        page += [f"<p>{html.escape(n)}</p>" for n in table.notes]
        csv = out / f"{table.name}.csv"
        table.numbers.to_csv(csv, index=False)
        written.append(csv)
    relative = [f.relative_to(out) for f in figures]
    markdown += ["## Figures", *(f"![{f.stem}]({f.as_posix()})" for f in relative)] if relative else []
    page += (
        ["<h2>Figures</h2>", *(f"<img src='{f.as_posix()}' alt='{f.stem}'>" for f in relative)]
        if relative
        else []
    )
    for name, text in (("report.md", "\n\n".join(markdown) + "\n"), ("report.html", "\n".join(page) + "\n")):
        (out / name).write_text(text)
        written.append(out / name)
    return written


@dataclass(frozen=True)
class Written:
    tables: list[Report]
    files: list[Path]
    skipped: dict[str, str]


def make(
    study: optuna.Study, sweep: SweepConfig, tracking_uri: str, out: Path, target: float | None = None
) -> Written:
    """Tables and figures of a finished sweep into ``out``, and the same files as artifacts (``report/``) on
    the sweep's parent run, so the MLflow UI shows them beside the runs."""
    results = collect(study, sweep, tracking_uri)
    if not results.search:
        raise ValueError(f"study {sweep.study.name!r} has no completed trial yet; nothing to report")
    tables = reports(results, target)
    figures = [plots.curves(results, out / "curves.png")]
    drawn, skipped = plots.optuna_figures(study, results, out)
    figures += drawn
    files = figures + write(tables, out, f"Sweep {sweep.study.name}", figures)
    runs.log_folder(tracking_uri, study.user_attrs[PARENT_ATTR], out, "report")
    return Written(tables, files, skipped)
