"""The interactive figures of the report page, in plotly: learning curves with interval bands, tunability,
the performance profile, and Optuna's own plotly plots of the search. Each is a figure object; ``page``
writes them into one HTML file."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import optuna
import optuna.visualization
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from sweeps.names import TUNED
from sweeps.report.evidence import LEVEL, WITHIN, Evidence, band
from sweeps.report.results import Entry, Results
from sweeps.report.search_plots import draw_search
from sweeps.report.stats import Profile

PALETTE = qualitative.Dark24
SHARES = ("#555555", "#aaaaaa")
"""The tunability bars' greys, apart from the optimizers' colours, which the same figure's legend uses."""


def colours(names: Sequence[str]) -> dict[str, str]:
    """One colour per optimizer, the same in every figure of a report."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def curves(results: Results) -> go.Figure:
    """Validation accuracy and loss per epoch: per optimizer its best (tuned where retrained, solid) and its
    untuned default (dashed), each with the interval of the mean over its seeds as a band."""
    first = results.first_curve
    fig = make_subplots(1, 2, subplot_titles=(first[1], "validation loss"))
    palette = colours(list(results.headline))
    for name, entry in results.headline.items():
        label = f"{name} (tuned)" if entry.phase == TUNED else name
        _line(fig, entry, palette[name], "solid", label, first[0])
        if name in results.default:
            _line(fig, results.default[name], palette[name], "dash", f"{name} (default)", first[0])
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(type="log", row=1, col=2)
    bands = (
        f"bands: {LEVEL:.0%} interval of the mean over seeds"
        if any(e.seeds > 1 for e in results.headline.values())
        else "one seed each: no bands"
    )
    fig.update_layout(title=f"{results.sweep.study.name}: {results.sweep.data.label} ({bands})", height=480)
    return fig


def _line(fig: go.Figure, entry: Entry, colour: str, dash: str, label: str, first: str) -> None:
    epochs = np.arange(1, entry.epochs + 1)
    for col, metric in ((1, first), (2, "val_loss")):
        mean, low, high = band(entry, metric)
        if entry.seeds > 1:
            outline = np.concatenate([epochs, epochs[::-1]])
            edge = np.concatenate([high, low[::-1]])
            fig.add_trace(
                go.Scatter(
                    x=outline,
                    y=edge,
                    fill="toself",
                    fillcolor=colour,
                    opacity=0.15,
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=label,
                ),
                row=1,
                col=col,
            )
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=mean,
                name=label,
                mode="lines+markers",
                line=dict(color=colour, dash=dash),
                showlegend=col == 1,
                legendgroup=label,
            ),
            row=1,
            col=col,
        )


def tunability(results: Results, evidence: Evidence) -> go.Figure:
    """Left: the share of each optimizer's search trials within 1 % and 5 % of its best. Right: every
    completed search trial's value against its learning rate (pruned and failed ones have no value)."""
    fig = make_subplots(
        1,
        2,
        subplot_titles=("share of search trials near the optimizer's best", "search trials: value by lr"),
    )
    names = list(evidence.tunability)
    for i, within in enumerate(WITHIN):
        fig.add_trace(
            go.Bar(
                x=names,
                y=[evidence.tunability[n][i].share for n in names],
                name=f"within {within:.0%}",
                marker_color=SHARES[i % len(SHARES)],
            ),
            row=1,
            col=1,
        )
    palette = colours(results.sweep.search.optimizers)
    for name in names:
        done = [t for t in results.trials if t.optimizer == name and t.lr and not math.isnan(t.value)]
        fig.add_trace(
            go.Scatter(
                x=[t.lr for t in done],
                y=[t.value for t in done],
                mode="markers",
                name=name,
                marker=dict(color=palette[name], size=9),
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(title_text="share", range=[0, 1], row=1, col=1)
    fig.update_xaxes(title_text="learning rate", type="log", row=1, col=2)
    fig.update_yaxes(title_text=results.sweep.study.metric, row=1, col=2)
    fig.update_layout(title="Tunability (search trials)", height=480, barmode="group")
    return fig


def profile(found: Profile) -> go.Figure:
    """ρ(τ) per optimizer: the share of workloads it reached the target on within τ× the fastest."""
    fig = go.Figure()
    palette = colours(list(found.rho))
    for name, rho in found.rho.items():
        fig.add_trace(go.Scatter(x=found.taus, y=rho, name=name, line=dict(color=palette[name], shape="hv")))
    fig.update_layout(
        title=f"Performance profile over {len(found.workloads)} workloads",
        xaxis_title="τ (time to target over the fastest optimizer's)",
        yaxis_title="share of workloads",
        yaxis_range=[0, 1.02],
        height=480,
    )
    return fig


def for_sweep(study: optuna.Study, results: Results, evidence: Evidence) -> Mapping[str, go.Figure]:
    """Every figure of one sweep's page, by title; of Optuna's plots those the study supports (the PNGs'
    ``skipped`` says why the others are missing)."""
    figures = {"Learning curves": curves(results)}
    if evidence.tunability:
        figures["Tunability"] = tunability(results, evidence)
    drawn, _ = draw_search(study, results, optuna.visualization, lambda figure: not figure.data)
    return figures | {name.replace("_", " ").capitalize(): fig for name, fig in drawn.items()}
