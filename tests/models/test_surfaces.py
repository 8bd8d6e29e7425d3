"""The 2-D test surfaces: values and gradients at hand-computed points, and their critical points checked
with autograd (gradient zero; Hessian positive definite at minima, indefinite at saddles)."""

from __future__ import annotations

import math

import pytest
import torch

from models.surfaces import SURFACES, Surface, get_surface


def grad_and_hessian(surface: Surface, point: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    xy = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(surface.at(xy), xy)
    hessian = torch.autograd.functional.hessian(surface.at, xy.detach())
    return grad, hessian


@pytest.mark.parametrize(
    ("name", "point", "value", "grad"),
    [
        ("rosenbrock", (1.0, 1.0), 0.0, (0.0, 0.0)),
        ("rosenbrock", (0.0, 0.0), 1.0, (-2.0, 0.0)),
        # d/dx = -2(1-x) - 400x(y-x^2) = -4 - 400 at (-1, 0); d/dy = 200(y-x^2) = -200
        ("rosenbrock", (-1.0, 0.0), 104.0, (-404.0, -200.0)),
        # x^2 + (y^2-1)^2/4: gradient (2x, y(y^2-1))
        ("saddle", (0.0, 0.0), 0.25, (0.0, 0.0)),
        ("saddle", (1.0, 0.5), 1.0 + 0.5625 / 4, (2.0, -0.375)),
        # (x^2-1)^2 + 0.3x + y^2: gradient (4x^3 - 4x + 0.3, 2y)
        ("double_well", (0.0, 0.0), 1.0, (0.3, 0.0)),
        ("double_well", (1.0, 1.0), 1.3, (0.3, 2.0)),
        ("double_well", (2.0, -1.0), 10.6, (24.3, -2.0)),
    ],
)
def test_values_and_gradients_at_known_points(
    name: str, point: tuple[float, float], value: float, grad: tuple[float, float]
) -> None:
    surface = get_surface(name)
    assert surface.value(point) == pytest.approx(value, abs=1e-12)
    g, _ = grad_and_hessian(surface, point)
    assert g.tolist() == pytest.approx(grad, abs=1e-9)


def critical_points(kind: str) -> list[tuple[str, tuple[float, float]]]:
    return [(s.name, p) for s in SURFACES.values() for p in getattr(s, kind)]


@pytest.mark.parametrize(("name", "point"), critical_points("minima") + critical_points("local_minima"))
def test_minima_are_minima(name: str, point: tuple[float, float]) -> None:
    surface = get_surface(name)
    grad, hessian = grad_and_hessian(surface, point)
    assert grad.abs().max() < 1e-9
    assert torch.linalg.eigvalsh(hessian).min() > 0
    here = surface.value(point)
    for angle in range(0, 360, 30):  # every nearby point is higher
        dx, dy = 1e-3 * math.cos(math.radians(angle)), 1e-3 * math.sin(math.radians(angle))
        assert surface.value((point[0] + dx, point[1] + dy)) > here


@pytest.mark.parametrize(("name", "point"), critical_points("saddles"))
def test_saddles_are_saddles(name: str, point: tuple[float, float]) -> None:
    surface = get_surface(name)
    grad, hessian = grad_and_hessian(surface, point)
    assert grad.abs().max() < 1e-9
    eigenvalues = torch.linalg.eigvalsh(hessian)
    assert eigenvalues.min() < 0 < eigenvalues.max()


def test_saddle_surface_has_a_saddle_and_the_double_well_a_local_minimum() -> None:
    assert get_surface("saddle").saddles == ((0.0, 0.0),)
    assert get_surface("saddle").value((0.0, 0.0)) > get_surface("saddle").min_value
    well = get_surface("double_well")
    assert len(well.local_minima) == 1
    assert well.value(well.local_minima[0]) > well.min_value + 0.5


@pytest.mark.parametrize("surface", SURFACES.values(), ids=list(SURFACES))
def test_global_minimum_is_the_lowest_point_of_the_plot(surface: Surface) -> None:
    _, _, Z = surface.grid(201)
    assert surface.min_value <= Z.min() + 1e-12
    for other in surface.minima[1:]:
        assert surface.value(other) == pytest.approx(surface.min_value, abs=1e-12)


@pytest.mark.parametrize("surface", SURFACES.values(), ids=list(SURFACES))
def test_start_and_critical_points_lie_in_the_plot_range(surface: Surface) -> None:
    for x, y in (surface.start, *surface.minima, *surface.local_minima, *surface.saddles):
        assert surface.xlim[0] <= x <= surface.xlim[1]
        assert surface.ylim[0] <= y <= surface.ylim[1]
    grad, _ = grad_and_hessian(surface, surface.start)
    assert grad.abs().max() > 1e-3, "an optimizer must have somewhere to go from the start"
    assert surface.value(surface.start) > surface.min_value + 1


@pytest.mark.parametrize("surface", SURFACES.values(), ids=list(SURFACES))
def test_grid_matches_pointwise_values(surface: Surface) -> None:
    X, Y, Z = surface.grid(7)
    assert X.shape == Y.shape == Z.shape == (7, 7)
    assert (X[0, 0], Y[0, 0]) == (surface.xlim[0], surface.ylim[0])
    assert (X[-1, -1], Y[-1, -1]) == (surface.xlim[1], surface.ylim[1])
    assert Z[2, 5] == pytest.approx(surface.value((X[2, 5], Y[2, 5])), rel=1e-12)


def test_unknown_surface_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown surface 'bowl'.*rosenbrock, saddle, double_well"):
        get_surface("bowl")
