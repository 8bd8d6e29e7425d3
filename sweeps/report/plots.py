"""The sweep's figures as PNG files: learning curves per optimizer, and Optuna's own plots of the search.

Optuna's matplotlib backend draws the search plots (history, importances, parallel coordinates, contour,
Pareto front) so that they are files without a browser; they see the search trials only, not the retrains.
A plot the study cannot support (too few trials, one parameter) is skipped with the reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

from sweeps.config.imports import optimizer_spec  # noqa: E402
from sweeps.names import EPOCH_METRICS, SEARCH, TUNED, phase  # noqa: E402
from sweeps.report.results import Entry, Results  # noqa: E402

DPI = 110


def curves(results: Results, path: Path) -> Path:
    """Validation accuracy (or the study's metric, when the module logs its own) and loss per epoch, one
    colour per optimizer: its best (tuned where retrained, solid, with a ±1 std band over seeds) and, where
    retrained, its untuned default (dashed)."""
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    colours = plt.get_cmap("tab10")
    metric = results.sweep.study.epoch_metric
    first = ("val_acc", "validation accuracy") if metric in EPOCH_METRICS else (metric, metric)
    for i, (name, entry) in enumerate(results.headline.items()):
        label = f"{name} (tuned)" if entry.phase == TUNED else name
        _line(acc, loss, entry, colours(i % 10), "-", label, first[0])
        if name in results.default:
            _line(acc, loss, results.default[name], colours(i % 10), "--", f"{name} (default)", first[0])
    for axis, title in ((acc, first[1]), (loss, "validation loss")):
        axis.set(xlabel="epoch", title=title)
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    loss.set_yscale("log")
    acc.legend(fontsize="small", loc="lower right")
    fig.suptitle(f"{results.sweep.study.name}: {results.sweep.data.label}")
    return _save(fig, path)


def _line(acc: plt.Axes, loss: plt.Axes, entry: Entry, colour, style: str, label: str, first: str) -> None:
    epochs = np.arange(1, entry.epochs + 1)
    for axis, metric in ((acc, first), (loss, "val_loss")):
        values = entry.curves[metric]
        with warnings.catch_warnings():  # a curve the module never logged is all NaN: an empty line
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        axis.plot(epochs, mean, style, color=colour, marker="o", markersize=3, label=label)
        if entry.seeds > 1:
            axis.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)


def search_study(study: optuna.Study) -> optuna.Study:
    """The study's finished search trials alone, in memory: what Optuna's plots should describe."""
    copy = optuna.create_study(directions=study.directions)
    copy.add_trials(
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if phase(t) == SEARCH
    )
    return copy


def optuna_figures(study: optuna.Study, results: Results, out: Path) -> tuple[list[Path], dict[str, str]]:
    """Optuna's plots of the search; returns the files written and, per skipped plot, why."""
    search = search_study(study)
    names = ["accuracy" if "acc" in results.sweep.study.metric else results.sweep.study.metric]
    plots: dict[str, Callable[[], object]] = {}
    if len(search.directions) > 1:
        plots["pareto_front"] = lambda: optuna_plots.plot_pareto_front(
            search, target_names=[*names, "training seconds"]
        )
    else:
        plots["optimization_history"] = lambda: optuna_plots.plot_optimization_history(search)
        plots["param_importances"] = lambda: optuna_plots.plot_param_importances(search)
        plots["parallel_coordinate"] = lambda: optuna_plots.plot_parallel_coordinate(search)
        for name in results.sweep.search.optimizers:
            space = results.sweep.search.space(name)
            if "lr" in space and "momentum" in space and "momentum" in optimizer_spec(name).hyperparams:
                params = [f"{name}.lr", f"{name}.momentum"]
                plots[f"contour_{name}"] = lambda p=params: optuna_plots.plot_contour(search, params=p)
    written, skipped = [], {}
    for name, draw in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            skipped[name] = str(exc) or type(exc).__name__
            plt.close("all")
            continue
        figure = np.ravel(axes)[0].figure
        if not any(ax.has_data() for ax in figure.axes):
            skipped[name] = "not enough completed trials with these parameters"
            plt.close(figure)
            continue
        written.append(_save(figure, out / f"{name}.png"))
    return written, skipped


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path
