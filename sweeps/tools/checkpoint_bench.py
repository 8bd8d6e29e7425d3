"""Measure what a trial's checkpoints cost: the same training with and without a save at every epoch's end,
interleaved in one process (the seed CNN on Fashion-MNIST with Adam, batch 64, unless told otherwise).

    sweeps bench-checkpoints --train-subset 10000 --epochs 3 --repeats 2 --out ckpt_bench.json

A save costs the same whatever the data (weights, optimizer state, random states: about 17 MB for the seed CNN
with Adam), while an epoch grows with it; so besides the measured epoch the share is also given for a full
60,000-image epoch, the measured epoch scaled up. The first epoch of every fit (allocations, warm caches) is
left out of the medians. Saves go to a folder store in a temporary directory, as a sweep's on a local SQLite
study do.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from sweeps.tools.measuring import Timer
from sweeps.tools.throughput import TRAIN_IMAGES


def fit(overrides: dict[str, Any], saving: bool, scratch: Path) -> tuple[list[float], list[float], int, int]:
    """One fit: wall seconds of each epoch (save included), seconds of each save, checkpoint bytes, and the
    training images of an epoch."""
    from sweeps.config.files import validate
    from sweeps.config.train import TrainConfig
    from sweeps.engine.checkpoints import Checkpointer, Checkpointing, FolderStore
    from sweeps.engine.epochs import EpochReport
    from sweeps.engine.training import build_trainer, prepare
    from sweeps.engine.workload import build_module, checked_datamodule

    cfg = validate(TrainConfig, overrides)
    datamodule = checked_datamodule(cfg)
    prepare(cfg)
    workload = build_module(cfg, datamodule)
    store = FolderStore(scratch / "store")
    target = Checkpointing(store, "bench/seed-0")
    before, after = Timer(), Timer()
    saver = [Checkpointer([target], scratch, workload)] if saving else []
    callbacks = [EpochReport(), before, *saver, after]
    build_trainer(cfg, callbacks=callbacks).fit(workload.module, datamodule=datamodule)
    epochs = [end - start for start, end in zip(before.starts, after.ends, strict=True)]
    saves = [done - ready for ready, done in zip(before.ends, after.ends, strict=True)]
    files = list((store.root / target.key).glob("*.ckpt"))
    return epochs, saves, files[0].stat().st_size if files else 0, datamodule.train_size


def measure(overrides: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Fits without and with checkpoints, alternating, ``repeats`` of each; medians over epochs after the
    first of each fit."""
    runs: dict[bool, tuple[list[float], list[float]]] = {False: ([], []), True: ([], [])}
    size = images = 0
    with tempfile.TemporaryDirectory(prefix="ckpt-bench-") as tmp:
        for _ in range(repeats):
            for saving in (False, True):
                epochs, saves, found, images = fit(overrides, saving, Path(tmp))
                runs[saving][0].extend(epochs[1:])
                runs[saving][1].extend(saves[1:])
                size = max(size, found)
    plain, saved = statistics.median(runs[False][0]), statistics.median(runs[True][0])
    save = statistics.median(runs[True][1])
    full = plain * TRAIN_IMAGES / images
    return {
        "train_subset": images,
        "epochs_timed": len(runs[True][0]),
        "epoch_seconds_without": plain,
        "epoch_seconds_with": saved,
        "save_seconds": save,
        "checkpoint_mb": size / 1e6,
        "overhead_share": save / plain,
        "full_epoch_seconds_scaled": full,
        "full_epoch_overhead_share": save / full,
    }


def settings(
    train_subset: int, epochs: int, optimizer: str, dataset: str, data_dir: Path | None
) -> dict[str, Any]:
    """The train config the bench fits (``train_subset`` 0: all 60k), on the CPU."""
    return {
        "data": {"name": dataset, "dir": data_dir, "train_subset": train_subset or None, "download": False},
        "optimizer": {"name": optimizer},
        "trainer": {"max_epochs": epochs, "accelerator": "cpu"},
    }


def summary(row: dict[str, Any]) -> str:
    return (
        f"{row['train_subset']} images: {row['epoch_seconds_without']:.2f} s/epoch without checkpoints,"
        f" {row['epoch_seconds_with']:.2f} s with; a save takes {row['save_seconds']:.3f} s"
        f" ({row['checkpoint_mb']:.1f} MB), {row['overhead_share']:.1%} of this epoch and"
        f" {row['full_epoch_overhead_share']:.2%} of a full 60k epoch"
        f" ({row['full_epoch_seconds_scaled']:.1f} s, scaled up)"
    )
