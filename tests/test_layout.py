"""The layers, checked by reading the sources: what each package may import, and who owns MLflow runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABOVE_ENGINE = ("sweeps.report", "sweeps.tools", "sweeps.cli")


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in _sources(package):
        hits = sorted(m for m in _imports(path) if m.startswith(forbidden))
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    return bad


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("models", ("sweeps", "optuna", "mlflow")),
        (
            "sweeps/config",
            ("sweeps.engine", "sweeps.tracking", "sweeps.report", "sweeps.tools", "sweeps.cli"),
        ),
        (
            "sweeps/tracking",
            ("sweeps.engine", "sweeps.config", "sweeps.report", "sweeps.tools", "sweeps.cli"),
        ),
        ("sweeps/engine", ("sweeps.report", "sweeps.tools", "sweeps.cli")),
        ("sweeps/report", ("sweeps.tools", "sweeps.cli")),
        ("sweeps/tools", ("sweeps.cli",)),
    ],
)
def test_each_layer_imports_only_downward(package: str, forbidden: tuple[str, ...]) -> None:
    assert _offenders(package, forbidden) == {}


def test_only_tracking_creates_or_ends_mlflow_runs() -> None:
    calls = re.compile(r"\.(create_run|set_terminated)\(")
    outside = [
        str(path.relative_to(ROOT))
        for path in _sources("sweeps") + _sources("models")
        if "tracking" not in path.relative_to(ROOT).parts and calls.search(path.read_text(encoding="utf-8"))
    ]
    assert outside == []


def test_no_source_cites_files_outside_the_repository() -> None:
    cited = [
        str(path.relative_to(ROOT))
        for path in _sources("sweeps") + _sources("models") + _sources("tests")
        if path.name != "test_layout.py"
        and re.search(r"DESIGN\.md|\.\./shared", path.read_text(encoding="utf-8"))
    ]
    assert cited == []
