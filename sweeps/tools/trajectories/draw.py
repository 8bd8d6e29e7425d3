"""The trajectories figure: one panel per surface, every optimizer's path on its contours, a legend beside."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.optimizers import REGISTRY
from models.surfaces import Surface, get_surface
from sweeps.tools.trajectories.simulate import Path2D
from sweeps.tools.trajectories.tables import FILES

# Eleven colours that stay apart from each other and from the pale contour background (tab10 plus black);
# markers and line styles differ too, so that paths lying on top of each other still show both.
COLOURS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#000000",
    "#bcbd22",
    "#7f7f7f",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", "h", ">", "p")
LINESTYLES = ("-", "--", "-.")
PANEL = 5.2  # inches per panel side
DIVERGED = "#b00000"
KNOWN = {
    "start": ({"marker": "o", "mfc": "white", "mec": "black", "mew": 1.5}, 9, 9),
    "global minimum": ({"marker": "*", "mfc": "gold", "mec": "black"}, 16, 14),
    "local minimum": ({"marker": "*", "mfc": "white", "mec": "black"}, 14, 12),
    "saddle point": ({"marker": "P", "mfc": "black", "mec": "white"}, 11, 10),
}
"""How each kind of known point is marked: its style, and its size on a panel and in the legend's key."""


@dataclass
class _Drawn:
    """The figure, and the artists a GIF frame updates: per path its line and end marker, the diverged
    crosses, and the known points drawn over the paths."""

    figure: Any
    lines: list[tuple[Path2D, Any, Any]]
    crosses: list[tuple[Path2D, Any]]
    overlay: list[Any]


def _layout(n_surfaces: int) -> tuple[int, int]:
    """Rows and columns for the panels plus one cell for the legend: 1+1 -> 1x2, 2+1 -> 1x3, 3+1 -> 2x2."""
    cells = n_surfaces + 1
    cols = {2: 2, 3: 3, 4: 2}.get(cells, 3)
    return math.ceil(cells / cols), cols


def _marker_every(steps: int) -> int:
    return max(1, steps // 10)


def draw(paths: Sequence[Path2D], settings: Mapping[str, Any], animated: bool = False) -> _Drawn:
    """Panels of contours with every path; with ``animated`` the paths start empty and are left out of
    ``canvas.draw()`` so that a GIF can blit them onto the once-drawn background."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    surfaces = list(dict.fromkeys(p.surface for p in paths))
    optimizers = list(dict.fromkeys(p.optimizer for p in paths))
    order = list(REGISTRY)  # one look per optimizer, whichever are chosen
    style = {
        o: (COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)], LINESTYLES[i % len(LINESTYLES)])
        for o, i in ((o, order.index(o)) for o in optimizers)
    }
    nrows, ncols = _layout(len(surfaces))
    fig = Figure(figsize=(PANEL * ncols, PANEL * nrows * 0.95), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    drawn = _Drawn(fig, [], [], [])
    for ax, name in zip(axes, surfaces, strict=False):
        surface = get_surface(name)
        _contours(ax, surface)
        mine = [p for p in paths if p.surface == name]
        for path in mine:
            colour, marker, linestyle = style[path.optimizer]
            shown = path.points[:1] if animated else path.points
            (line,) = ax.plot(
                shown[:, 0],
                shown[:, 1],
                color=colour,
                ls=linestyle,
                lw=1.6,
                marker=marker,
                markevery=_marker_every(path.steps),
                ms=4.5,
                mec="white",
                mew=0.5,
                zorder=3,
                animated=animated,
            )
            (end,) = ax.plot(
                *shown[-1],
                marker=marker,
                ms=8,
                color=colour,
                mec="black",
                mew=0.8,
                zorder=4,
                animated=animated,
            )
            drawn.lines.append((path, line, end))
            if path.diverged_at is not None:
                drawn.crosses.append((path, _diverged_mark(ax, surface, path, colour, animated)))
        drawn.overlay += _known_points(ax, surface, animated)
        gone = [f"{p.optimizer} (step {p.diverged_at})" for p in mine if p.diverged_at is not None]
        if gone:
            ax.text(
                0.02,
                0.02,
                "diverged: " + ", ".join(gone),
                transform=ax.transAxes,
                fontsize=8,
                color=DIVERGED,
                va="bottom",
                wrap=True,
                bbox={"boxstyle": "round", "fc": "white", "ec": DIVERGED, "alpha": 0.9},
                zorder=7,
            )
        ax.set_title(surface.title, fontsize=11)
        ax.set(xlim=surface.xlim, ylim=surface.ylim, xlabel="x", ylabel="y")
        ax.set_aspect("equal", adjustable="box")
    for ax in axes[len(surfaces) :]:
        ax.axis("off")
    _legend(axes[len(surfaces)], paths, surfaces, optimizers, style, settings)
    steps = int(settings.get("steps", max(p.steps for p in paths)))
    fig.suptitle(
        f"{steps} torch.optim steps of each optimizer from the same start ({settings.get('preset', 'torch')}"
        " preset)",
        fontsize=12,
    )
    return drawn


def _legend(
    ax: Any,
    paths: Sequence[Path2D],
    surfaces: Sequence[str],
    optimizers: Sequence[str],
    style: Mapping[str, tuple[str, str, str]],
    settings: Mapping[str, Any],
) -> None:
    """The legend cell: each optimizer with its lr per surface, the key to the markers, a note."""
    from matplotlib.lines import Line2D

    lr = {(p.surface, p.optimizer): p.lr for p in paths}
    handles = [
        Line2D([], [], color=c, marker=m, ls=ls, lw=1.8, ms=6, mec="white", mew=0.5)
        for c, m, ls in (style[o] for o in optimizers)
    ]
    labels = [f"{o:<9} " + " / ".join(f"{lr[s, o]:g}" for s in surfaces) for o in optimizers]
    first = ax.legend(
        handles,
        labels,
        title=f"optimizer  lr on {' / '.join(surfaces)}",
        loc="upper left",
        bbox_to_anchor=(0.0, 1.0),
        frameon=False,
        handlelength=3.0,
        prop={"family": "monospace", "size": 9},
        title_fontproperties={"size": 9, "weight": "bold"},
        alignment="left",
    )
    ax.add_artist(first)
    shown = [get_surface(s) for s in surfaces]
    has = {"local minimum": any(s.local_minima for s in shown), "saddle point": any(s.saddles for s in shown)}
    key = {kind: {**style, "ms": size} for kind, (style, _, size) in KNOWN.items() if has.get(kind, True)}
    if any(p.diverged_at is not None for p in paths):
        key["diverged: path cut there"] = dict(marker="X", ms=11, mfc="white", mec=DIVERGED, mew=1.5)
    ax.legend(
        [Line2D([], [], ls="", **kw) for kw in key.values()],
        list(key),
        loc="lower left",
        bbox_to_anchor=(0.0, 0.12),
        frameon=False,
        fontsize=9,
    )
    every = _marker_every(int(settings.get("steps", max(p.steps for p in paths))))
    lrs = (
        "lr: set per surface, where the presets' would be\ninvisible or explode (why: final.json)"
        if settings.get("surface_lr", True)
        else "lr: the preset's"
    )
    ax.text(
        0.0,
        0.0,
        f"small markers every {every} steps; large: the last point\n{lrs}",
        fontsize=8.5,
        transform=ax.transAxes,
        va="bottom",
        color="#333333",
    )


def _contours(ax: Any, surface: Surface) -> None:
    """Pale filled contours: log-spaced levels of f - min where values span decades, else levels packed
    towards the minimum (quadratically spaced), so that the low ground where paths end has lines too."""
    from matplotlib.colors import LogNorm

    X, Y, Z = surface.grid(300)
    fill = {"cmap": "Blues", "alpha": 0.5}
    lines = {"colors": "#6f8fb0", "linewidths": 0.5, "alpha": 0.8, "negative_linestyles": "solid"}
    if surface.log_contours:
        shifted = Z - surface.min_value + 1e-3
        levels = np.logspace(-2, math.log10(shifted.max()), 22)
        norm = LogNorm(levels[0], levels[-1] * 30)  # the walls mid-blue, not dark: paths must stand out
        ax.contourf(X, Y, shifted, levels=levels, norm=norm, **fill)
        ax.contour(X, Y, shifted, levels=levels, **lines)
    else:
        low, high = Z.min(), np.percentile(Z, 97)
        levels = low + (high - low) * np.linspace(0.0, 1.0, 24) ** 2
        ax.contourf(X, Y, Z, levels=levels, extend="max", **fill)
        ax.contour(X, Y, Z, levels=levels, **lines)


def _known_points(ax: Any, surface: Surface, animated: bool) -> list[Any]:
    """Start, minima and saddles, over the paths (drawn last in each GIF frame too)."""
    marks = (surface.start,), surface.minima, surface.local_minima, surface.saddles  # in KNOWN's order
    artists = []
    for points, (style, size, _) in zip(marks, KNOWN.values(), strict=True):
        if points:
            xs, ys = zip(*points, strict=True)
            artists += ax.plot(xs, ys, ls="", zorder=6, animated=animated, ms=size, **style)
    return artists


def _diverged_mark(ax: Any, surface: Surface, path: Path2D, colour: str, animated: bool) -> Any:
    """A cross at the path's last finite point, pulled inside the panel so that it is seen."""
    x = float(np.clip(path.points[-1, 0], *surface.xlim))
    y = float(np.clip(path.points[-1, 1], *surface.ylim))
    (cross,) = ax.plot(
        x,
        y,
        ls="",
        marker="X",
        ms=12,
        mfc=colour,
        mec=DIVERGED,
        mew=1.5,
        zorder=8,
        clip_on=False,
        animated=animated,
    )
    return cross


def draw_png(paths: Sequence[Path2D], out: Path, settings: Mapping[str, Any]) -> Path:
    """The figure: one panel per surface, every optimizer's full path on its contours, the legend beside."""
    drawn = draw(paths, settings)
    path = out / FILES["png"]
    drawn.figure.savefig(path, dpi=110)
    return path
