"""How a pack's step scales with K, against one trial alone: seconds per step and per trial-epoch.

Both paths run through Lightning's Trainer as a sweep runs them (the seed CNN, batch 64, fused CPU kernels,
one registry optimizer), on a real data set, without validation. The single run and each K are measured in
turn, ``repeats`` times, in one process, so a noisy shared machine hits all paths alike; each keeps the
median step of all its runs and its best run's median. A trial-epoch is the time one trial needs for a full
epoch: a step's seconds × steps per epoch / K.

``cpu_time=True`` times a step by the main thread's CPU time instead of the wall clock: with ``threads=1``
that is the step's whole computation, without the waits a machine shared with other jobs adds (on the
2-core development VM under a load of 7, two threads' wall-clock steps took 10–40× an idle machine's,
erratically).

    python -c "from sweeps.engine.runtime import tune_allocator; tune_allocator();
    from models.pack.bench import main; main(threads=1, cpu_time=True)"

(``tune_allocator`` keeps glibc from unmapping activation memory every step, as ``sweeps`` does before
training; ``models`` may not import ``sweeps``, so the calling script does it.)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from models.data.files import DEBIAN_FASHION_MNIST_DIR
from models.data.module import MNISTDataModule
from models.module import OptimizerModule
from models.pack.data import PackData
from models.pack.module import Member, PackModule


@dataclass(frozen=True)
class Timing:
    path: str
    members: int
    step_seconds: float
    best_step_seconds: float
    steps_per_epoch: int

    @property
    def trial_epoch_seconds(self) -> float:
        return self.step_seconds * self.steps_per_epoch / self.members

    @property
    def best_trial_epoch_seconds(self) -> float:
        return self.best_step_seconds * self.steps_per_epoch / self.members


class _StepTimer(Callback):
    """Time of each training batch after the first ``warmup``, by ``clock``."""

    def __init__(self, warmup: int, clock: Callable[[], float]) -> None:
        self.warmup = warmup
        self.clock = clock
        self.seconds: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *_: Any) -> None:
        self._started = self.clock()

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        if trainer.fit_loop.epoch_loop.batch_idx >= self.warmup:
            self.seconds.append(self.clock() - self._started)


def _steps(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    steps: int,
    warmup: int,
    clock: Callable[[], float],
) -> list[float]:
    timer = _StepTimer(warmup, clock)
    L.Trainer(
        max_epochs=1,
        limit_train_batches=warmup + steps,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        callbacks=[timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(module, datamodule=datamodule)
    return timer.seconds


def measure(
    ks: Sequence[int] = (1, 4, 8),
    optimizer: str = "adam",
    batch_size: int = 64,
    steps: int = 20,
    warmup: int = 3,
    repeats: int = 3,
    data_dir: Path = DEBIAN_FASHION_MNIST_DIR,
    threads: int | None = None,
    cpu_time: bool = False,
) -> list[Timing]:
    """Seconds per step of one trial alone and of packs of each K, interleaved ``repeats`` times."""
    if threads:
        torch.set_num_threads(threads)
    clock = time.thread_time if cpu_time else time.perf_counter

    def data(seed: int = 0) -> MNISTDataModule:
        return MNISTDataModule("fashion_mnist", data_dir, batch_size=batch_size, seed=seed, download=False)

    def single() -> list[float]:
        return _steps(OptimizerModule(optimizer), data(), steps, warmup, clock)

    def pack(k: int) -> Callable[[], list[float]]:
        def run() -> list[float]:
            module = PackModule([Member(optimizer, seed=seed) for seed in range(k)])
            return _steps(module, PackData(data(), module), steps, warmup, clock)

        return run

    runs: dict[tuple[str, int], Callable[[], list[float]]] = {("single", 1): single}
    runs |= {("pack", k): pack(k) for k in ks}
    seconds: dict[tuple[str, int], list[list[float]]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            seconds[key].append(run())
    probe = data()
    probe.setup()
    return [
        Timing(
            path,
            k,
            statistics.median(s for run in runs_ for s in run),
            min(statistics.median(run) for run in runs_),
            probe.steps_per_epoch,
        )
        for (path, k), runs_ in seconds.items()
    ]


def main(**options: Any) -> None:
    """Print :func:`measure`'s table (``options`` are its arguments); speed-up: trial-epochs per second
    against the single trial's."""
    timings = measure(**options)
    alone, best_alone = timings[0].trial_epoch_seconds, timings[0].best_trial_epoch_seconds
    print("| path | K | s/step | s/trial-epoch | speed-up | best run: s/trial-epoch | speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for t in timings:
        median = f"{t.step_seconds:.4f} | {t.trial_epoch_seconds:.1f} | {alone / t.trial_epoch_seconds:.2f}×"
        best = f"{t.best_trial_epoch_seconds:.1f} | {best_alone / t.best_trial_epoch_seconds:.2f}×"
        print(f"| {t.path} | {t.members} | {median} | {best} |")
