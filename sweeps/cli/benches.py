"""``sweeps bench-checkpoints``, ``bench-sweep``, ``bench-storage``, ``bench-help`` and ``gpu-check``: the
engine's and the command line's own measurements, with the options, errors and exit codes of every other
command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sweeps.cli.common import DataDir, Dataset, Out, console, fail, failing, in_folder
from sweeps.engine.storage.pooler import DEFAULT_POOL_SIZE, DEFAULT_PORT


def bench_checkpoints(
    train_subset: Annotated[int, typer.Option(min=0, help="training images (0: all 60k)")] = 10_000,
    epochs: Annotated[int, typer.Option(min=2, help="epochs per fit (the first is not timed)")] = 3,
    repeats: Annotated[int, typer.Option(min=1, help="fits of each kind, alternating")] = 2,
    optimizer: Annotated[str, typer.Option(help="registry optimizer")] = "adam",
    dataset: Dataset = "fashion_mnist",
    data_dir: DataDir = None,
    out: Out = None,
) -> None:
    """What a trial's checkpoints cost: the same training with and without a save at every epoch's end."""
    from sweeps.config.files import ConfigError
    from sweeps.tools import checkpoint_bench

    with failing(ConfigError, ValueError, FileNotFoundError):
        row = checkpoint_bench.measure(
            checkpoint_bench.settings(train_subset, epochs, optimizer, dataset, data_dir), repeats
        )
    console.print(checkpoint_bench.summary(row))
    in_folder(out, "checkpoint_bench.json").write_text(json.dumps(row, indent=2))


def bench_sweep(
    workers: Annotated[str, typer.Option(help="comma-separated worker counts")] = "1,2,4,8",
    trials: Annotated[int, typer.Option(min=1)] = 16,
    subset: Annotated[int, typer.Option(min=1, help="training images per trial")] = 512,
    out: Out = None,
) -> None:
    """Trials per hour of the sweep engine for several local worker counts, on light trials."""
    from sweeps.tools import sweep_bench

    try:
        counts = [int(n) for n in workers.split(",")]
    except ValueError:
        raise fail(f"--workers: comma-separated whole numbers, got {workers!r}") from None
    if min(counts) < 1:
        raise fail(f"--workers: each count must be at least 1, got {workers!r}")
    measured = sweep_bench.run(counts, trials, subset)
    for line in sweep_bench.summary(measured):
        console.print(line)
    in_folder(out, "sweep_bench.json").write_text(json.dumps(measured, indent=2))


def bench_storage(
    workers: Annotated[int, typer.Option(min=1)] = 8,
    trials: Annotated[int, typer.Option(min=1, help="trials in all, shared among the workers")] = 200,
    sleep_ms: Annotated[float, typer.Option(min=0, help="the objective's time per trial")] = 0.0,
    threads: Annotated[
        int, typer.Option(min=1, help="workers per process, as threads (default: one process each)")
    ] = 1,
    backends: Annotated[str, typer.Option(help="comma-separated: journal, sqlite, postgres, pgbouncer")] = (
        "journal,sqlite,postgres"
    ),
    postgres_url: Annotated[str | None, typer.Option(help="the PostgreSQL database to use")] = None,
    folder: Annotated[
        Path | None, typer.Option("--dir", help="where the SQLite and journal files go (default: a temp dir)")
    ] = None,
    proxy_port: Annotated[int, typer.Option(help="where the pgbouncer backend listens")] = DEFAULT_PORT,
    pool_size: Annotated[int, typer.Option(min=1, help="the pgbouncer backend's server connections")] = (
        DEFAULT_POOL_SIZE
    ),
) -> None:
    """How each Optuna storage takes N concurrent workers on one study; exit 1 unless every trial was
    recorded exactly once."""
    from sweeps.tools import storage_bench

    names = backends.split(",")
    unknown = sorted(set(names) - set(storage_bench.BACKENDS))
    if unknown:
        raise fail(
            f"--backends: unknown {', '.join(unknown)}; choose from {', '.join(storage_bench.BACKENDS)}"
        )
    if trials < workers:
        raise fail(f"--trials: need at least one per worker ({workers}), got {trials}")
    url = postgres_url or storage_bench.DEFAULT_POSTGRES_URL
    load = storage_bench.Load(workers, trials, sleep_ms, url, threads, proxy_port, pool_size)
    results = storage_bench.run(names, load, folder)
    print(storage_bench.summary(results, load))
    if not all(r.ok or r.skipped for r in results):
        raise typer.Exit(1)


def bench_help(
    repeats: Annotated[int, typer.Option(min=1, help="fresh processes per command (median)")] = 3,
) -> None:
    """How fast the command line answers before any work: --help, a command's -h, --version and a typo."""
    from sweeps.tools.help_bench import ASKED, seconds

    for args in ASKED:
        print(f"sweeps {' '.join(args):<12} {seconds(args, repeats):6.2f} s")


def gpu_check(
    out: Annotated[Path, typer.Option(help="folder for the logs, JSON and summary.md")],
    quick: Annotated[bool, typer.Option("--quick", help="tiny sizes, to try the check on a CPU")] = False,
) -> None:
    """The whole GPU check as one command: the gpu tests, the benches, one small sweep run three ways."""
    from sweeps.tools import gpu_check as check

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"--out: cannot create {out}: {exc}") from None
    found = check.run(out, quick, lambda line: console.print(line, highlight=False))
    console.print(f"summary: {found}")
