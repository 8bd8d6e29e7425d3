"""The ``sweeps`` command line. Heavy imports (torch, Lightning, MLflow) happen inside the commands, after the
arguments and the config have been checked, so mistakes are reported in a fraction of a second."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from sweeps.config.files import ConfigError
from sweeps.config.train import load
from sweeps.engine.runtime import tune_allocator
from sweeps.tracking.uris import mask_output

app = typer.Typer(
    name="sweeps",
    help="Train, sweep and compare deep-learning optimizers on the MNIST CNN, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)


@app.callback()
def _every_command() -> None:
    """Passwords in URLs never reach the terminal or a log, whichever command runs."""
    mask_output()


EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    ),
]


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


C = TypeVar("C")


def _checked(loader: Callable[[Path, Sequence[str]], C], config: Path, overrides: list[str] | None) -> C:
    """A validated config, or exit 2 with the message that names every bad field."""
    try:
        return loader(config, overrides or ())
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _quiet_libraries() -> None:
    """Lightning's banners and tips are noise on a terminal that shows one line per epoch."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _log_progress() -> None:
    """A worker's log (its stderr) shows what the engine reports at INFO: a trial pruned, or resumed from
    its checkpoint at some epoch."""
    engine = logging.getLogger("sweeps")
    engine.setLevel(logging.INFO)
    if not engine.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        engine.addHandler(handler)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML run config, e.g. conf/train.yaml")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Train once with one optimizer and record the run (params, per-epoch curves, config) in MLflow."""
    cfg = _checked(load, config, overrides)
    tune_allocator()
    _quiet_libraries()
    from models.data.files import DatasetNotFound
    from sweeps.engine.servers import Unreachable, check_tracking
    from sweeps.engine.training import train as run
    from sweeps.tracking.uris import tracking_uri as resolve_tracking

    try:
        uri = resolve_tracking(tracking_uri)
        check_tracking(uri)
        result = run(cfg, uri, console=console)
    except (ConfigError, DatasetNotFound, Unreachable) as exc:
        raise _fail(str(exc)) from None
    if result.outcome == "diverged":
        console.print(f"[bold red]diverged:[/] {result.reason} (run {result.run_id} marked FAILED)")
        raise typer.Exit(EXIT_DIVERGED)
    last = {k: v for k, v in (result.history or [{}])[-1].items() if k not in ("epoch", "epoch_seconds")}
    found = f"best val_acc {result.best_val_acc:.4f}" if "val_acc" in last else _shown(last)
    console.print(f"[bold green]done[/] {found} in {result.total_seconds:.1f}s (run {result.run_id})")


def _shown(metrics: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.4f}" for key, value in metrics.items()) or "no metrics logged"


@app.command()
def optimizers() -> None:
    """List the optimizer registry: each entry's hyperparameters and its torch and keras presets."""
    from models.optimizers import PRESETS, REGISTRY

    caption = "any torch.optim.Optimizer subclass works too: optimizer.name=package.module:Class"
    table = Table("name", "summary", *(f"{p} preset" for p in PRESETS), caption=caption)
    for spec in REGISTRY.values():
        presets = (", ".join(f"{k}={v}" for k, v in spec.presets[p].items()) for p in PRESETS)
        table.add_row(spec.name, spec.summary, *presets)
    console.print(table)


@app.command()
def bench(
    dataset: Annotated[str, typer.Option(help="data set to time on")] = "fashion_mnist",
    data_dir: Annotated[Path | None, typer.Option(help="folder with the IDX files")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    optimizer: Annotated[str, typer.Option(help="registry optimizer every path uses")] = "adam",
    train_subset: Annotated[
        int | None, typer.Option(min=1, help="time on a subset (default: all 60k)")
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="epochs timed per path, interleaved")] = 1,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
    bf16: Annotated[bool, typer.Option(help="also time our path with bf16 autocast")] = False,
    out: Annotated[Path, typer.Option(help="where to write the JSON results")] = Path("bench.json"),
    trials: Annotated[
        bool, typer.Option("--trials", help="trials per hour instead: one per process, K processes, packs")
    ] = False,
    packs: Annotated[str, typer.Option(help="with --trials: the pack sizes K to time")] = "1,8,32,64,128",
    processes: Annotated[int, typer.Option(min=1, help="with --trials: processes sharing the device")] = 4,
    epochs: Annotated[int, typer.Option(min=1, help="with --trials: epochs of one trial")] = 10,
    steps: Annotated[int, typer.Option(min=1, help="with --trials: training steps timed per path")] = 20,
) -> None:
    """Seconds per training epoch, side by side: (a) the usual Lightning + DataLoader recipe, (b) a plain
    PyTorch loop on resident tensors, (c) this project's training path. With --trials: trials per hour of
    one trial shape, one trial per process, K processes per device, and packs of K trials."""
    from sweeps.report.terminal import show
    from sweeps.tools import bench as benchmark
    from sweeps.tools import throughput

    common = {"dataset": dataset, "data_dir": data_dir, "optimizer": optimizer, "batch_size": batch_size}
    common |= {"device": device, "bf16": bf16}
    try:
        if trials:
            shape = throughput.Shape(
                **common, epochs=epochs, packs=throughput.pack_sizes(packs), processes=processes, steps=steps
            )
            measured: Any = throughput.run(shape, console)
            shown = throughput.table(measured)
        else:
            measured = benchmark.run(
                benchmark.BenchSpec(**common, train_subset=train_subset, repeats=repeats), console
            )
            shown = benchmark.table(measured)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    except benchmark.BenchFailed as exc:
        raise _fail(str(exc), code=1) from None
    out.write_text(measured.to_json())
    show(console, shown)
    console.print(f"results written to {out}")


Storage = Annotated[
    str | None,
    typer.Option(
        "--storage", help="Optuna storage URL (default: $SWEEPS_STORAGE, else the embedded SQLite file)"
    ),
]
Pack = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=256,
        envvar="SWEEPS_PACK",
        help="trials each worker trains as one stacked model (default: $SWEEPS_PACK, else study.pack)",
    ),
]


@app.command("run")
def run_sweep(
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
) -> None:
    """Create (or resume) a sweep's study and run it with workers on every GPU, or on the CPU cores."""
    from sweeps.config.sweep import load_sweep

    sweep = _checked(load_sweep, config, overrides)
    _quiet_libraries()
    import torch

    from models.data.files import DatasetNotFound
    from sweeps.engine import launcher, study
    from sweeps.engine.preflight import check_sweep
    from sweeps.engine.servers import check_storage, check_tracking
    from sweeps.engine.storage.urls import storage_url
    from sweeps.tracking.uris import mask
    from sweeps.tracking.uris import tracking_uri as resolve_tracking

    try:
        check_sweep(sweep)
        url, uri = storage_url(storage), resolve_tracking(tracking_uri)
        check_storage(url)
        check_tracking(uri)
        created = study.create(sweep, url, uri)
    except (ConfigError, DatasetNotFound, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"study [bold]{sweep.study.name}[/] in {mask(url)}; MLflow {mask(uri)}", soft_wrap=True)
    if workers == 0:
        console.print(f"created; join with: {_join_command(sweep.study.name, url, uri)}", soft_wrap=True)
        return
    gpus = launcher.visible_gpus(os.environ, torch.cuda.device_count())
    slots = launcher.plan(workers, workers_per_gpu, gpus, os.cpu_count() or 1, threads)
    try:
        outcome = launcher.run(created, sweep, url, uri, slots, console, pack)
    except KeyboardInterrupt:
        raise _fail("interrupted; run the same command again to resume", code=130) from None
    if outcome.all_failed:
        raise _fail(
            f"every search trial failed, most with: {outcome.reason}; the tracebacks are in {outcome.logs}/",
            code=1,
        )
    if outcome.failed:
        raise _fail(f"{outcome.failed} worker(s) exited with an error; see {outcome.logs}/", code=1)


def _join_command(name: str, storage_url: str, tracking_uri: str) -> str:
    """A command that joins the sweep when pasted: a URL with a password is not printed, the variable that
    must hold it is named instead."""
    from sweeps.tracking.uris import has_secret

    urls = {"SWEEPS_STORAGE": storage_url, "MLFLOW_TRACKING_URI": tracking_uri}
    hidden = [variable for variable, url in urls.items() if has_secret(url)]
    shown = "" if has_secret(storage_url) else f"SWEEPS_STORAGE='{storage_url}' "
    command = f"{shown}sweeps worker --study {name}"
    if hidden:
        command += f"   (with ${' and $'.join(hidden)} set: they hold a password, which is not printed)"
    return command


@app.command()
def worker(
    study_name: Annotated[str, typer.Option("--study", help="name of an existing study")],
    storage: Storage = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_TRACKING_URI",
            help="MLflow URI as this machine reaches it (default: $MLFLOW_TRACKING_URI, else the study's)",
        ),
    ] = None,
    index: Annotated[int, typer.Option(min=0, help="worker number: offsets the sampler seed")] = 0,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads")] = None,
    pack: Pack = None,
) -> None:
    """Join an existing sweep from any machine and run its trials until the budget is spent."""
    tune_allocator()
    _quiet_libraries()
    _log_progress()
    from sweeps.engine.servers import check_storage
    from sweeps.engine.storage.rdb import StudyNotFoundError
    from sweeps.engine.storage.urls import storage_url
    from sweeps.engine.worker import run_worker

    try:
        url = storage_url(storage)
        check_storage(url)
        ran = run_worker(study_name, url, tracking_uri, index, threads, pack)
    except (StudyNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"worker {index}: {ran} trial(s) run; no budget left")


@app.command()
def status(
    study_name: Annotated[str, typer.Argument(help="the sweep's study name")],
    storage: Storage = None,
) -> None:
    """Progress of a running or finished sweep, read from its storage."""
    _quiet_libraries()
    from sweeps.engine.progress import summary
    from sweeps.engine.servers import check_storage
    from sweeps.engine.storage.rdb import StudyNotFoundError
    from sweeps.engine.storage.urls import storage_url
    from sweeps.engine.study import open_sweep

    try:
        url = storage_url(storage)
        check_storage(url)
        found, sweep = open_sweep(study_name, url)
    except (StudyNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(summary(found, sweep))


@app.command()
def report(
    study_names: Annotated[
        list[str], typer.Argument(help="a sweep's study name; several: each one workload of a comparison")
    ],
    storage: Storage = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow URI (default: the one each study records)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="folder for the files (default: reports/NAME; several: reports/A+B)")
    ] = None,
    target_acc: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="accuracy for the time to target (default: 95 % of the best)"),
    ] = None,
    alpha: Annotated[
        float, typer.Option(min=0.0001, max=0.5, help="significance level of the group ranks")
    ] = 0.05,
    test: Annotated[
        Literal["t", "wilcoxon"],
        typer.Option(help="paired test per pair of optimizers: t (paired t) or wilcoxon (signed-rank)"),
    ] = "t",
) -> None:
    """Compare the optimizers of a sweep: groups, intervals, tunability and the tables printed, saved as
    Markdown, CSV, PNG and one interactive HTML page, and logged on the sweep's parent run. Several sweeps
    are also compared as workloads, by performance profiles."""
    _quiet_libraries()
    from sweeps.engine.servers import check_storage
    from sweeps.engine.storage.rdb import StudyNotFoundError
    from sweeps.engine.storage.urls import storage_url
    from sweeps.engine.study import open_sweep, tracking_store
    from sweeps.report.publish import make, make_workloads
    from sweeps.report.terminal import show

    if len(set(study_names)) < len(study_names):
        raise _fail(f"a sweep is named twice: {' '.join(study_names)}")
    several = len(study_names) > 1
    folder = out or Path("reports") / "+".join(study_names)
    try:
        url = storage_url(storage)
        check_storage(url)
        sweeps = [open_sweep(name, url) for name in study_names]
        written = [
            make(
                found,
                sweep,
                tracking_store(found, tracking_uri),
                folder / sweep.study.name if several else folder,
                target_acc,
                alpha,
                test,
            )
            for found, sweep in sweeps
        ]
    except (StudyNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    for one in written:
        for table in one.tables:
            if table.terminal:
                show(console, table)
        for line in one.conclusions:
            console.print(f"[bold]•[/] {line}", highlight=False)
        for name, why in one.skipped.items():
            console.print(f"[dim]skipped plot {name}: {why}[/]")
    files = [f for one in written for f in one.files]
    if several:
        tables, compared = make_workloads(written, folder)
        for table in tables:
            show(console, table)
        files += compared
    names = ", ".join(f.relative_to(folder).as_posix() for f in files)
    console.print(f"written to {folder}/ and logged on the parent run{'s' * several}: {names}")


@app.command()
def ui(
    study_name: Annotated[
        str | None, typer.Argument(help="a sweep's study: open its MLflow store at its experiment")
    ] = None,
    tracking_uri: TrackingUri = None,
    storage: Storage = None,
    host: Annotated[
        str, typer.Option(help="interface to listen on; beyond loopback anyone who reaches it can browse")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="MLflow UI port")] = 5000,
    optuna: Annotated[
        bool, typer.Option("--optuna/--no-optuna", help="also start optuna-dashboard on the storage")
    ] = False,
    optuna_port: Annotated[int, typer.Option(min=1, max=65535, help="optuna-dashboard port")] = 8080,
) -> None:
    """Browse sweeps: the MLflow UI on the tracking store (optuna-dashboard with --optuna) until Ctrl-C."""
    from sweeps.engine.storage.rdb import StudyNotFoundError
    from sweeps.tools.servers import ServerFailed
    from sweeps.tools.ui import serve

    try:
        serve(study_name, tracking_uri, storage, host, port, optuna, optuna_port, console, err)
    except (StudyNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except ServerFailed as exc:
        raise _fail(str(exc), code=1) from None


@app.command()
def trajectories(
    out: Annotated[Path, typer.Option(help="folder for the PNG, GIF, CSV and JSON")] = Path("trajectories"),
    optimizers: Annotated[
        str | None,
        typer.Option(help="comma-separated registry names (default: all; see `sweeps optimizers`)"),
    ] = None,
    surfaces: Annotated[
        str | None, typer.Option(help="comma-separated: rosenbrock, saddle, double_well (default: all)")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, max=100_000, help="optimizer steps per path")] = 300,
    preset: Annotated[str, typer.Option(help="default hyperparameters: torch or keras")] = "torch",
    surface_lr: Annotated[
        bool,
        typer.Option(
            "--surface-lr/--preset-lr",
            help="each surface's lr per optimizer (the presets' are invisible or explode) or the preset's",
        ),
    ] = True,
    gif: Annotated[bool, typer.Option("--gif/--no-gif", help="also write the animated GIF")] = True,
    log: Annotated[
        bool,
        typer.Option("--log/--no-log", help="log the files to an MLflow run (experiment 'trajectories')"),
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Run every optimizer (real torch.optim steps) on classic 2-D surfaces — a narrow valley, a saddle, a
    local minimum — and draw their paths on the contours. --tracking-uri implies --log."""
    from models.optimizers import PRESETS
    from sweeps.tools.trajectories.make import EXPERIMENT, Settings, checked_names, make
    from sweeps.tracking.uris import mask
    from sweeps.tracking.uris import tracking_uri as resolve_tracking

    try:
        settings = Settings(
            checked_names(optimizers, "optimizer"),
            checked_names(surfaces, "surface"),
            steps,
            preset,
            surface_lr,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if preset not in PRESETS:
        raise _fail(f"unknown preset {preset!r}; choose from: {', '.join(PRESETS)}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"cannot create --out {out}: {exc}") from None
    uri = resolve_tracking(tracking_uri) if log or tracking_uri else None
    made = make(settings, out, gif, uri)
    console.print(made.table)
    console.print(f"written to {out}/: {', '.join(f.name for f in made.files)}")
    if uri:
        console.print(f"logged as run {made.run_id} in experiment '{EXPERIMENT}' of {mask(uri)}")
