"""SLURM: a sweep's workers as one job array, one worker per array task, each on its own GPU.

submitit (the library behind Hydra's SLURM launcher) writes the sbatch script from the spec's
``launcher.slurm`` block, submits the array, and runs each task's worker on its node in the task's own process
(:func:`sweeps.engine.launcher.worker_main`), whose signal handlers then are the worker's: SIGUSR2 before the
time limit and SIGTERM (preemption, ``scontrol requeue``, ``scancel``) stop it at the next epoch end with its
trials given back (:mod:`sweeps.engine.preemption`). The tasks' states come from ``squeue``, not from
submitit's watcher, which reads ``sacct`` and so needs SLURM's accounting database; ``squeue`` answers on any
cluster.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from sweeps.config.launcher import SlurmConfig
from sweeps.engine.launcher import JobStates, Join, Say, worker_main
from sweeps.environ import scoped_environ
from sweeps.names import EXIT_PREEMPTED, JOBS_ATTR

SQUEUE_EVERY_S = 2.0
"""Seconds between two ``squeue`` calls while a sweep runs: each is a request to the controller."""

STOP_WAIT_S = 120.0
"""How long a cancelled array may take to leave the queue: SLURM's KillWait (30 s by default) after its
SIGTERM, and the worker's epoch end before that."""


class SlurmError(ValueError):
    """The cluster cannot take the job array: no SLURM here, a controller that does not answer, options it
    refuses."""


def _slurm(command: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{command[0]} got no answer from the SLURM controller in {timeout:.0f} s") from None


def _said(done: subprocess.CompletedProcess[str]) -> str:
    """The last line a SLURM command printed (its error)."""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {done.returncode}"


def check(settings: SlurmConfig, workers: int, logs: Path) -> None:
    """Refuse, before anything is created: no ``sbatch`` here, a controller that does not answer, an unknown
    partition (the cluster's are named), or any option sbatch refuses (``sbatch --test-only`` on the very
    script that would be submitted)."""
    if shutil.which("sbatch") is None:
        raise SlurmError("--launcher slurm: sbatch is not on PATH; run it on a machine of the SLURM cluster")
    listed = _slurm(["sinfo", "-h", "-o", "%P"])
    if listed.returncode:
        raise SlurmError(f"--launcher slurm: SLURM does not answer: {_said(listed)}")
    partitions = listed.stdout.split()
    if settings.partition is not None and settings.partition not in {p.rstrip("*") for p in partitions}:
        raise SlurmError(
            f"launcher.slurm.partition: no partition {settings.partition!r} on this cluster;"
            f" it has {', '.join(partitions)} (* the default)"
        )
    with tempfile.TemporaryDirectory(prefix="sweeps-sbatch-") as scratch:
        script = Path(scratch) / "array.sh"
        executor = _executor(settings, "check", logs)
        executor.parameters["map_count"] = workers
        # submitit's own rendering of the script it will submit (a private method: it has no dry run)
        script.write_text(executor._make_submission_file_text("true", "check"))
        tested = _slurm(["sbatch", "--test-only", str(script)])
    if tested.returncode:
        raise SlurmError(f"launcher.slurm: sbatch refuses the job array: {_said(tested)}")


def _executor(settings: SlurmConfig, name: str, logs: Path) -> Any:
    """A submitit executor with the launcher block's options. Every array task may be requeued (preemption,
    time limit) and gets the launcher's environment: the workers' storage URL and MLflow store travel there,
    never in a file. Without ``launcher.slurm.time`` a task gets its partition's limit (submitit would ask for
    5 minutes)."""
    import submitit

    executor = submitit.SlurmExecutor(folder=logs / "slurm")
    options = {
        "partition": settings.partition,
        "gpus_per_node": settings.gpus_per_worker or None,
        "cpus_per_task": settings.cpus_per_worker,
        "mem": f"{int(settings.mem_gb * 1024)}MB" if settings.mem_gb else None,
        "time": settings.minutes(),
        "account": settings.account,
        "qos": settings.qos,
    }
    limit = {} if settings.time is not None else {"time": _partition_limit(settings.partition)}
    executor.update_parameters(
        job_name=f"sweeps-{name}",
        signal_delay_s=settings.signal_seconds,
        additional_parameters={"requeue": True, "export": "ALL", **limit, **settings.extra_options()},
        **{k: v for k, v in options.items() if v is not None},
    )
    return executor


def _partition_limit(partition: str | None) -> str:
    """The time limit of ``partition`` (default: the cluster's default partition), as sinfo prints it."""
    listed = _slurm(["sinfo", "-h", "-o", "%P %l"])
    limits = dict(line.split() for line in listed.stdout.splitlines() if line.strip())
    default = next((p for p in limits if p.endswith("*")), "")
    return limits.get(partition or default, limits.get(f"{partition}*", "infinite"))


def task_states(job_id: str) -> dict[str, str] | None:
    """Each task of array ``job_id`` still queued or running, with its state (``PENDING``, ``RUNNING``,
    ...); ``None`` when ``squeue`` does not answer."""
    listed = subprocess.run(
        ["squeue", "-h", "-r", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True, timeout=30
    )
    if listed.returncode:
        return {} if "Invalid job id" in listed.stderr else None
    return dict(line.split(maxsplit=1) for line in listed.stdout.splitlines() if line.strip())


def recorded_jobs(study: optuna.Study, last: int = 3) -> list[JobStates]:
    """The ``last`` scheduler jobs recorded on the study (``sweeps status``): what SLURM says of its arrays
    now; a Ray launcher's actors live and end with the ``sweeps run`` that started them."""
    jobs = study.user_attrs.get(JOBS_ATTR, [])[-last:]
    return [
        job_states(job)
        if job["launcher"] == "slurm"
        else JobStates(
            f"{job['launcher']} job {job['job_id']} ({job['workers']} workers)", {}, "ran from sweeps run"
        )
        for job in jobs
    ]


def job_states(job: Mapping[str, Any]) -> JobStates:
    """What SLURM says of a recorded job."""
    name = f"SLURM job {job['job_id']} ({job['workers']} workers)"
    if shutil.which("squeue") is None:
        return JobStates(name, {}, "squeue is not on this machine's PATH")
    states = task_states(str(job["job_id"]))
    if states is None:
        return JobStates(name, {}, "squeue does not answer")
    return JobStates(name, Counter(s.lower() for s in states.values()), "finished")


@dataclass
class SlurmArray:
    """The sweep's workers as one SLURM job array of ``count`` tasks."""

    settings: SlurmConfig
    count: int
    join: Join
    refresh: float = SQUEUE_EVERY_S
    job_id: str = ""
    jobs: list[Any] = field(default_factory=list)
    _states: dict[str, str] | None = None

    def start(self) -> dict[str, Any]:
        threads = self.settings.cpus_per_worker
        args = [self.join.args(i, threads) for i in range(self.count)]
        executor = _executor(self.settings, self.join.name, self.join.logs)
        with scoped_environ(self.join.env()):  # while sbatch copies it into the job
            self.jobs = executor.map_array(worker_main, args)
        self.job_id = self.jobs[0].job_id.split("_")[0]
        self._states = None
        return {"launcher": "slurm", "job_id": self.job_id, "workers": self.count}

    def poll(self) -> list[JobStates]:
        states = task_states(self.job_id)
        if states is not None:  # a controller that does not answer for a moment changes nothing
            self._states = states
        counts = Counter(s.lower() for s in (self._states or {}).values())
        return [JobStates(f"SLURM job {self.job_id}", counts, "no task queued or running")]

    def alive(self) -> bool:
        return self._states is None or bool(self._states)

    def failed(self) -> int:
        """Tasks that ended without their worker's result, with an error, or with an exit code other than 0 or
        a stopped worker's (its trials given back: resumed by another task, or waiting for a resume)."""
        from submitit.core.utils import pickle_load

        failed = 0
        for job in self.jobs:
            result = job.paths.result_pickle
            outcome, code = pickle_load(result) if result.exists() else ("missing", None)
            failed += outcome != "success" or code not in (0, EXIT_PREEMPTED)
        return failed

    def stop(self, say: Say) -> None:
        """``scancel`` the array: each running worker gets SIGTERM and gives its trials back at its epoch end;
        wait until SLURM has ended every task."""
        say(f"cancelling SLURM job {self.job_id} ...")
        _slurm(["scancel", self.job_id])
        ends = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < ends and task_states(self.job_id) != {}:
            time.sleep(1)
        say(f"cancelled SLURM job {self.job_id} ({self.count} tasks); running trials were given back")

    def drop_pending(self) -> None:
        """Tasks not started yet (a requeued one waiting to start again) would start only to find nothing."""
        _slurm(["scancel", "--state=PENDING", self.job_id])

    def owns(self, worker: str) -> bool:
        return f":slurm {self.job_id}_" in worker
