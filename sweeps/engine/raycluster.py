"""Ray: a sweep's workers as Ray actors on a Ray cluster (``--ray-address``, else a local one started here),
each with its share of the cluster: a GPU where the cluster has GPUs, and its CPUs.

An actor runs ``sweeps worker`` in its own process (:func:`sweeps.engine.launcher.worker_main`). When that
process or its node dies, Ray restarts the actor and runs its worker again, and Optuna's heartbeat fails the
trial it held, which any worker then re-runs with the same parameters from its last checkpoint. Actors rather
than tasks: an actor is ready before it runs, so the live view can tell pending workers from running ones.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.config.launcher import RayConfig
from sweeps.engine.launcher import JobStates, Join, Say, worker_main
from sweeps.engine.placement import RAY_JOB_ENV, RAY_TASK_ENV

RESTARTS = 3
"""Times an actor whose process or node died is restarted (its worker run again): a worker that keeps dying
should not keep the sweep alive."""

LOCAL_OBJECT_STORE_BYTES = 100 * 1024**2
"""A local Ray's object store: the workers pass Ray nothing but their arguments (Ray's default takes 30 % of
the machine's memory)."""

FORWARDED = ("SWEEPS_", "MLFLOW_")
"""Variables of the launcher's environment its workers get too (heartbeats, retries, MLflow credentials):
workers on other nodes do not inherit it."""


class RayError(ValueError):
    """No Ray here, or no Ray cluster at the address given."""


def connect(address: str | None) -> str:
    """Join the Ray cluster at ``address`` (``host:port``, ``ray://host:port`` or ``auto``), or start a local
    one; returns what it is, to say. An address where nothing answers is refused at once: Ray itself would
    try again for a minute."""
    try:
        import ray
    except ImportError:
        raise RayError("--launcher ray needs Ray: pip install 'optimizer-sweeps[ray]'") from None
    if address and address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as error:
            raise RayError(
                f"--ray-address {address}: no Ray cluster answers there ({error});"
                " start one with `ray start --head`, or leave --ray-address out for a local one"
            ) from None
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(address="local", object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
    except ConnectionError as error:
        raise RayError(f"--ray-address {address}: {str(error).splitlines()[0]}") from None
    resources = ray.cluster_resources()
    where = f"Ray cluster at {address}" if address else "a local Ray"
    return f"{where}: {resources.get('CPU', 0):.0f} CPUs, {resources.get('GPU', 0):.0f} GPUs"


def default_workers() -> int:
    """One worker per GPU of the cluster, else one."""
    import ray

    return max(1, int(ray.cluster_resources().get("GPU", 0)))


class _Worker:
    """One worker as a Ray actor: ``sweeps worker`` in the actor's process, its output in a log file."""

    def ready(self) -> bool:
        return True

    def run(self, args: list[str], env: dict[str, str], log: str) -> int:
        os.environ.update(env)
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
        return worker_main(args)


@dataclass
class RayActors:
    """The sweep's workers as ``count`` Ray actors of the connected cluster."""

    settings: RayConfig
    count: int
    join: Join
    refresh: float = 1.0
    job_id: str = ""
    actors: list[Any] = field(default_factory=list)
    ready: list[Any] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)
    _left: int = 0

    def start(self) -> dict[str, Any]:
        import ray

        resources = ray.cluster_resources()
        gpus = self.settings.gpus_per_worker
        gpus = (1 if resources.get("GPU") else 0) if gpus is None else gpus
        cpus = self.settings.cpus_per_worker or max(1, int(resources.get("CPU", 1)) // self.count)
        self.job_id = ray.get_runtime_context().get_job_id()
        actor = ray.remote(_Worker).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=RESTARTS, max_task_retries=RESTARTS
        )
        forwarded = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED)}
        env = forwarded | self.join.env() | {RAY_JOB_ENV: self.job_id}
        self.actors = [actor.remote() for _ in range(self.count)]
        self.ready = [a.ready.remote() for a in self.actors]
        self.runs = [
            a.run.remote(
                self.join.args(i, cpus), env | {RAY_TASK_ENV: str(i)}, str(self.join.logs / f"worker-{i}.log")
            )
            for i, a in enumerate(self.actors)
        ]
        self._left = self.count
        return {"launcher": "ray", "job_id": self.job_id, "workers": self.count}

    def poll(self) -> list[JobStates]:
        import ray

        started, _ = ray.wait(self.ready, num_returns=len(self.ready), timeout=0)
        ended, left = ray.wait(self.runs, num_returns=len(self.runs), timeout=0)
        self._left = len(left)
        counts = {"pending": len(self.ready) - len(started), "running": len(started) - len(ended)}
        counts["finished"] = len(ended)
        return [JobStates(f"Ray job {self.job_id}", Counter({k: n for k, n in counts.items() if n}))]

    def alive(self) -> bool:
        return self._left > 0

    def failed(self) -> int:
        import ray

        failed = 0
        for run in self.runs:
            try:
                failed += ray.get(run) != 0
            except ray.exceptions.RayError:
                failed += 1
        return failed

    def stop(self, say: Say) -> None:
        """Kill the actors (a running actor method cannot be interrupted); the launcher then fails the trials
        they held, whose budget goes back to the queue."""
        import ray

        say(f"stopping Ray job {self.job_id}'s workers ...")
        for actor in self.actors:
            ray.kill(actor, no_restart=True)

    def drop_pending(self) -> None:
        """An actor still waiting for resources is left to start: it finds nothing to run and ends."""

    def owns(self, worker: str) -> bool:
        return f":ray {self.job_id}_" in worker
