"""``sweeps optimizers``, ``bench`` and ``trajectories``: the registry, benchmarks and optimizer paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from sweeps.cli.common import DataDir, Dataset, Out, TrackingUri, console, fail, failing, in_folder

Preset = Literal["torch", "keras"]
"""The registry's presets (``models.optimizers.PRESETS``), spelled out so that help lists them without
importing torch."""


def optimizers() -> None:
    """List the optimizer registry: each entry's hyperparameters and its torch and keras presets."""
    import pandas as pd

    from models.optimizers import PRESETS, REGISTRY
    from sweeps.report.tables import Report
    from sweeps.report.terminal import show

    caption = "any torch.optim.Optimizer subclass works too: optimizer.name=package.module:Class"
    rows = [
        {
            "name": spec.name,
            "summary": spec.summary,
            **{f"{p} preset": ", ".join(f"{k}={v}" for k, v in spec.presets[p].items()) for p in PRESETS},
        }
        for spec in REGISTRY.values()
    ]
    table = pd.DataFrame(rows)
    show(console, Report("optimizers", "Optimizer registry", table, table, (caption,), optional=("summary",)))


def bench(
    dataset: Dataset = "fashion_mnist",
    data_dir: DataDir = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    optimizer: Annotated[str, typer.Option(help="registry optimizer every path uses")] = "adam",
    train_subset: Annotated[
        int | None, typer.Option(min=1, help="time on a subset (default: all 60k)")
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="epochs timed per path, interleaved")] = 1,
    device: Annotated[Literal["auto", "cpu", "cuda"], typer.Option(help="where to time")] = "auto",
    bf16: Annotated[bool, typer.Option(help="also time our path with bf16 autocast")] = False,
    out: Out = None,
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
    from sweeps.config.files import ConfigError
    from sweeps.report.terminal import show
    from sweeps.tools import bench as benchmark
    from sweeps.tools import throughput

    common = {"dataset": dataset, "data_dir": data_dir, "optimizer": optimizer, "batch_size": batch_size}
    common |= {"device": device, "bf16": bf16}
    with failing(benchmark.BenchFailed, code=1), failing(ConfigError, ValueError, FileNotFoundError):
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
    written = in_folder(out, "bench.json")
    written.write_text(measured.to_json())
    show(console, shown)
    console.print(f"results written to {written}")


def trajectories(
    out: Annotated[
        Path | None,
        typer.Option(help="folder for the PNG, GIF, CSV and JSON (default: in the tool's folder)"),
    ] = None,
    optimizers: Annotated[
        str | None,
        typer.Option(help="comma-separated registry names (default: all; see `sweeps optimizers`)"),
    ] = None,
    surfaces: Annotated[
        str | None, typer.Option(help="comma-separated: rosenbrock, saddle, double_well (default: all)")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, max=100_000, help="optimizer steps per path")] = 300,
    preset: Annotated[Preset, typer.Option(help="default hyperparameters")] = "torch",
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
    from sweeps.masking import mask
    from sweeps.tools.trajectories.make import EXPERIMENT, Settings, checked_names, make
    from sweeps.tracking.uris import tracking_uri as resolve_tracking

    with failing(ValueError):
        settings = Settings(
            checked_names(optimizers, "optimizer"),
            checked_names(surfaces, "surface"),
            steps,
            preset,
            surface_lr,
        )
    out = in_folder(out, "trajectories")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"cannot create --out {out}: {exc}") from None
    uri = resolve_tracking(tracking_uri) if log or tracking_uri else None
    made = make(settings, out, gif, uri)
    console.print(made.table)
    console.print(f"written to {out}/: {', '.join(f.name for f in made.files)}")
    if uri:
        console.print(f"logged as run {made.run_id} in experiment '{EXPERIMENT}' of {mask(uri)}")
