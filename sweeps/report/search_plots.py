"""Which of Optuna's plots a sweep gets: the same list for the PNG files (Optuna's matplotlib backend) and the
interactive page (its plotly backend), which share one API. They see the search trials only, not the
retrains."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import optuna
from optuna.trial import TrialState

from sweeps.config.imports import optimizer_spec
from sweeps.names import SEARCH, phase
from sweeps.report.results import Results

SKIPPED = (ValueError, RuntimeError, ZeroDivisionError)
"""What Optuna raises for a plot the study cannot support (too few trials, one parameter)."""
MIN_TRIALS = 10
"""Completed search trials per optimizer below which the search's structure is not plotted."""


def search_study(study: optuna.Study) -> optuna.Study:
    """The study's finished search trials alone, in memory: what Optuna's plots should describe."""
    copy = optuna.create_study(directions=study.directions)
    copy.add_trials(
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if phase(t) == SEARCH
    )
    return copy


def search_plots(study: optuna.Study, results: Results, backend: ModuleType) -> dict[str, Callable[[], Any]]:
    """Plot name → a call drawing it with ``backend`` (``optuna.visualization`` or its ``matplotlib``):
    the Pareto front of a two-objective sweep; otherwise the optimization history and, with enough trials
    (:func:`too_few`), parameter importances, parallel coordinates and an lr × momentum contour per
    optimizer that takes momentum."""
    search = search_study(study)
    names = ["accuracy" if "acc" in results.sweep.study.metric else results.sweep.study.metric]
    if len(search.directions) > 1:
        targets = [*names, "training seconds"]
        return {"pareto_front": lambda: backend.plot_pareto_front(search, target_names=targets)}
    plots: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: backend.plot_optimization_history(search),
    }
    if too_few(study, results):
        return plots
    plots["param_importances"] = lambda: backend.plot_param_importances(search)
    plots["parallel_coordinate"] = lambda: backend.plot_parallel_coordinate(search)
    for name in results.sweep.search.optimizers:
        space = results.sweep.search.space(name)
        if "lr" in space and "momentum" in space and "momentum" in optimizer_spec(name).hyperparams:
            params = [f"{name}.lr", f"{name}.momentum"]
            plots[f"contour_{name}"] = lambda p=params: backend.plot_contour(search, params=p)
    return plots


def too_few(study: optuna.Study, results: Results) -> str:
    """Why the search's importances, parallel coordinates and contours are not drawn (empty: they are):
    fewer than ``MIN_TRIALS`` completed search trials per optimizer say nothing about which setting
    matters, and the importance of a parameter fitted on a handful of points is noise."""
    count = len(search_study(study).trials)
    per = count / max(len(results.sweep.search.optimizers), 1)
    if per >= MIN_TRIALS:
        return ""
    return (
        f"{count} completed search trials ({per:.3g} per optimizer) are too few for parameter importances,"
        f" parallel coordinates or contours ({MIN_TRIALS} per optimizer or more)"
    )
