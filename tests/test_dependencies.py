"""Every third-party package the product imports is declared in pyproject, so a fresh install has it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"sweeps", "models"}


def _imported() -> set[str]:
    """Top-level names of every module imported anywhere in the product packages."""
    names: set[str] = set()
    for source in [*ROOT.joinpath("sweeps").rglob("*.py"), *ROOT.joinpath("models").rglob("*.py")]:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - OURS - set(sys.stdlib_module_names)


def _declared() -> set[str]:
    """Distribution names pyproject declares, required or optional."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]
    return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("_", "-") for r in requirements}


def test_every_imported_package_is_declared() -> None:
    providers = metadata.packages_distributions()
    declared = _declared()
    missing = {
        name: providers[name]
        for name in _imported()
        if name in providers and not {d.lower().replace("_", "-") for d in providers[name]} & declared
    }
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
