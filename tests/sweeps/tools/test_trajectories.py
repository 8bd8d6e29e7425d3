"""``sweeps trajectories``: every registry optimizer takes real torch steps on the 2-D surfaces; the paths
differ, the figure and GIF are real image files, bad names are refused before any work, MLflow gets them."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.optimizers import REGISTRY
from models.surfaces import SURFACES, Surface, get_surface
from sweeps.tools.trajectories import draw, gif, make, simulate, tables
from sweeps.tools.trajectories.simulate import Path2D, run_all, run_path
from sweeps.tools.trajectories.tables import FILES
from tests.sweeps.helpers import Store, invoke, squash

DEFAULT_STEPS = 300  # the CLI's default: what a user's figure shows


@pytest.fixture(scope="module")
def default_paths() -> list[Path2D]:
    """Every optimizer on every surface, as ``sweeps trajectories`` runs them by default."""
    return run_all(SURFACES, REGISTRY, DEFAULT_STEPS)


def by_surface(paths: list[Path2D]) -> dict[str, list[Path2D]]:
    grouped: dict[str, list[Path2D]] = {}
    for path in paths:
        grouped.setdefault(path.surface, []).append(path)
    return grouped


# --- the paths ------------------------------------------------------------------------------------------


def test_every_optimizer_moves_visibly_on_every_surface(default_paths: list[Path2D]) -> None:
    assert len(default_paths) == len(SURFACES) * len(REGISTRY)
    for path in default_paths:
        where = f"{path.optimizer} on {path.surface}"
        assert path.diverged_at is None, where
        assert len(path.points) == DEFAULT_STEPS + 1 == len(path.losses), where
        # the plots are ~4 units wide: a path shorter than a quarter unit would be a dot
        assert path.length > 0.25, where
        assert math.dist(path.points[0], path.final) > 0.25, where
        assert path.final_loss < path.losses[0], where


def test_paths_differ_between_optimizers(default_paths: list[Path2D]) -> None:
    for surface, paths in by_surface(default_paths).items():
        for a, b in itertools.combinations(paths, 2):
            # Adam and AdamW come closest (AdamW's weight decay 0.01 barely pulls); they still part by >5e-3
            assert np.abs(a.points - b.points).max() > 5e-3, (surface, a.optimizer, b.optimizer)


def test_every_optimizer_has_its_own_look() -> None:
    looks = {
        name: (draw.COLOURS[i], draw.MARKERS[i], draw.LINESTYLES[i % 3]) for i, name in enumerate(REGISTRY)
    }
    assert len(set(looks.values())) == len(REGISTRY)
    assert len(set(draw.COLOURS[: len(REGISTRY)])) == len(REGISTRY)


def test_the_surfaces_show_what_they_are_for(default_paths: list[Path2D]) -> None:
    ended = {
        (p.surface, p.optimizer): r["ended_at"]
        for p, r in zip(default_paths, tables.rows(default_paths), strict=True)
    }
    # the double well: plain SGD settles in the nearer, local minimum; heavy-ball momentum rolls on through
    assert ended["double_well", "sgd"] == "local minimum"
    assert ended["double_well", "momentum"] == "minimum"
    # the saddle: gradient descent from just off the ridge passes the saddle point closely
    sgd = next(p for p in default_paths if (p.surface, p.optimizer) == ("saddle", "sgd"))
    assert np.linalg.norm(sgd.points, axis=1).min() < 0.05
    # the valley: plain SGD crawls, Nesterov reaches the minimum in the same steps
    assert ended["rosenbrock", "nesterov"] == "minimum"
    assert ended["rosenbrock", "sgd"] == "-"


def test_steps_are_real_torch_optim_steps() -> None:
    """One step of the path is exactly what torch.optim.SGD does with the surface's autograd gradient."""
    surface = get_surface("rosenbrock")
    path = run_path(surface, "sgd", 1, lr=1e-3)
    xy = torch.tensor(surface.start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([xy], lr=1e-3)
    surface.at(xy).backward()
    opt.step()
    assert path.points[1].tolist() == xy.detach().tolist()
    assert path.losses.tolist() == pytest.approx([surface.value(surface.start), surface.value(path.final)])


def test_per_surface_lr_replaces_the_preset_lr() -> None:
    assert simulate.lr_for("rosenbrock", "adam") == 0.05
    assert simulate.lr_for("rosenbrock", "sgd") == REGISTRY["sgd"].presets["torch"]["lr"]
    assert simulate.lr_for("rosenbrock", "adam", surface_lr=False) == 1e-3
    assert simulate.lr_for("rosenbrock", "sgd", preset="keras") == 1e-3
    assert simulate.lr_for("rosenbrock", "sgd", preset="keras", surface_lr=False) == 1e-2
    # every optimizer has one on every surface, so that --preset keras changes only the other hyperparameters
    assert set(simulate.SURFACE_LRS) == set(SURFACES)
    for table in simulate.SURFACE_LRS.values():
        assert table.why and "\n" not in table.why
        assert set(table.lrs) == set(REGISTRY)


def test_keras_preset_changes_the_other_hyperparameters() -> None:
    surface = get_surface("saddle")
    torch_path = run_path(surface, "adagrad", 20, "torch", lr=0.2)
    keras_path = run_path(surface, "adagrad", 20, "keras", lr=0.2)
    assert keras_path.hyperparams["initial_accumulator_value"] == 0.1
    assert not np.allclose(torch_path.points, keras_path.points)


# --- divergence -----------------------------------------------------------------------------------------


def test_a_diverging_path_is_cut_at_its_last_finite_point_and_drawn(tmp_path: Path) -> None:
    surface = get_surface("rosenbrock")
    blown = run_path(surface, "sgd", 100, lr=0.01)  # 10x the largest stable step
    assert blown.diverged_at is not None and blown.diverged_at < 100
    assert len(blown.points) == blown.diverged_at == len(blown.losses)
    assert np.isfinite(blown.points).all() and np.isfinite(blown.losses).all()
    fine = run_path(surface, "adam", 100, lr=0.05)
    settings = {"steps": 100, "preset": "torch", "surface_lr": False}
    png = draw.draw_png([blown, fine], tmp_path, settings)
    animated = gif.draw_gif([blown, fine], tmp_path, settings, frames=10)
    assert Image.open(png).format == "PNG" and Image.open(animated).format == "GIF"
    csv_path, _ = tables.write_tables([blown, fine], tmp_path, settings)
    rows = list(csv.DictReader(csv_path.open()))
    assert rows[0]["ended_at"] == "diverged" and rows[0]["diverged_at"] == str(blown.diverged_at)
    assert rows[1]["ended_at"] != "diverged" and rows[1]["diverged_at"] == ""


def test_a_loss_that_overflows_at_finite_coordinates_cuts_the_path_before_that_point() -> None:
    # exp(x^2) overflows float64 beyond |x| ~ 26.6; one SGD step of lr 1 from x = 1.5 lands at x ~ -27
    blowup = Surface(
        "blowup", "", "", lambda x, y: torch.exp(x**2) + y**2, ((0.0, 0.0),), (1.5, 0.5), (-2, 2), (-2, 2)
    )
    path = run_path(blowup, "sgd", 10, lr=1.0)
    assert path.diverged_at == 1
    assert path.points.tolist() == [[1.5, 0.5]]
    assert np.isfinite(path.losses).all()


# --- the command ----------------------------------------------------------------------------------------


def test_cli_writes_figure_gif_and_tables(tmp_path: Path) -> None:
    out = tmp_path / "paths"
    result = invoke("trajectories", "--out", str(out), "--steps", "40")
    assert result.exit_code == 0, result.output
    png, gif = Image.open(out / FILES["png"]), Image.open(out / FILES["gif"])
    assert png.format == "PNG" and png.size[0] > 800 and png.size[1] > 600
    assert gif.format == "GIF" and gif.n_frames > 10
    rows = list(csv.DictReader((out / FILES["csv"]).open()))
    assert [(r["surface"], r["optimizer"]) for r in rows] == list(itertools.product(SURFACES, REGISTRY))
    assert all(float(r["path_length"]) > 0 for r in rows)
    document = json.loads((out / FILES["json"]).read_text())
    assert document["settings"]["steps"] == 40
    assert set(document["surfaces"]) == set(SURFACES)
    assert document["results"][0]["hyperparams"]["lr"] == float(rows[0]["lr"])
    for name in ("rosenbrock", "adamax", "double_well", "written"):
        assert name in result.stdout


def test_cli_subset_no_gif_default_folder() -> None:
    result = invoke(
        "trajectories", "--optimizers", "adam, sgd", "--surfaces", "saddle", "--steps", "5", "--no-gif"
    )
    assert result.exit_code == 0, result.output
    out = Path("trajectories")  # the tests run in their own tmp_path
    assert sorted(p.name for p in out.iterdir()) == sorted([FILES["png"], FILES["csv"], FILES["json"]])
    rows = list(csv.DictReader((out / FILES["csv"]).open()))
    assert [(r["surface"], r["optimizer"], r["steps"]) for r in rows] == [
        ("saddle", "adam", "5"),
        ("saddle", "sgd", "5"),
    ]


@pytest.mark.parametrize(
    ("args", "named", "listed"),
    [
        (("--optimizers", "sgd,adamm"), "'adamm'", "sgd,momentum,nesterov,adagrad"),
        (("--surfaces", "rosenbrock,bowl"), "'bowl'", "rosenbrock,saddle,double_well"),
        (("--optimizers", " , "), "nooptimizer", "sgd,momentum"),
        (("--preset", "jax"), "'jax'", "isnotoneof'torch'"),
    ],
)
def test_bad_names_exit_2_before_any_work(args: tuple[str, ...], named: str, listed: str) -> None:
    result = invoke("trajectories", "--out", "never", *args)
    assert result.exit_code == 2, result.output
    assert named in squash(result.stderr) and listed in squash(result.stderr)
    assert "Traceback" not in result.output
    assert not Path("never").exists()


def test_log_puts_the_files_in_an_mlflow_run(store: Store, tmp_path: Path) -> None:
    result = invoke(
        "trajectories", "--out", str(tmp_path / "o"), "--steps", "10", "--optimizers", "sgd,rmsprop",
        "--log", "--tracking-uri", store.uri,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = store.runs(make.EXPERIMENT)
    assert run.info.status == "FINISHED"
    artifacts = {a.path for a in store.client.list_artifacts(run.info.run_id)}
    assert artifacts == set(FILES.values())
    for name in FILES.values():
        local = Path(store.client.download_artifacts(run.info.run_id, name, str(tmp_path / "back")))
        assert local.stat().st_size > 0
    assert run.data.params["steps"] == "10" and run.data.params["lr.saddle.sgd"] == "0.05"
    assert set(run.data.metrics) >= {f"final_loss.{s}.{o}" for s in SURFACES for o in ("sgd", "rmsprop")}
    assert run.data.tags["sweeps.role"] == "trajectories"


def test_tracking_uri_alone_implies_log(store: Store) -> None:
    result = invoke(
        "trajectories", "--steps", "3", "--surfaces", "saddle", "--no-gif", "--tracking-uri", store.uri
    )
    assert result.exit_code == 0, result.output
    assert len(store.runs(make.EXPERIMENT)) == 1


def test_without_log_nothing_goes_to_mlflow() -> None:
    result = invoke("trajectories", "--steps", "3", "--surfaces", "saddle", "--optimizers", "sgd", "--no-gif")
    assert result.exit_code == 0, result.output
    assert not Path("mlflow.db").exists()
