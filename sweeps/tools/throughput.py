"""``sweeps bench --trials``: how many trials of one shape a device finishes per hour, three ways.

(a) one trial per process, (b) K such processes sharing the device, (c) packs of K trials trained as one
stacked model (:mod:`models.pack`). The shape is fixed: the seed CNN, batch 64, one registry optimizer,
``epochs`` epochs of a 60,000-image training split (an epoch's steps do not depend on which images, so a
smaller data set on disk is timed the same). Each path runs in fresh processes (their own CUDA context and
caches), times ``steps`` training steps after a warm-up, and converts: trials/hour = 3600 × K / (seconds per
step × steps per trial). Validation, tracking and the engine are left out: this is the training ceiling the
sweep engine works under.

On CUDA each process also samples the device's utilisation while it is timed, and the table gives the
fraction of the device's fp32 and bf16 peak that the trials' arithmetic reaches (FLOPs of one training step
counted by ``torch.utils.flop_counter`` on the real network).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sweeps.tools.bench import Settings, measure, named_table

TRAIN_IMAGES = 60_000
PEAK_TFLOPS = {"H200": (67.0, 989.0), "H100": (67.0, 989.0), "A100": (19.5, 312.0), "L40S": (91.6, 362.0)}
"""Dense fp32 (without tensor cores) and bf16 (tensor cores) peaks by GPU model, from NVIDIA's data sheets."""


def pack_sizes(text: str) -> tuple[int, ...]:
    """``--packs 1,8,32`` as sizes, or a ``ValueError`` naming the option."""
    try:
        sizes = tuple(int(k) for k in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--packs must be comma-separated positive integers, e.g. 1,8,32; got {text!r}")
    return sizes


@dataclass(frozen=True)
class Shape(Settings):
    """What is measured: the trial's shape and the paths to time."""

    dataset: str = "fashion_mnist"
    data_dir: Path | None = None
    optimizer: str = "adam"
    batch_size: int = 64
    epochs: int = 10
    packs: tuple[int, ...] = (1, 8, 32, 64, 128)
    processes: int = 4
    steps: int = 20
    warmup: int = 5
    device: str = "auto"
    bf16: bool = False

    @property
    def steps_per_trial(self) -> int:
        return self.epochs * math.ceil(TRAIN_IMAGES / self.batch_size)


@dataclass
class Row:
    """One path: K trials at once (a pack of K, or K processes), seconds per step (of each process), trials
    per hour, utilisation and the fraction of the device's peak; or why it could not run."""

    path: str
    k: int
    step_seconds: float = math.nan
    trials_per_hour: float = math.nan
    utilisation: float | None = None
    peak_fp32: float | None = None
    peak_bf16: float | None = None
    error: str | None = None


@dataclass
class Report:
    shape: Shape
    device: str
    flops_per_trial_step: float
    rows: list[Row] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "shape": json.loads(self.shape.to_json()),
                "device": self.device,
                "steps_per_trial": self.shape.steps_per_trial,
                "flops_per_trial_step": self.flops_per_trial_step,
                "rows": [asdict(row) for row in self.rows],
                "environment": self.environment,
            },
            indent=2,
        )


def run(shape: Shape, console: Console) -> Report:
    """Every path in turn: one trial alone, ``processes`` of them at once, then each pack size (a pack that
    does not fit in memory is reported, and larger ones are not tried)."""
    from models.data.files import check_available

    check_available(shape.dataset, shape.data_dir, download=False)
    alone = _measure([("single", 1)], shape, console)[0]
    report = Report(shape, alone["device"], alone["flops"], environment=alone["environment"])
    report.rows.append(_row("one trial per process", 1, [alone], report))
    together = _measure([("single", 1)] * shape.processes, shape, console)
    report.rows.append(_row(f"{shape.processes} processes per device", shape.processes, together, report))
    for k in shape.packs:
        (result,) = _measure([("pack", k)], shape, console)
        report.rows.append(_row(f"pack of {k}", k, [result], report))
        if result.get("error"):
            break
    return report


def table(report: Report) -> Table:
    shape = report.shape
    title = (
        f"trials/hour: seed CNN, {shape.optimizer}, batch {shape.batch_size}, {shape.epochs} epoch(s) of"
        f" {TRAIN_IMAGES:,} images, {'bf16' if shape.bf16 else 'fp32'}, {report.device}"
    )
    base = report.rows[0].trials_per_hour
    rows = [
        [row.path, "—", row.error, "", "", "", ""]
        if row.error
        else [
            row.path,
            f"{row.step_seconds:.4f}",
            f"{row.trials_per_hour:,.0f}",
            f"{row.trials_per_hour / base:.1f}×",
            _percent(row.utilisation),
            _percent(row.peak_fp32),
            _percent(row.peak_bf16),
        ]
        for row in report.rows
    ]
    columns = ["path", "s/step", "trials/hour", "vs one", "utilisation", "fp32 peak", "bf16 peak"]
    return named_table(title, columns, rows)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}" if value >= 0.01 else f"{value:.2%}"


def _row(path: str, k: int, results: list[dict[str, Any]], report: Report) -> Row:
    failed = next((r["error"] for r in results if r.get("error")), None)
    if failed:
        return Row(path, k, error=failed)
    member_steps = sum(r["members"] / r["step_seconds"] for r in results)  # per second, all processes
    utils = [r["utilisation"] for r in results if r.get("utilisation") is not None]
    peaks = next((peaks for model, peaks in PEAK_TFLOPS.items() if model in report.device), None)
    flops = member_steps * report.flops_per_trial_step
    return Row(
        path,
        k,
        step_seconds=max(r["step_seconds"] for r in results),
        trials_per_hour=3600 * member_steps / report.shape.steps_per_trial,
        utilisation=max(utils) if utils else None,
        peak_fp32=flops / (peaks[0] * 1e12) if peaks else None,
        peak_bf16=flops / (peaks[1] * 1e12) if peaks else None,
    )


def _measure(paths: list[tuple[str, int]], shape: Shape, console: Console) -> list[dict[str, Any]]:
    """Each ``(path, k)`` in its own process, all at once, the CPU cores split between them as ``sweeps run``
    splits them between its workers (oversubscribed threads would time the contention, not the path); their
    JSON results in order."""
    threads = max(1, (os.cpu_count() or 1) // len(paths))
    console.print(f"[dim]timing {', '.join(f'{p} K={k}' for p, k in paths)} ...[/]")
    runs = [(f"timing {path} K={k}", [path, str(k), shape.to_json(), str(threads)]) for path, k in paths]
    return measure(runs, "sweeps.tools.throughput")


# --- inside a measuring process -----------------------------------------------------------------------------


def _inside(path: str, k: int, shape: Shape) -> dict[str, Any]:
    import lightning as L
    import torch

    from models.data.module import MNISTDataModule
    from models.module import OptimizerModule
    from models.pack.data import PackData
    from models.pack.module import Member, PackModule
    from sweeps.engine.runtime import tune_allocator
    from sweeps.tools.measuring import Timer, bare_trainer, device_name, quiet, resolve_device
    from sweeps.tracking.environment import environment_tags

    quiet()
    tune_allocator()
    torch.set_flush_denormal(True)  # this measuring process is started for it and ends with it
    device = resolve_device(shape.device)
    data = MNISTDataModule(shape.dataset, shape.data_dir, batch_size=shape.batch_size, download=False)
    if path == "pack":
        module: L.LightningModule = PackModule([Member(shape.optimizer, seed=s) for s in range(k)])
        datamodule: L.LightningDataModule = PackData(data, module)
    else:
        module, datamodule = OptimizerModule(shape.optimizer), data
    timer = Timer(device, shape.warmup, utilisation=True)
    trainer = bare_trainer(
        device,
        timer,
        max_epochs=-1,
        max_steps=shape.warmup + shape.steps,  # over epochs, whatever the size of the data on disk
        precision="bf16-mixed" if shape.bf16 else "32-true",
    )
    found = dict(device=device_name(device), members=k, flops=_flops(shape), environment=environment_tags())
    try:
        trainer.fit(module, datamodule=datamodule)
    except torch.OutOfMemoryError:
        return found | {"error": "out of memory"}
    return found | {"step_seconds": timer.step_seconds, "utilisation": timer.utilisation}


def _flops(shape: Shape) -> float:
    """FLOPs of one training step (forward and backward) of one seed CNN on one batch."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from models.cnn import SeedCNN

    model = SeedCNN(fused=False)
    x, y = torch.zeros(shape.batch_size, 1, 28, 28), torch.zeros(shape.batch_size, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return float(counter.get_total_flops())


if __name__ == "__main__":
    import torch

    torch.set_num_threads(int(sys.argv[4]))
    print(json.dumps(_inside(sys.argv[1], int(sys.argv[2]), Shape.from_json(sys.argv[3]))))
