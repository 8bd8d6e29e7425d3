"""A real single-node SLURM cluster for the tests: Debian's munged, slurmctld and slurmd, each a process of
the test session with its key, config, state, sockets and ports of its own (nothing of the machine's own
SLURM or munge is read or touched), stopped by pid afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.sweeps.helpers import free_ports

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")

CONF = """\
ClusterName=sweeps-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock,cred_expire=10
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=30
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""
"""``cred_expire=10``: a requeued job waits that long before it starts again (120 s by default)."""


def missing() -> str | None:
    """Why no cluster can start here (a Debian package not installed), else ``None``."""
    absent = [name for name in DAEMONS if shutil.which(name) is None]
    if absent:
        return (
            f"SLURM not installed ({', '.join(absent)}): apt-get install slurmctld slurmd slurm-client munge"
        )
    return None


@contextmanager
def slurm_cluster(root: Path) -> Iterator[dict[str, str]]:
    """Start the cluster in ``root``; yields the environment its commands need (``SLURM_CONF``)."""
    host = socket.gethostname()
    ctld_port, d_port = free_ports(2)
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(CONF.format(host=host, root=root, ctld_port=ctld_port, d_port=d_port))
    subprocess.run(["mungekey", "--create", f"--keyfile={root}/munge.key"], check=True)
    env = {"SLURM_CONF": str(conf)}
    with ExitStack() as daemons:
        munge = [
            "munged",
            "--foreground",
            "--force",
            f"--key-file={root}/munge.key",
            f"--socket={root}/munge.sock",
            f"--pid-file={root}/munged.pid",
            f"--log-file={root}/munged.log",
            f"--seed-file={root}/munged.seed",
        ]
        for command in (munge, ["slurmctld", "-D", "-i", "-f", str(conf)], ["slurmd", "-D", "-f", str(conf)]):
            daemons.enter_context(_daemon(command, root / f"{command[0]}.out"))
        _wait_idle(env, root)
        yield env


@contextmanager
def _daemon(command: list[str], out: Path) -> Iterator[subprocess.Popen]:
    with out.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_idle(env: dict[str, str], root: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=os.environ | env
        )
        state = listed.stdout.strip()
        if state == "idle":
            return
        time.sleep(0.5)
    logs = (root / "slurmctld.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the test SLURM node is {state!r}, not idle, after {timeout:.0f} s:\n{logs}")


def squeue(env: dict[str, str], job_id: str) -> str:
    """``squeue``'s lines for job ``job_id`` (empty once every task has ended)."""
    listed = subprocess.run(
        ["squeue", "-h", "-r", "-j", job_id, "-o", "%i %T"],
        capture_output=True,
        text=True,
        env=os.environ | env,
    )
    return listed.stdout.strip()
