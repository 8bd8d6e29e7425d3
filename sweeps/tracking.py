"""MLflow plumbing shared by every command: where runs go, and what each run records about itself."""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""Embedded store: one SQLite file in the working directory, no server (MLflow refuses ./mlruns)."""

if TYPE_CHECKING:
    from mlflow import MlflowClient

SQLITE = "sqlite:///"
_PACKAGES = ("optimizer-sweeps", "torch", "lightning", "optuna", "mlflow", "numpy", "pydantic")
_SECRET = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]+:)(?P<secret>[^@\s]+)(?P<tail>@)")


def tracking_uri(flag: str | None = None) -> str:
    """``--tracking-uri`` beats ``MLFLOW_TRACKING_URI``, which beats the embedded default.

    A relative SQLite path is made absolute: MLflow caches one store per URI string, so a relative one would
    keep pointing at the first working directory it was used from.
    """
    return absolute_sqlite(flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)


def absolute_sqlite(url: str) -> str:
    """A ``sqlite:///relative`` URL made absolute (any other URL as it is), so that every process and working
    directory names the same file."""
    path = url.removeprefix(SQLITE)
    if not url.startswith(SQLITE) or path.startswith("/"):
        return url
    return f"{SQLITE}{Path(path).expanduser().resolve()}"


def artifact_location(uri: str) -> str | None:
    """Artifacts of the embedded store live beside its database, not in a ./mlruns that MLflow refuses."""
    if not uri.startswith(SQLITE):
        return None
    database = Path(uri.removeprefix(SQLITE))
    return (database.parent / "mlartifacts").as_uri()


def get_or_create_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment called ``name``; created if new, its artifacts where :func:`artifact_location` says."""
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(uri))


def mask(text: str) -> str:
    """Hide the password of any ``scheme://user:password@host`` URL in ``text``."""
    return _SECRET.sub(r"\g<head>***\g<tail>", text)


def flat_params(values: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params are strings; tuples (betas) and None get a stable, readable form."""
    return {key: "none" if value is None else str(value) for key, value in values.items()}


def environment_tags() -> dict[str, str]:
    """Versions, machine and source revision, so a result can be traced to what produced it."""
    import torch

    tags = {f"sweeps.version.{name}": _version(name) for name in _PACKAGES}
    tags["sweeps.python"] = platform.python_version()
    tags["sweeps.platform"] = platform.platform()
    tags["sweeps.host"] = platform.node()
    tags["sweeps.device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    tags["sweeps.torch_threads"] = str(torch.get_num_threads())
    sha = git_sha()
    if sha:
        tags["mlflow.source.git.commit"] = sha
    return tags


@functools.cache
def git_sha() -> str | None:
    """The commit of this source tree, when it is a git checkout (an installed wheel has none)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@functools.cache
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
