"""Where a sweep's workers run when a scheduler starts them: the ``launcher`` block of a sweep spec.

``sweeps run --launcher slurm|ray`` reads its settings from here; they say where the sweep runs, not what it
is, so a resumed sweep may change them (the study compares its spec without this block).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, StrictInt, field_validator

from sweeps.config.files import Strict

_TIME = re.compile(r"^(?:(\d+)-(\d+)(?::(\d+))?(?::(\d+))?|(\d+)(?::(\d+))?(?::(\d+))?)$")
_SBATCH = re.compile(r"^(?:#SBATCH\s+)?--([a-z][a-z0-9-]*)(?:[= ](.+))?$")

OWN_OPTIONS = {
    "array": "--workers",
    "job-name": "the study's name",
    "output": "the sweep's logs/ folder",
    "error": "the sweep's logs/ folder",
    "open-mode": "the sweep's logs/ folder",
    "signal": "launcher.slurm.signal_seconds",
    "requeue": "a requeued worker resumes its trials",
    "export": "the workers get the launcher's environment, with the study's URL",
    "nodes": "one node per worker",
    "partition": "launcher.slurm.partition",
    "gpus-per-node": "launcher.slurm.gpus_per_worker",
    "cpus-per-task": "launcher.slurm.cpus_per_worker",
    "mem": "launcher.slurm.mem_gb",
    "time": "launcher.slurm.time",
    "account": "launcher.slurm.account",
    "qos": "launcher.slurm.qos",
}
"""sbatch options the launcher sets itself, and where each is given instead."""


def slurm_minutes(text: str) -> int:
    """SLURM's time formats (``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours``,
    ``days-hours:minutes``, ``days-hours:minutes:seconds``) as whole minutes, rounded up."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a SLURM time: minutes, H:MM:SS or D-HH:MM:SS")
    days, d_hours, d_minutes, d_seconds, first, second, third = (int(g) if g else 0 for g in match.groups())
    if match.group(1) is not None:
        seconds = ((days * 24 + d_hours) * 60 + d_minutes) * 60 + d_seconds
    elif match.group(7) is not None:  # hours:minutes:seconds
        seconds = (first * 60 + second) * 60 + third
    else:  # minutes[:seconds]
        seconds = first * 60 + second
    return max(1, -(-seconds // 60))


class SlurmConfig(Strict):
    """Each worker's array task, as sbatch's options of the same names ask for it."""

    partition: Annotated[str, Field(min_length=1)] | None = None  # default: the cluster's default partition
    gpus_per_worker: Annotated[int, Field(strict=True, ge=0)] = 1  # the worker trains on its own GPU
    cpus_per_worker: Annotated[int, Field(strict=True, ge=1)] | None = None  # also its torch threads
    mem_gb: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    time: str | StrictInt | None = None  # minutes, or H:MM:SS / D-HH:MM:SS; default: the partition's limit
    account: Annotated[str, Field(min_length=1)] | None = None
    qos: Annotated[str, Field(min_length=1)] | None = None
    signal_seconds: Annotated[int, Field(strict=True, ge=10)] = 300  # SIGUSR2 this long before the time limit
    sbatch: list[str] = []  # further #SBATCH lines, e.g. "--constraint=a100"

    @field_validator("time")
    @classmethod
    def _a_slurm_time(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            slurm_minutes(str(value))
        return value

    @field_validator("sbatch")
    @classmethod
    def _long_options(cls, lines: list[str]) -> list[str]:
        for line in lines:
            match = _SBATCH.match(line.strip())
            if match is None:
                raise ValueError(f"{line!r}: give each line as --option=value (sbatch's long form)")
            if match.group(1) in OWN_OPTIONS:
                raise ValueError(f"{line!r}: --{match.group(1)} is set from {OWN_OPTIONS[match.group(1)]}")
        return lines

    def minutes(self) -> int | None:
        return None if self.time is None else slurm_minutes(str(self.time))

    def extra_options(self) -> dict[str, Any]:
        """The ``sbatch`` lines as option → value (``True`` for a flag)."""
        options: dict[str, Any] = {}
        for line in self.sbatch:
            match = _SBATCH.match(line.strip())
            assert match is not None  # checked at validation
            options[match.group(1)] = match.group(2).strip() if match.group(2) else True
        return options


class RayConfig(Strict):
    """Each worker's Ray actor: its share of the cluster."""

    gpus_per_worker: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None  # default: 1 with GPUs
    cpus_per_worker: Annotated[int, Field(strict=True, ge=1)] | None = None  # default: the CPUs / workers


class LauncherConfig(Strict):
    """Settings of the launchers that start workers through a scheduler (``--launcher``)."""

    slurm: SlurmConfig = SlurmConfig()
    ray: RayConfig = RayConfig()
