"""Optuna's plots of the search: which a sweep gets, drawn by both of Optuna's backends, which share one API:
its plotly one for the interactive page (``figures``), its matplotlib one for PNG files, which the Markdown
report and the MLflow artifact view show without a browser. They see the search trials only, not the
retrains; a plot the study cannot support (too few trials, one parameter) is skipped with the reason."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

from sweeps.config.imports import optimizer_spec  # noqa: E402
from sweeps.names import SEARCH, phase  # noqa: E402
from sweeps.report.results import Results  # noqa: E402

SKIPPED = (ValueError, RuntimeError, ZeroDivisionError)
"""What Optuna raises for a plot the study cannot support (too few trials, one parameter)."""
MIN_TRIALS = 10
"""Completed search trials per optimizer below which the search's structure is not plotted."""
DPI = 110


def search_study(study: optuna.Study) -> optuna.Study:
    """The study's finished search trials alone, in memory: what Optuna's plots should describe."""
    copy = optuna.create_study(directions=study.directions)
    copy.add_trials(
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if phase(t) == SEARCH
    )
    return copy


def search_plots(search: optuna.Study, results: Results, backend: ModuleType) -> dict[str, Callable[[], Any]]:
    """Plot name → a call drawing it with ``backend`` (``optuna.visualization`` or its ``matplotlib``) on
    ``search``, the study's :func:`search_study`; the search's structure only with enough trials."""
    names = ["accuracy" if "acc" in results.sweep.study.metric else results.sweep.study.metric]
    if len(search.directions) > 1:
        targets = [*names, "training seconds"]
        return {"pareto_front": lambda: backend.plot_pareto_front(search, target_names=targets)}
    plots: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: backend.plot_optimization_history(search),
    }
    if too_few(search, results):
        return plots
    plots["param_importances"] = lambda: backend.plot_param_importances(search)
    plots["parallel_coordinate"] = lambda: backend.plot_parallel_coordinate(search)
    for name in results.sweep.search.optimizers:
        space = results.sweep.search.space(name)
        if "lr" in space and "momentum" in space and "momentum" in optimizer_spec(name).hyperparams:
            params = [f"{name}.lr", f"{name}.momentum"]
            plots[f"contour_{name}"] = lambda p=params: backend.plot_contour(search, params=p)
    return plots


def draw_search(
    study: optuna.Study, results: Results, backend: ModuleType, empty: Callable[[Any], bool]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The plots of :func:`search_plots` drawn with ``backend``, and per plot not drawn (the study cannot
    support it, or it would be ``empty``) why, in the plots' order."""
    drawn: dict[str, Any] = {}
    search = search_study(study)
    few = too_few(search, results)
    skipped = {"importances, parallel coordinates, contours": few} if few else {}
    for name, draw in search_plots(search, results, backend).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                drawn[name] = draw()
        except SKIPPED as exc:
            skipped[name] = str(exc) or type(exc).__name__
            continue
        if empty(drawn[name]):
            skipped[name] = "not enough completed trials with these parameters"
            del drawn[name]
    return drawn, skipped


def too_few(search: optuna.Study, results: Results) -> str:
    """Why the search's importances, parallel coordinates and contours are not drawn (empty: they are):
    fewer than ``MIN_TRIALS`` completed search trials per optimizer say nothing about which setting
    matters, and the importance of a parameter fitted on a handful of points is noise."""
    count = len(search.trials)
    per = count / max(len(results.sweep.search.optimizers), 1)
    if per >= MIN_TRIALS:
        return ""
    return (
        f"{count} completed search trials ({per:.3g} per optimizer) are too few for parameter importances,"
        f" parallel coordinates or contours ({MIN_TRIALS} per optimizer or more)"
    )


def optuna_figures(study: optuna.Study, results: Results, out: Path) -> tuple[list[Path], dict[str, str]]:
    """Optuna's plots of the search as PNGs; returns the files written and, per skipped plot, why."""
    drawn, skipped = draw_search(study, results, optuna_plots, _empty)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.png" for name in drawn]
    for axes, path in zip(drawn.values(), written, strict=True):
        _figure(axes).savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close("all")  # the plots saved, and those that could not be drawn
    return written, skipped


def _figure(axes: Any) -> plt.Figure:
    return np.ravel(axes)[0].figure


def _empty(axes: Any) -> bool:
    return not any(ax.has_data() for ax in _figure(axes).axes)
