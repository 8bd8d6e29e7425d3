"""Where a worker runs, as the scheduler that started it names it: read from the variables each scheduler sets
in its workers' environment, so that a worker started by hand inside a job is named the same way."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping

RAY_JOB_ENV, RAY_TASK_ENV = "SWEEPS_RAY_JOB", "SWEEPS_RAY_WORKER"
"""Set by the Ray launcher in each worker actor: Ray itself exports nothing that names a job and a worker."""


def placement(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``launcher``, ``job_id``, ``task_id`` and ``node`` of a worker inside a SLURM job (array task), a
    Kubernetes Indexed Job's pod or a Ray launcher's actor; empty elsewhere."""
    node = platform.node()
    if "SLURM_JOB_ID" in environ:
        return {
            "launcher": "slurm",
            "job_id": environ.get("SLURM_ARRAY_JOB_ID") or environ["SLURM_JOB_ID"],
            "task_id": environ.get("SLURM_ARRAY_TASK_ID", "0"),
            "node": environ.get("SLURMD_NODENAME", node),
        }
    if "JOB_COMPLETION_INDEX" in environ:
        return {
            "launcher": "kubernetes",
            "job_id": environ.get("JOB_NAME", ""),
            "task_id": environ["JOB_COMPLETION_INDEX"],
            "node": environ.get("NODE_NAME", node),
        }
    if RAY_JOB_ENV in environ:
        return {
            "launcher": "ray",
            "job_id": environ[RAY_JOB_ENV],
            "task_id": environ.get(RAY_TASK_ENV, "0"),
            "node": node,
        }
    return {}


def worker_label(where: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> str:
    """``host:pid[:gpuN][:slurm 1234_0]``: a worker as its trials name it, ending with the scheduler's job and
    task when it has one (``where``: its :func:`placement`), by which a launcher finds its workers' trials."""
    gpu = environ.get("CUDA_VISIBLE_DEVICES")
    job = f"{where['launcher']} {where['job_id']}_{where['task_id']}" if where else ""
    return ":".join(p for p in (platform.node(), str(os.getpid()), f"gpu{gpu}" if gpu else "", job) if p)
