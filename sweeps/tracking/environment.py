"""What each run records about where it came from: library versions, machine, device and source revision."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_PACKAGES = ("optimizer-sweeps", "torch", "lightning", "optuna", "mlflow", "numpy", "pydantic")


def environment_tags() -> dict[str, str]:
    """Versions, machine and source revision, so a result can be traced to what produced it."""
    import torch

    tags = {f"sweeps.version.{name}": _version(name) for name in _PACKAGES}
    tags["sweeps.python"] = platform.python_version()
    tags["sweeps.platform"] = platform.platform()
    tags["sweeps.host"] = platform.node()
    tags["sweeps.torch_threads"] = str(torch.get_num_threads())
    sha = git_sha()
    if sha:
        tags["mlflow.source.git.commit"] = sha
    return tags


def device_name(device: torch.device) -> str:
    """The device a run trains on, as a person finds it on the machine: ``cpu``, or the CUDA index with the
    GPU's model and its number among all the host's GPUs (``CUDA_VISIBLE_DEVICES=3`` trains on ``cuda:0``,
    which is the host's GPU 3)."""
    if device.type != "cuda":
        return device.type
    import torch

    index = device.index or 0
    visible = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    physical = visible[index] if index < len(visible) else str(index)
    return f"cuda:{index} {torch.cuda.get_device_name(index)} (GPU {physical})"


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
