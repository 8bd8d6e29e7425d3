"""The lowest versions pyproject allows are the ones that work: the pure-Python libraries the service drives
through their APIs are installed at their floors (beside the tested torch and numeric stack) and a real
sweep runs end to end on them. Needs the package registry, as the install does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

from sweeps.workdir import DEFAULT_FOLDER, REPORTS
from tests.sweeps.helpers import small_sweep_spec

ROOT = Path(__file__).resolve().parents[1]
AT_FLOOR = (
    "optuna",
    "lightning",
    "pydantic",
    "typer",
    "rich",
    "tabulate",
    "optuna-dashboard",
    "cmaes",
    "pyyaml",
)
"""Installed at their floors. The numeric stack (numpy, scipy, pandas, matplotlib) and torch are compiled
against each other and cannot be swapped one by one: their floors are the versions CI installed when they
were last raised."""
COMPILED = ("numpy", "scipy", "pandas", "matplotlib")

pytestmark = pytest.mark.slow


def _floors() -> dict[str, str]:
    """``name -> floor`` of every dependency declared with ``>=``."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {}
    for requirement in declared:
        found = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)", requirement)
        if found:
            floors[found.group(1).lower()] = found.group(2)
    return floors


def test_every_dependency_has_a_floor() -> None:
    floors = _floors()
    assert set(AT_FLOOR) | set(COMPILED) <= set(floors), sorted(set(AT_FLOOR) | set(COMPILED) - set(floors))


@pytest.mark.long
def test_a_sweep_runs_on_the_lowest_allowed_versions(tmp_path: Path, write_idx_dataset: object) -> None:
    tiny_data = tmp_path / "idx"
    write_idx_dataset(tiny_data, name="mnist", n_train=256, n_test=64)  # type: ignore[operator]
    target = tmp_path / "floors"
    floors = _floors()
    pins = [f"{name}=={floors[name]}" for name in AT_FLOOR]
    _install(target, pins)
    (pydantic,) = [d for d in metadata.distributions(path=[str(target)]) if d.metadata["Name"] == "pydantic"]
    core = next(r for r in pydantic.requires or () if r.startswith("pydantic-core"))
    _install(target, [core.split(";")[0].replace(" ", "")])
    env = os.environ | {"PYTHONPATH": f"{target}{os.pathsep}{ROOT}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SWEEPS_STORAGE", None)

    shown = (
        "import optuna, lightning, pydantic as p; print(optuna.__version__, lightning.__version__, p.VERSION)"
    )
    versions = _run([sys.executable, "-c", shown], tmp_path, env)
    expected = [Version(floors[name]) for name in ("optuna", "lightning", "pydantic")]
    assert [Version(v) for v in versions.split()] == expected
    spec = small_sweep_spec(tmp_path, tiny_data, epochs=1, n_trials=2, pruner="median")
    _run([sys.executable, "-m", "sweeps", "run", str(spec)], tmp_path, env)
    shown = _run([sys.executable, "-m", "sweeps", "status", "e2e"], tmp_path, env)
    assert "done 2" in shown
    _run([sys.executable, "-m", "sweeps", "report", "e2e"], tmp_path, env)
    assert (tmp_path / DEFAULT_FOLDER / REPORTS / "e2e" / "report.md").is_file()


def _install(target: Path, pins: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *pins],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout
