"""Each optimizer's path on a surface: real ``torch.optim`` steps from the surface's start point, cut where it
diverges, with the learning rates each surface needs (see the package's docstring)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.optimizers import REGISTRY, get_spec
from models.registry import lookup
from models.surfaces import SURFACES, Surface, get_surface

ESCAPE = 1e6
"""A coordinate beyond this counts as diverged: the quartic terms overflow float64 soon after."""


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
        if not all(math.isfinite(v) and abs(v) <= ESCAPE for v in point):
            diverged_at = step
            break
        points.append(point)
    if len(losses) < len(points):
        losses.append(surface.value((points[-1][0], points[-1][1])))
    if not math.isfinite(losses[-1]) and len(points) > 1:
        diverged_at = len(points) - 1
        del points[-1], losses[-1]
    walked, values = np.asarray(points, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    return Path2D(surface.name, optimizer, dict(hyperparams), walked, values, steps, diverged_at)


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
    """Comma-separated ``optimizer`` or ``surface`` names, each known, in order, without repeats (``None``:
    all); a ``ValueError`` names the first unknown one and lists the valid names."""
    valid = list(REGISTRY if kind == "optimizer" else SURFACES)
    if text is None:
        return valid
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError(f"no {kind} named in {text!r}; choose from: {', '.join(valid)}")
    for name in names:
        lookup(dict.fromkeys(valid), name, kind)
    return names


def nearest(surface: Surface, point: tuple[float, float]) -> str:
    """Which known critical point ``point`` ended at (within 0.05), or ``"-"``."""
    candidates = [
        *(("minimum", p) for p in surface.minima),
        *(("local minimum", p) for p in surface.local_minima),
        *(("saddle", p) for p in surface.saddles),
    ]
    for label, p in candidates:
        if math.dist(p, point) <= 0.05:
            return label
    return "-"
