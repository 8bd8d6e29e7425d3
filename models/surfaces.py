"""Classic 2-D loss surfaces, written in torch so that real ``torch.optim`` optimizers can walk them.

Each surface is a small, well-understood picture of one difficulty a network's loss poses: a long curved
valley whose floor is almost flat (Rosenbrock), a saddle point where the gradient vanishes without a minimum,
and a tilted double well whose nearer minimum is only a local one. Each carries what is needed to judge and
draw a path on it: its minima (global first) and saddle points, exact or to float64 precision, a plot range,
a start point that shows the difficulty, and whether its contours read better on a log scale.

The functions take ``x`` and ``y`` tensors of any (matching) shape, so the same code evaluates one point
with autograd and a whole grid for the contour plot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from models.registry import lookup

Point = tuple[float, float]


@dataclass(frozen=True)
class Surface:
    """A 2-D test function with its known critical points and how to show it.

    ``minima`` are the global minima; ``local_minima`` the others; ``saddles`` the saddle points. ``start``
    is where every optimizer begins; ``xlim``/``ylim`` the plot range (``start`` and every critical point
    lie inside it). ``log_contours`` asks for contour levels spaced on a log scale of ``f - min``, for
    surfaces whose values span many decades (Rosenbrock's valley floor is ~1e-3, its walls ~1e3).
    """

    name: str
    title: str
    summary: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    minima: tuple[Point, ...]
    start: Point
    xlim: Point
    ylim: Point
    local_minima: tuple[Point, ...] = ()
    saddles: tuple[Point, ...] = ()
    log_contours: bool = False

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(x, y)

    def at(self, xy: torch.Tensor) -> torch.Tensor:
        """The value at ``xy[..., 0], xy[..., 1]`` (a 2-parameter tensor, as an optimizer holds it)."""
        return self.fn(xy[..., 0], xy[..., 1])

    def value(self, point: Point) -> float:
        """The value at one point, in float64."""
        x, y = (torch.tensor(v, dtype=torch.float64) for v in point)
        return float(self.fn(x, y))

    @property
    def min_value(self) -> float:
        return self.value(self.minima[0])

    def grid(self, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``X, Y, Z`` on an ``n`` x ``n`` grid over the plot range (for contours), in float64."""
        xs = torch.linspace(*self.xlim, n, dtype=torch.float64)
        ys = torch.linspace(*self.ylim, n, dtype=torch.float64)
        gx, gy = torch.meshgrid(xs, ys, indexing="xy")
        return gx.numpy(), gy.numpy(), self.fn(gx, gy).numpy()


def rosenbrock(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1 - x)^2 + 100 (y - x^2)^2: minimum 0 at (1, 1), at the end of a curved valley along y = x^2."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def saddle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x^2 + (y^2 - 1)^2 / 4: a saddle at (0, 0) (value 1/4, Hessian diag(2, -1)), minima 0 at (0, +-1).

    The quartic keeps the surface bounded below, so an optimizer that escapes the saddle has somewhere to go.
    """
    return x**2 + (y**2 - 1) ** 2 / 4


TILT = 0.3
"""The double well's tilt: it makes the right-hand well, which paths from the start reach first, local."""


def double_well(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(x^2 - 1)^2 + 0.3 x + y^2: the global minimum near (-1.04, 0), a local one near (0.96, 0)."""
    return (x**2 - 1) ** 2 + TILT * x + y**2


# the double well's global minimum, barrier and local minimum: where its d/dx, 4x^3 - 4x + 0.3, vanishes
_LEFT, _BARRIER, _RIGHT = sorted(float(r.real) for r in np.roots([4.0, 0.0, -4.0, TILT]))

_SURFACES = (
    Surface(
        "rosenbrock",
        "Rosenbrock: long, narrow, curved valley",
        "f = (1-x)^2 + 100(y-x^2)^2; the gradient points across the valley, not along its floor",
        rosenbrock,
        minima=((1.0, 1.0),),
        start=(-1.5, 2.5),
        xlim=(-2.0, 2.0),
        ylim=(-1.0, 3.0),
        log_contours=True,
    ),
    Surface(
        "saddle",
        "Saddle point at (0, 0)",
        "f = x^2 + (y^2-1)^2/4; the start lies just off the ridge y = 0, where the gradient hardly leaves it",
        saddle,
        minima=((0.0, 1.0), (0.0, -1.0)),
        saddles=((0.0, 0.0),),
        start=(-1.8, 1e-3),
        xlim=(-2.0, 2.0),
        ylim=(-1.6, 1.6),
    ),
    Surface(
        "double_well",
        "Double well: a local minimum on the way",
        "f = (x^2-1)^2 + 0.3x + y^2; the right well, reached first, is only a local minimum",
        double_well,
        minima=((_LEFT, 0.0),),
        local_minima=((_RIGHT, 0.0),),
        saddles=((_BARRIER, 0.0),),
        start=(2.0, 1.5),
        xlim=(-2.0, 2.2),
        ylim=(-1.8, 1.8),
    ),
)

SURFACES: Mapping[str, Surface] = MappingProxyType({s.name: s for s in _SURFACES})


def get_surface(name: str) -> Surface:
    """The surface called ``name``; a ``ValueError`` listing the valid names otherwise."""
    return lookup(SURFACES, name, "surface")
