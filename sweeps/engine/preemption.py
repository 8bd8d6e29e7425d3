"""Preemption is not a crash: a worker told to stop by its scheduler finishes the epoch it is in, keeps that
epoch's checkpoint, gives its trials back and exits; whoever asks for a trial next resumes them.

The signals are the ones schedulers send before they take a machine back: SLURM's SIGTERM (a preemption,
``scontrol requeue``, ``scancel``) and the SIGUSR2 its ``--signal`` option sends before a time limit,
Kubernetes' and Docker's SIGTERM. A handler only sets a flag, listening from the worker's first line (a
scheduler may stop a task while it still imports, and the handler it would meet then, submitit's, ignores
SIGTERM); the training loop (:class:`sweeps.engine.training.StopAtEpochEnd`) reads it as the next epoch
starts, when every callback of the epoch before (its row, its pruning decision, its checkpoint) has run, so
stopping needs no ordering among callbacks and adds nothing to a training step. A trial given back is the
same trial (WAITING again, with its number, params, MLflow run and checkpoint key), so it keeps its retry
budget and Optuna, MLflow and the report see one trial, not a failure and a copy.

A job stopped before its time limit is requeued by SLURM itself; one warned of its time limit must ask for
that (:func:`finish`), since SLURM ends a job at its limit for good.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from types import FrameType

TIME_LIMIT_SIGNAL = signal.SIGUSR2

_logger = logging.getLogger(__name__)


class Preempted(Exception):
    """Raised as an epoch starts once the worker was told to stop: its trial is given back, not failed."""


class Stop:
    """Whether this process was told to stop, and by which signal (one per process: :data:`STOP`)."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self.listening = False

    def listen(self) -> None:
        """Take SIGTERM and SIGUSR2 as a request to stop at the next epoch end (a process's main thread only:
        Python runs signal handlers there)."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, TIME_LIMIT_SIGNAL):
                signal.signal(signum, self._heard)
            self.listening = True

    def _heard(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal is None:
            self.signal = name
            _logger.warning("%s received: stopping at the next epoch end and giving the trials back", name)
        else:
            _logger.info("%s received; already stopping", name)

    @property
    def requested(self) -> bool:
        return self.signal is not None


STOP = Stop()


def finish(environ: os._Environ[str] | dict[str, str] = os.environ) -> str:
    """What a stopped worker says once its trials are given back. Warned of its time limit inside a SLURM
    job, it first asks SLURM to requeue the job (array task), which SLURM would otherwise end for good."""
    if STOP.signal != TIME_LIMIT_SIGNAL.name or "SLURM_JOB_ID" not in environ:
        return f"stopped by {STOP.signal}; its trials were given back"
    job = environ["SLURM_JOB_ID"]
    if "SLURM_ARRAY_TASK_ID" in environ:
        job = f"{environ['SLURM_ARRAY_JOB_ID']}_{environ['SLURM_ARRAY_TASK_ID']}"
    done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    if done.returncode:
        return f"stopped by {STOP.signal}; its trials were given back; requeue failed: {done.stderr.strip()}"
    return f"stopped by {STOP.signal} before its time limit; its trials were given back, job {job} requeued"
