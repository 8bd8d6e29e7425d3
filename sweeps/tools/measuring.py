"""What the benches' measuring processes share (it loads Lightning, so only they import it): the one clock, a
Lightning callback timing training steps after a warm-up, each epoch's start and end, and on CUDA the device's
utilisation meanwhile; the device chosen and named; a trainer that does nothing but train."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


def resolve_device(choice: str) -> str:
    """``auto``: CUDA when there is one, else the CPU."""
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def quiet() -> None:
    """A measuring process prints its JSON only (after Lightning's import, which sets its loggers' level)."""
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def sync(device: str) -> None:
    """Wait for queued CUDA work, so that a clock read after it times the work and not its launch."""
    if device == "cuda":
        torch.cuda.synchronize()


def first_epoch_warmup(batches: int) -> int:
    """Steps left out of a one-epoch timing: a tenth of the epoch, at most 10 (allocations, warm caches)."""
    return min(10, batches // 10)


class Timer(Callback):
    """Seconds per training step from step ``warmup`` (``None``: :func:`first_epoch_warmup` of the first
    epoch) to the end of training, synchronised on ``device``; when each epoch starts and when its
    end-of-epoch callbacks before this one are done; with ``utilisation`` on CUDA, the device's mean
    utilisation sampled every 0.2 s while timed (``None`` where NVML is not readable)."""

    def __init__(self, device: str = "cpu", warmup: int | None = None, utilisation: bool = False) -> None:
        self.device, self.warmup, self._utilisation = device, warmup, utilisation
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.steps = 0
        self.step_seconds = math.nan
        self.utilisation: float | None = None
        self._start = math.nan
        self._samples: list[float] = []
        self._stop = threading.Event()

    def on_train_epoch_start(self, trainer: Any, *_: Any) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_start(self, trainer: Any, *_: Any) -> None:
        if self.warmup is None:
            self.warmup = first_epoch_warmup(trainer.num_training_batches)
        if self.steps == self.warmup:
            sync(self.device)
            self._start = time.perf_counter()
            if self._utilisation and self.device == "cuda":
                threading.Thread(target=self._sample, daemon=True).start()
        self.steps += 1

    def on_train_epoch_end(self, trainer: Any, *_: Any) -> None:
        sync(self.device)
        self.ends.append(time.perf_counter())

    def on_train_end(self, trainer: Any, *_: Any) -> None:
        sync(self.device)
        self.step_seconds = (time.perf_counter() - self._start) / (self.steps - (self.warmup or 0))
        self._stop.set()
        if self._samples:
            self.utilisation = sum(self._samples) / len(self._samples) / 100

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._samples.append(float(torch.cuda.utilization()))
            except Exception:  # NVML not readable: no utilisation figure, the timing still stands
                return


def bare_trainer(device: str, timer: Timer, **options: Any) -> L.Trainer:
    """A trainer timed by ``timer`` that only trains: no validation, logger, checkpoints, bar or summary."""
    return L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        limit_val_batches=0,
        logger=False,
        callbacks=[timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )
