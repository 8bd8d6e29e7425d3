"""``sweeps report``: a finished sweep's conclusions, tables and figures written as Markdown, CSV, PNG and one
self-contained interactive HTML page, and logged on its parent run so the MLflow UI shows them beside the
runs; with several sweeps, also their comparison as workloads (performance profiles)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import plotly.graph_objects as go

from sweeps.config.sweep import SweepConfig
from sweeps.names import COMMAND_ATTR, PARENT_ATTR, SEARCH
from sweeps.report import figures
from sweeps.report.answer import answer
from sweeps.report.evidence import LEVEL, Evidence, weigh
from sweeps.report.evidence_tables import interval_table, pairs_table, tunability_table
from sweeps.report.page import write_page
from sweeps.report.results import Results, collect, measured_on
from sweeps.report.search_plots import optuna_figures
from sweeps.report.stats import TestMethod
from sweeps.report.tables import Report, epoch_table, setting, shootout_table
from sweeps.report.verdict import verdict
from sweeps.report.workloads import Workload, profile, profile_table, workload_table
from sweeps.tracking import runs


@dataclass(frozen=True)
class Written:
    """One sweep's report: what was shown, where it went, and what it rests on."""

    answer: list[str]
    tables: list[Report]
    conclusions: list[str]
    files: list[Path]
    skipped: dict[str, str]
    workload: Workload
    tracking_uri: str
    parent_run: str


def tables_of(results: Results, evidence: Evidence) -> list[Report]:
    """Every table of a sweep, the ones people read first first; the pairwise tests last."""
    tables = [shootout_table(results, evidence)] if results.tuned or results.default else []
    tables.append(epoch_table(results, evidence))
    tables += [interval_table(evidence, p) for p in evidence.phases.values() if len(p.seeds) > 1]
    tables += [tunability_table(results, evidence)] if evidence.tunability else []
    return tables + [pairs_table(evidence, p, p.comparison) for p in evidence.phases.values() if p.comparison]


def intro(results: Results, evidence: Evidence) -> list[str]:
    """What every number shares: the setting, the splits, and where there are seeds to compare, the
    statistics."""
    test = evidence.test_name
    retrained = bool(results.tuned or results.default)
    lines = [
        setting(results),
        f"Splits: search trials are scored on the {measured_on(results.sweep, SEARCH)} split, the one the"
        " search selected on"
        + ("; retrains (default, tuned) on the test split, which no selection saw." if retrained else "."),
    ]
    if all(len(p.seeds) < 2 for p in evidence.phases.values()):  # one seed: no spread, nothing tested
        return lines
    return [
        *lines,
        f"Statistics: mean ± std [{LEVEL:.0%} Student t interval] over seeds; seeds are paired (seed i is the"
        f" same initialisation and data order for every optimizer); a {test} per pair, Holm-corrected across"
        f" all pairs at α = {evidence.alpha:g}, decides the group ranks on {evidence.ranked_on}.",
    ]


def write(
    out: Path,
    heading: str,
    lines: Sequence[str],
    conclusions: Sequence[str],
    tables: Sequence[Report],
    interactive: Mapping[str, go.Figure],
    pngs: Sequence[Path] = (),
    links: Mapping[str, str] | None = None,
    leading: Sequence[str] = (),
) -> list[Path]:
    """One CSV per table, ``report.md`` (every number, the PNGs) and ``report.html`` (the same and the
    interactive figures, self-contained); both open with the ``leading`` sentences (the answer)."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = [f"# {heading}", *(f"**{line}**" for line in leading), *lines]
    markdown += ["## Conclusions", *(f"- {c}" for c in conclusions)] if conclusions else []
    written = []
    for table in tables:
        written.append(out / f"{table.name}.csv")
        table.numbers.to_csv(written[-1], index=False)
        markdown += [f"## {table.title}", table.display.to_markdown(index=False)]
        markdown += [f"- {n}" for n in table.notes]
    relative = [f.relative_to(out).as_posix() for f in pngs]
    markdown += ["## Figures", *(f"![{Path(f).stem}]({f})" for f in relative)] if relative else []
    markdown += ["## Reports", *(f"- [{k}]({u})" for k, u in links.items())] if links else []
    markdown.append("The learning curves and the interactive figures are in report.html.")
    (out / "report.md").write_text("\n\n".join(markdown) + "\n", encoding="utf-8")
    page = write_page(out / "report.html", heading, lines, conclusions, tables, interactive, links, leading)
    return [*written, out / "report.md", page]


def make(
    study: optuna.Study,
    sweep: SweepConfig,
    tracking_uri: str,
    out: Path,
    target: float | None = None,
    alpha: float = 0.05,
    test: TestMethod = "t",
    storage: str | None = None,
) -> Written:
    """Conclusions, tables and figures of a finished sweep into ``out``, and the same files as artifacts
    (``report/``) on the sweep's parent run, so the MLflow UI shows them beside the runs; ``storage`` is
    the study's URL, named in the commands the report suggests."""
    results = collect(study, sweep, tracking_uri)
    if not results.search:
        raise ValueError(f"study {sweep.study.name!r} has no completed trial yet; nothing to report")
    evidence = weigh(results, target, alpha, test)
    tables = tables_of(results, evidence)
    conclusions = verdict(results, evidence)
    pngs, skipped = optuna_figures(study, results, out)
    lines = intro(results, evidence)
    leading = answer(results, evidence, study.user_attrs.get(COMMAND_ATTR, ()), storage)
    interactive = figures.for_sweep(study, results, evidence)
    heading = f"Sweep {sweep.study.name}"
    files = pngs + write(out, heading, lines, conclusions, tables, interactive, pngs, leading=leading)
    parent = study.user_attrs[PARENT_ATTR]
    runs.log_folder(tracking_uri, parent, out, "report")
    workload = Workload(sweep.study.name, results, evidence)
    return Written(leading, tables, conclusions, files, skipped, workload, tracking_uri, parent)


def make_workloads(sweeps: Sequence[Written], out: Path) -> tuple[list[Report], list[Path]]:
    """The sweeps compared as workloads into ``out`` (each sweep's own report is in ``out/NAME``), logged
    on every sweep's parent run under ``report/workloads``."""
    workloads = [w.workload for w in sweeps]
    found = profile(workloads)
    tables = [workload_table(workloads, found), profile_table(found)]
    names = ", ".join(w.name for w in workloads)
    lines = [
        f"Workloads: {names}; the headline entry of each optimizer (tuned where retrained) on each.",
        "Each workload's target accuracy is its own; times are training seconds (wall clock).",
    ]
    links = {w.name: f"{w.name}/report.html" for w in workloads}
    interactive = {"Performance profile": figures.profile(found)}
    files = write(out, f"Workloads: {names}", lines, [], tables, interactive, links=links)
    for written in sweeps:
        runs.log_files(written.tracking_uri, written.parent_run, files, "report/workloads")
    return tables, files
