"""The report as one self-contained HTML page: the conclusions, every table with its notes, and the
interactive figures, with plotly.js embedded once in the head. Nothing is fetched, so the page opens offline,
from a mail attachment, and in MLflow's artifact view (a sandboxed iframe that may run scripts)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from sweeps.report.tables import Report

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1500px; padding: 0 1em }
.scroll { overflow-x: auto }
table { border-collapse: collapse; font-size: 13px; margin: .4em 0 }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap }
th { background: #f3f3f3 }
td:first-child, th:first-child { text-align: left; font-weight: 600 }
.notes { color: #555; font-size: 13px; margin-top: .2em }
.verdict li { margin: .35em 0 }
.answer { font-size: 1.15em; font-weight: 600 }
nav a { margin-right: 1.2em }
"""
FIGURE_CONFIG = {"displaylogo": False, "responsive": True}


def anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def table_html(report: Report) -> str:
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    return (
        f"<h2 id='{anchor(report.title)}'>{html.escape(report.title)}</h2>"
        f"<div class='scroll'>{report.display.to_html(index=False, border=0)}</div>"
        f"<ul class='notes'>{notes}</ul>"
    )


def figure_html(title: str, figure: go.Figure) -> str:
    return f"<h2 id='{anchor(title)}'>{html.escape(title)}</h2>" + figure.to_html(
        full_html=False, include_plotlyjs=False, config=FIGURE_CONFIG
    )


def write_page(
    path: Path,
    heading: str,
    intro: Sequence[str],
    conclusions: Sequence[str],
    tables: Sequence[Report],
    figures: Mapping[str, go.Figure],
    links: Mapping[str, str] | None = None,
    leading: Sequence[str] = (),
) -> Path:
    """``path``: the heading, the ``leading`` sentences (the answer), ``intro`` lines, the ``conclusions``
    as a list, a contents bar, every table, every figure, and ``links`` (label → relative URL) to related
    pages."""
    titles = [t.title for t in tables] + list(figures)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(heading)}</title><style>{STYLE}</style>",
        f"<script>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(heading)}</h1>",
        *(f"<p class='answer'>{html.escape(line)}</p>" for line in leading),
        *(f"<p>{html.escape(line)}</p>" for line in intro),
        "<nav>" + "".join(f"<a href='#{anchor(t)}'>{html.escape(t)}</a>" for t in titles) + "</nav>",
    ]
    if conclusions:
        items = "".join(f"<li>{html.escape(c)}</li>" for c in conclusions)
        parts.append(f"<h2 id='conclusions'>Conclusions</h2><ul class='verdict'>{items}</ul>")
    parts += [table_html(t) for t in tables]
    parts += [figure_html(title, figure) for title, figure in figures.items()]
    if links:
        items = "".join(f"<li><a href='{html.escape(u)}'>{html.escape(k)}</a></li>" for k, u in links.items())
        parts.append(f"<h2 id='reports'>Reports</h2><ul>{items}</ul>")
    path.write_text("\n".join([*parts, "</body></html>"]) + "\n", encoding="utf-8")
    return path
