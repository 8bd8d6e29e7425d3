"""The sweep's figures as PNG files, for the Markdown report and the MLflow artifact view: learning curves
per optimizer, and Optuna's own plots of the search (``search_plots``) by its matplotlib backend, so that they
are files without a browser. A plot the study cannot support (too few trials, one parameter) is skipped with
the reason. The interactive page draws the same with plotly (``figures``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

from sweeps.names import TUNED  # noqa: E402
from sweeps.report.evidence import LEVEL, band  # noqa: E402
from sweeps.report.results import Entry, Results  # noqa: E402
from sweeps.report.search_plots import SKIPPED, search_plots  # noqa: E402

DPI = 110


def curves(results: Results, path: Path) -> Path:
    """Validation accuracy (or the study's metric, when the module logs its own) and loss per epoch, one
    colour per optimizer: its best (tuned where retrained, solid) and, where retrained, its untuned default
    (dashed), each with the 95 % interval of the mean over its seeds as a band."""
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    colours = plt.get_cmap("tab10")
    first = results.first_curve
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
    fig.suptitle(
        f"{results.sweep.study.name}: {results.sweep.data.label}"
        f" (bands: {LEVEL:.0%} interval of the mean over seeds)"
    )
    return _save(fig, path)


def _line(acc: plt.Axes, loss: plt.Axes, entry: Entry, colour, style: str, label: str, first: str) -> None:
    epochs = np.arange(1, entry.epochs + 1)
    for axis, metric in ((acc, first), (loss, "val_loss")):
        mean, low, high = band(entry, metric)
        axis.plot(epochs, mean, style, color=colour, marker="o", markersize=3, label=label)
        if entry.seeds > 1:
            axis.fill_between(epochs, low, high, color=colour, alpha=0.15, linewidth=0)


def optuna_figures(study: optuna.Study, results: Results, out: Path) -> tuple[list[Path], dict[str, str]]:
    """Optuna's plots of the search as PNGs; returns the files written and, per skipped plot, why."""
    written, skipped = [], {}
    for name, draw in search_plots(study, results, optuna_plots).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
        except SKIPPED as exc:
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
