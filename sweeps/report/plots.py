"""The search's figures as PNG files, for the Markdown report and the MLflow artifact view: Optuna's own plots
of the search (``search_plots``) by its matplotlib backend, so that they are files without a browser. A plot
the study cannot support (too few trials, one parameter) is skipped with the reason. The learning curves are
drawn once, interactively, on the page (``figures``).
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

from sweeps.report.results import Results  # noqa: E402
from sweeps.report.search_plots import SKIPPED, search_plots, too_few  # noqa: E402

DPI = 110


def optuna_figures(study: optuna.Study, results: Results, out: Path) -> tuple[list[Path], dict[str, str]]:
    """Optuna's plots of the search as PNGs; returns the files written and, per skipped plot, why."""
    written, skipped = [], {}
    if few := too_few(study, results):
        skipped["importances, parallel coordinates, contours"] = few
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
