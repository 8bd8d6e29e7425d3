"""``sweeps run``, ``worker`` and ``status``: a sweep launched, joined from anywhere, and watched."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from sweeps import workdir
from sweeps.cli.bootstrap import bootstrap_worker, quiet_libraries, restrict_imports
from sweeps.cli.common import (
    AllowImports,
    Pack,
    Storage,
    TrackingUri,
    checked,
    console,
    fail,
    failing,
    reached_storage,
)
from sweeps.names import EXIT_PREEMPTED
from sweeps.tracking.uris import is_file


def run_sweep(
    context: typer.Context,
    config: Annotated[Path, typer.Argument(help="YAML sweep spec, e.g. conf/sweep.yaml")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    workers: Annotated[
        int | None,
        typer.Option(min=0, help="worker processes (CPU: default 1; GPU: cap; 0: create the study only)"),
    ] = None,
    workers_per_gpu: Annotated[int, typer.Option(min=1, help="workers packed on each GPU")] = 1,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads per worker (default: cores / workers)")
    ] = None,
    pack: Pack = None,
    launcher_kind: Annotated[
        Literal["local", "slurm", "ray"],
        typer.Option("--launcher", help="where workers start: here, as a SLURM job array, or as Ray actors"),
    ] = "local",
    detach: Annotated[
        bool, typer.Option("--detach", help="--launcher slurm: submit the job array, print its id and return")
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            envvar="RAY_ADDRESS", help="--launcher ray: the cluster (default: a local one started here)"
        ),
    ] = None,
    allow_imports: AllowImports = None,
    storage_proxy: Annotated[
        bool,
        typer.Option(
            "--storage-proxy",
            help="PostgreSQL: workers reach the study through PgBouncer started here (sweeps storage-proxy)",
        ),
    ] = False,
) -> None:
    """Create (or resume) a sweep's study and run it with workers on every GPU, or on the CPU cores, or
    through SLURM or Ray."""
    from sweeps.config.sweep import load_sweep

    if detach and launcher_kind != "slurm":
        raise fail("--detach needs --launcher slurm: local and Ray workers live with this command")
    restrict_imports(allow_imports)
    if detach and storage_proxy:
        raise fail(
            "--storage-proxy lives with this command; with --detach start `sweeps storage-proxy` yourself"
        )
    sweep = checked(load_sweep, config, overrides)
    if detach and sweep.study.retrain_seeds:
        raise fail(
            "--detach: study.retrain_seeds are queued by the launching command once the search is over;"
            " run without --detach, or with study.retrain_seeds=0"
        )
    import torch

    from models.data.files import DatasetNotFound
    from sweeps.cli.live import LiveView
    from sweeps.config.files import ConfigError
    from sweeps.engine import launcher, raycluster, slurm, study
    from sweeps.engine.preflight import check_sweep
    from sweeps.engine.servers import check_tracking
    from sweeps.engine.storage.pooler import proxy_for
    from sweeps.engine.storage.urls import in_shell
    from sweeps.masking import mask
    from sweeps.tracking.uris import tracking_uri as resolve_tracking

    quiet_libraries()  # after the imports: Lightning sets its loggers' level when it is imported
    logs = workdir.folder() / workdir.LOGS / sweep.study.name  # a scheduler's workers get it absolute
    with failing(ConfigError, DatasetNotFound, ValueError):
        check_sweep(sweep)
        url, uri = reached_storage(storage), resolve_tracking(tracking_uri)
        check_tracking(uri)
        if workers != 0 and launcher_kind == "slurm":
            slurm.check(sweep.launcher.slurm, workers or 1, logs.absolute())
        if workers != 0 and launcher_kind == "ray":
            console.print(f"workers on {raycluster.connect(ray_address)}")
        if storage_proxy and workers != 0:
            url, stop_proxy = proxy_for(url, remote=launcher_kind != "local")
            context.call_on_close(stop_proxy)  # whichever way the command ends
        created = study.create(sweep, url, uri, [str(config), *(overrides or ())])
    console.print(f"study [bold]{sweep.study.name}[/] in {mask(url)}; MLflow {mask(uri)}", soft_wrap=True)
    if workers == 0:
        join = in_shell(f"sweeps worker --study {sweep.study.name}", url, uri)
        console.print(f"created; join with: {join}", soft_wrap=True)
        return
    for note in this_machine_only(url, uri) if launcher_kind != "local" else ():
        console.print(f"[yellow]note:[/] {note}")
    join = launcher.Join(
        sweep.study.name, url, uri, logs.absolute() if launcher_kind != "local" else logs, pack, allow_imports
    )
    if launcher_kind == "slurm":
        pool: launcher.Workers = slurm.SlurmArray(sweep.launcher.slurm, workers or 1, join)
    elif launcher_kind == "ray":
        pool = raycluster.RayActors(sweep.launcher.ray, workers or raycluster.default_workers(), join)
    else:
        gpus = launcher.visible_gpus(os.environ, torch.cuda.device_count())
        slots = launcher.plan(workers, workers_per_gpu, gpus, os.cpu_count() or 1, threads)
        pool = launcher.Processes(slots, join)
    if detach:
        job = pool.start()
        launcher.record_job(created, job)
        follow = in_shell(f"sweeps status {sweep.study.name}", url)
        said = f"submitted SLURM job {job['job_id']} ({job['workers']} workers); follow it with: {follow}"
        console.print(said, soft_wrap=True)
        return
    try:
        outcome = launcher.run(created, sweep, uri, pool, LiveView(created, sweep, console))
    except KeyboardInterrupt:
        raise fail("interrupted; run the same command again to resume", code=130) from None
    if outcome.all_failed:
        raise fail(
            f"every search trial failed, most with: {outcome.reason}; the tracebacks are in {outcome.logs}/",
            code=1,
        )
    if outcome.failed:
        raise fail(f"{outcome.failed} worker(s) exited with an error; see {outcome.logs}/", code=1)
    if outcome.left:
        raise fail(
            f"the workers were stopped (preempted or cancelled) with {outcome.left} trial(s) left waiting;"
            " run the same command again to resume them",
            code=1,
        )
    for command in next_commands(sweep.study.name, url):
        console.print(f"next: {command}", soft_wrap=True, highlight=False)


def next_commands(name: str, url: str) -> list[str]:
    """What to run once a sweep is done, to paste in any shell: a study outside the default storage is named,
    not left to this shell's $SWEEPS_STORAGE (``SWEEPS_STORAGE=URL sweeps run`` sets it for one command)."""
    from sweeps.engine.storage.urls import in_shell, is_default

    commands = [f"sweeps report {name}", f"sweeps ui {name}"]
    return commands if is_default(url) else [in_shell(c, url) for c in commands]


def this_machine_only(storage_url: str, tracking_uri: str) -> list[str]:
    """What keeps a cluster's workers on this machine: a study or an MLflow store that is a file here. At
    scale workers reach MLflow only through a tracking server: hundreds of them writing one SQLite file (or
    a shared folder) would queue on its lock."""
    notes = []
    if is_file(storage_url):
        notes.append(
            "the study is a SQLite file: every worker must run on this machine; give workers on other"
            " machines a PostgreSQL study (--storage)"
        )
    if is_file(tracking_uri):
        notes.append(
            "MLflow's store is a file here: every worker must run on this machine and write to it; give"
            " workers on other machines a tracking server (--tracking-uri http://HOST:5000)"
        )
    return notes


def worker(
    study_name: Annotated[str, typer.Option("--study", help="name of an existing study")],
    storage: Storage = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_TRACKING_URI",
            help="MLflow URI as this machine reaches it (default: the study's)",
        ),
    ] = None,
    index: Annotated[int, typer.Option(min=0, help="worker number: offsets the sampler seed")] = 0,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads")] = None,
    pack: Pack = None,
    allow_imports: AllowImports = None,
) -> None:
    """Join an existing sweep from any machine and run its trials until the budget is spent."""
    from sweeps.engine.preemption import STOP, finish

    STOP.listen()  # before the imports below, which take seconds: a stop that comes meanwhile is kept
    restrict_imports(allow_imports)
    bootstrap_worker(threads)
    quiet_libraries()
    from sweeps.engine.storage.rdb import StudyNotFoundError
    from sweeps.engine.worker import run_worker

    if importlib.util.find_spec("pytorch_lightning"):  # not ours to need; where installed, MLflow imports it
        importlib.import_module("pytorch_lightning")  # to log a model, which would reset its loggers' level

    quiet_libraries()  # after the imports: Lightning sets its loggers' level when it is imported

    with failing(StudyNotFoundError, ValueError):
        url = reached_storage(storage)
        ran = run_worker(study_name, url, tracking_uri, index, pack)
    if STOP.requested:
        console.print(f"worker {index}: {finish()}")
        raise typer.Exit(EXIT_PREEMPTED)
    console.print(f"worker {index}: {ran} trial(s) run; no budget left")


def status(
    study_name: Annotated[str, typer.Argument(help="the sweep's study name")],
    storage: Storage = None,
) -> None:
    """Progress of a running or finished sweep, read from its storage."""
    quiet_libraries()
    from sweeps.cli.live import summary
    from sweeps.engine.slurm import recorded_jobs
    from sweeps.engine.storage.rdb import StudyNotFoundError
    from sweeps.engine.study import open_sweep

    with failing(StudyNotFoundError, ValueError):
        url = reached_storage(storage)
        found, sweep = open_sweep(study_name, url)
    console.print(summary(found, sweep, recorded_jobs(found)))
