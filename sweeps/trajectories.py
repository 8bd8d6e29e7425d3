"""Optimizer paths on 2-D loss surfaces: every registry optimizer, real ``torch.optim`` steps, one picture.

Each optimizer starts from the surface's start point with a 2-parameter float64 tensor and takes ``steps``
real steps (zero_grad, backward, step); the points it visits are drawn on the surface's contours, one panel
per surface, and optionally animated into a GIF. A path whose point or loss stops being finite, or that
runs off beyond ``ESCAPE`` (it would overflow a few steps later), is cut there and marked as diverged.

Learning rates: the registry's presets are meant for networks, whose gradients and sensible step lengths
differ from these surfaces'. Where a preset's lr would leave a path invisible (Adam's kin move about ``lr``
per step: 1e-3 for 300 steps is a dot) or make it explode, ``SURFACE_LRS`` sets the lr for that surface, with
the reason in one line. Every other hyperparameter comes from the chosen preset (``torch`` or ``keras``);
``surface_lr=False`` (``--preset-lr``) keeps the preset's lr too, to show what it does here.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.optimizers import REGISTRY, get_spec
from models.registry import lookup
from models.surfaces import SURFACES, Surface, get_surface

EXPERIMENT = "trajectories"
"""The MLflow experiment that ``--log`` writes to: one run per invocation, the files as its artifacts."""

ESCAPE = 1e6
"""A coordinate beyond this counts as diverged: the quartic terms overflow float64 soon after."""

FILES = {"png": "trajectories.png", "gif": "trajectories.gif", "csv": "final.csv", "json": "final.json"}


@dataclass(frozen=True)
class SurfaceLrs:
    """Learning rates for one surface that replace the preset's, and why the preset's would not do."""

    why: str
    lrs: Mapping[str, float]


def _lrs(sgd: float, heavy_ball: float, adagrad: float, adam_kin: float, **own: float) -> dict[str, float]:
    """An lr for every registry optimizer: SGD; momentum and Nesterov; AdaGrad; Adam and its kin (Adam,
    AdamW, NAdam, RAdam, Adamax); ``own`` for any that differ. AdaDelta keeps the published 1.0 (its lr is
    a multiplier on a step that sets its own scale) and RMSprop torch's 0.01: both suit every surface."""
    kin = ("adam", "adamw", "nadam", "radam", "adamax")
    table = {"sgd": sgd, "momentum": heavy_ball, "nesterov": heavy_ball, "adagrad": adagrad, "adadelta": 1.0}
    return table | {"rmsprop": 0.01} | dict.fromkeys(kin, adam_kin) | own


# Every optimizer gets an lr on every surface, so that ``--preset keras`` changes the other hyperparameters
# only: Keras' own lrs would be invisible here (Adadelta 1e-3 moves 0.001 in 300 steps) or explode (SGD 1e-2
# on Rosenbrock). ``why`` says, in one line, what the presets' lrs would do on that surface.
SURFACE_LRS: Mapping[str, SurfaceLrs] = {
    "rosenbrock": SurfaceLrs(
        "gradients ~100: SGD's kin keep torch's 1e-3 (momentum explodes at 2e-3); Adam's kin step ~lr, so"
        " 1e-3 is a dot (RAdam's first steps are plain momentum steps, thrown out of the plot above 3e-3)",
        _lrs(sgd=1e-3, heavy_ball=1e-3, adagrad=0.3, adam_kin=0.05, radam=3e-3),
    ),
    "saddle": SurfaceLrs(
        "gradients ~1: at 1e-3 SGD's kin do not get past the saddle in 300 steps, Adam's kin cover a sixth of"
        " the way",
        _lrs(sgd=0.05, heavy_ball=0.01, adagrad=0.2, adam_kin=0.02),
    ),
    "double_well": SurfaceLrs(
        "gradients ~1-20: at 1e-3 SGD's kin crawl and Adam's kin cover a fifth of the way in 300 steps",
        _lrs(sgd=0.02, heavy_ball=0.01, adagrad=0.3, adam_kin=0.05),
    ),
}


@dataclass(frozen=True)
class Path2D:
    """One optimizer's walk on one surface: the points visited (start included) and the loss at each."""

    surface: str
    optimizer: str
    hyperparams: Mapping[str, Any]
    points: np.ndarray  # (k + 1, 2): the start, then the point after each finite step
    losses: np.ndarray  # (k + 1,): the surface's value at each point
    steps: int  # steps asked for; k < steps when the path diverged
    diverged_at: int | None  # the step whose result was not finite (or escaped), else None

    @property
    def lr(self) -> float:
        return float(self.hyperparams["lr"])

    @property
    def final(self) -> tuple[float, float]:
        return float(self.points[-1, 0]), float(self.points[-1, 1])

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])

    @property
    def length(self) -> float:
        """How far the optimizer travelled along its path."""
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())


def lr_for(surface: str, optimizer: str, preset: str = "torch", surface_lr: bool = True) -> float:
    """The learning rate a path uses: the surface's own where ``SURFACE_LRS`` sets one, else the preset's."""
    table = SURFACE_LRS.get(surface)
    if surface_lr and table and optimizer in table.lrs:
        return table.lrs[optimizer]
    return float(get_spec(optimizer).presets[preset]["lr"])


def run_path(
    surface: Surface, optimizer: str, steps: int, preset: str = "torch", lr: float | None = None
) -> Path2D:
    """``steps`` real torch steps of ``optimizer`` from ``surface.start``, cut where it stops being finite."""
    spec = get_spec(optimizer)
    hyperparams = spec.resolve(preset, **({} if lr is None else {"lr": lr}))
    xy = torch.tensor(surface.start, dtype=torch.float64, requires_grad=True)
    opt = spec.build([xy], hyperparams)
    points: list[list[float]] = [list(surface.start)]
    losses: list[float] = []  # losses[i] is the value at points[i], read off the forward pass of step i + 1
    diverged_at = None
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = surface.at(xy)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):  # finite coordinates, overflowing value: cut before this point
            diverged_at = step - 1
            break
        loss.backward()
        opt.step()
        point = xy.detach().tolist()
        if not _finite(point):
            diverged_at = step
            break
        points.append(point)
    if len(losses) < len(points):
        losses.append(surface.value((points[-1][0], points[-1][1])))
    if not math.isfinite(losses[-1]) and len(points) > 1:
        diverged_at = len(points) - 1
        del points[-1], losses[-1]
    return Path2D(
        surface.name,
        optimizer,
        dict(hyperparams),
        np.asarray(points, dtype=np.float64),
        np.asarray(losses, dtype=np.float64),
        steps,
        diverged_at,
    )


def _finite(point: Sequence[float]) -> bool:
    return all(math.isfinite(v) and abs(v) <= ESCAPE for v in point)


def run_all(
    surfaces: Iterable[str],
    optimizers: Iterable[str],
    steps: int,
    preset: str = "torch",
    surface_lr: bool = True,
) -> list[Path2D]:
    """Every optimizer on every surface, surfaces outermost (the order of the figure's panels)."""
    optimizers = list(optimizers)
    return [
        run_path(get_surface(s), o, steps, preset, lr_for(s, o, preset, surface_lr))
        for s in surfaces
        for o in optimizers
    ]


def checked_names(text: str | None, kind: str) -> list[str]:
    """Comma-separated ``optimizer`` or ``surface`` names, each known, in order, without repeats.

    ``None`` means all of them. A ``ValueError`` names the first unknown one and lists the valid names.
    """
    valid = list(REGISTRY if kind == "optimizer" else SURFACES)
    if text is None:
        return valid
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError(f"no {kind} named in {text!r}; choose from: {', '.join(valid)}")
    for name in names:
        lookup(dict.fromkeys(valid), name, kind)
    return names


def nearest(surface: Surface, point: tuple[float, float], tolerance: float = 0.05) -> str:
    """Which known critical point ``point`` ended at (within ``tolerance``), or ``"-"``."""
    candidates = [
        *(("minimum", p) for p in surface.minima),
        *(("local minimum", p) for p in surface.local_minima),
        *(("saddle", p) for p in surface.saddles),
    ]
    for label, p in candidates:
        if math.dist(p, point) <= tolerance:
            return label
    return "-"


def table(paths: Sequence[Path2D]) -> Any:
    """A rich table of where each path ended, one section per surface, narrow enough for 80 columns."""
    from rich.table import Table

    out = Table("surface", "optimizer", "lr", "last (x, y)", "f", "ended at")
    previous = None
    for row in rows(paths):
        if previous is not None and row["surface"] != previous:
            out.add_section()
        previous = row["surface"]
        ended = row["ended_at"].replace("minimum", "min")
        if row["diverged_at"] is not None:
            ended = f"[red]diverged @{row['diverged_at']}[/]"
        out.add_row(
            row["surface"],
            row["optimizer"],
            f"{row['lr']:g}",
            f"({row['final_x']:.2f}, {row['final_y']:.2f})",
            f"{row['final_loss']:.3g}",
            ended,
        )
    return out


# --- files ----------------------------------------------------------------------------------------------


def rows(paths: Sequence[Path2D]) -> list[dict[str, Any]]:
    """One row per path: where it ended, at what loss, and whether it diverged."""
    out = []
    for path in paths:
        surface = get_surface(path.surface)
        x, y = path.final
        out.append(
            {
                "surface": path.surface,
                "optimizer": path.optimizer,
                "lr": path.lr,
                "steps": len(path.points) - 1,
                "diverged_at": path.diverged_at,
                "final_x": x,
                "final_y": y,
                "final_loss": path.final_loss,
                "start_loss": float(path.losses[0]),
                "ended_at": "diverged" if path.diverged_at is not None else nearest(surface, path.final),
                "path_length": path.length,
            }
        )
    return out


def write_tables(paths: Sequence[Path2D], out: Path, settings: Mapping[str, Any]) -> list[Path]:
    """``final.csv`` (one row per optimizer and surface) and ``final.json`` (the same, with every
    hyperparameter, the settings and each surface's known points)."""
    table = rows(paths)
    csv_path, json_path = out / FILES["csv"], out / FILES["json"]
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in table)
    surfaces = {}
    for name in dict.fromkeys(p.surface for p in paths):
        s = get_surface(name)
        lrs = SURFACE_LRS.get(name)
        surfaces[name] = {
            "title": s.title,
            "summary": s.summary,
            "start": s.start,
            "minima": s.minima,
            "local_minima": s.local_minima,
            "saddles": s.saddles,
            "lr_note": lrs.why if lrs and settings.get("surface_lr", True) else "preset learning rates",
        }
    hyper = {(p.surface, p.optimizer): _jsonable(p.hyperparams) for p in paths}
    document = {
        "settings": dict(settings),
        "surfaces": surfaces,
        "results": [row | {"hyperparams": hyper[row["surface"], row["optimizer"]]} for row in table],
    }
    json_path.write_text(json.dumps(document, indent=2, allow_nan=True) + "\n")
    return [csv_path, json_path]


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


# --- the figure -----------------------------------------------------------------------------------------

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


def _draw(paths: Sequence[Path2D], settings: Mapping[str, Any], animated: bool = False) -> _Drawn:
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
    key = {
        "start": {"marker": "o", "ms": 9, "mfc": "white", "mec": "black", "mew": 1.5},
        "global minimum": {"marker": "*", "ms": 14, "mfc": "gold", "mec": "black"},
    }
    if any(s.local_minima for s in shown):
        key["local minimum"] = {"marker": "*", "ms": 12, "mfc": "white", "mec": "black"}
    if any(s.saddles for s in shown):
        key["saddle point"] = {"marker": "P", "ms": 10, "mfc": "black", "mec": "white"}
    if any(p.diverged_at is not None for p in paths):
        key["diverged: path cut there"] = {
            "marker": "X",
            "ms": 11,
            "mfc": "white",
            "mec": DIVERGED,
            "mew": 1.5,
        }
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
    marks = [((surface.start,), {"marker": "o", "ms": 9, "mfc": "white", "mec": "black", "mew": 1.5})]
    marks.append((surface.minima, {"marker": "*", "ms": 16, "mfc": "gold", "mec": "black"}))
    marks.append((surface.local_minima, {"marker": "*", "ms": 14, "mfc": "white", "mec": "black"}))
    marks.append((surface.saddles, {"marker": "P", "ms": 11, "mfc": "black", "mec": "white"}))
    artists = []
    for points, kw in marks:
        if points:
            xs, ys = zip(*points, strict=True)
            artists += ax.plot(xs, ys, ls="", zorder=6, animated=animated, **kw)
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


def draw_png(paths: Sequence[Path2D], out: Path, settings: Mapping[str, Any], dpi: int = 110) -> Path:
    """The figure: one panel per surface, every optimizer's full path on its contours, the legend beside."""
    drawn = _draw(paths, settings)
    path = out / FILES["png"]
    drawn.figure.savefig(path, dpi=dpi)
    return path


def draw_gif(
    paths: Sequence[Path2D], out: Path, settings: Mapping[str, Any], frames: int = 60, dpi: int = 72
) -> Path:
    """The same figure animated: the paths grow step by step, then the last frame holds.

    Not matplotlib's ``PillowWriter``: it re-renders the whole figure, contours and all, for every frame
    (about a minute for 60 frames here). The background is drawn once instead and the paths blitted onto a
    copy of it per frame; Pillow writes the frames with one shared palette, undithered, so that the GIF
    stores little more than what changes between frames.
    """
    from PIL import Image

    drawn = _draw(paths, settings, animated=True)
    fig = drawn.figure
    fig.set_dpi(dpi)
    canvas = fig.canvas
    canvas.draw()  # lays the figure out and renders everything but the animated artists
    fig.set_layout_engine("none")
    background = canvas.copy_from_bbox(fig.bbox)
    steps = max(p.steps for p in paths)
    shown = sorted({round(k) for k in np.linspace(0, steps, min(frames, steps + 1))})
    images = []
    for k in shown:
        canvas.restore_region(background)
        for p, line, end in drawn.lines:
            upto = p.points[: k + 1]
            line.set_data(upto[:, 0], upto[:, 1])
            end.set_data([upto[-1, 0]], [upto[-1, 1]])
            fig.draw_artist(line)
            fig.draw_artist(end)
        for p, cross in drawn.crosses:
            if k >= (p.diverged_at or 0):
                fig.draw_artist(cross)
        for artist in drawn.overlay:
            fig.draw_artist(artist)
        images.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy()))
    palette = _palette(images[-1])
    frames_p = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    path = out / FILES["gif"]
    durations = [80] * (len(frames_p) - 1) + [2500]
    frames_p[0].save(path, save_all=True, append_images=frames_p[1:], duration=durations, loop=0)
    return path


def _palette(final: Any) -> Any:
    """One GIF palette for every frame: the last frame's colours (background, antialiased edges) plus the
    exact colours of the paths and markers, which a median cut over a mostly pale picture would lose."""
    from matplotlib.colors import to_rgb
    from PIL import Image

    exact = [*COLOURS, "gold", "white", "black", DIVERGED]
    rgb = [round(255 * c) for name in exact for c in to_rgb(name)]
    base = final.quantize(colors=256 - len(exact), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = Image.new("P", (1, 1))
    palette.putpalette(base.getpalette()[: 3 * (256 - len(exact))] + rgb)
    return palette


# --- MLflow ---------------------------------------------------------------------------------------------


def log_run(paths: Sequence[Path2D], files: Sequence[Path], settings: Mapping[str, Any], uri: str) -> str:
    """One run in the ``trajectories`` experiment: settings and lrs as params, each path's final loss as a
    metric, the written files as artifacts. Returns the run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from sweeps.tracking import environment_tags, flat_params, get_or_create_experiment

    client = MlflowClient(uri)
    experiment_id = get_or_create_experiment(client, EXPERIMENT, uri)
    run = client.create_run(
        experiment_id,
        run_name=f"{settings.get('preset', 'torch')}-{settings.get('steps')}-steps",
        tags=environment_tags() | {"sweeps.role": "trajectories"},
    )
    run_id = run.info.run_id
    try:
        params = flat_params(settings)
        params |= {f"lr.{p.surface}.{p.optimizer}": f"{p.lr:g}" for p in paths}
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"{key}.{p.surface}.{p.optimizer}", value, now, 0)
            for p in paths
            for key, value in (("final_loss", p.final_loss), ("path_length", p.length))
            if math.isfinite(value)
        ]
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(run_id, params=items[i : i + 100])
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i : i + 1000])
        for file in files:
            client.log_artifact(run_id, str(file))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
