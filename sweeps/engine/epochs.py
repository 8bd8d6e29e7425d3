"""Each epoch of a run as one row of metrics: what any LightningModule logged, read when its epoch ends.

The service's own module logs ``train_loss``, ``val_loss``, ``val_acc`` and ``epoch_seconds``; a user's
LightningModule logs whatever it logs. Either way the row holds every scalar in the trainer's callback
metrics at the end of the training epoch (after its validation), plus ``epoch_seconds`` when the module does
not time itself, and it is written to the run with step = the 1-based epoch, so every run's curves share one
contract whatever the module. Per-step values a module logs reach the row as their last value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

Row = dict[str, float]
_NOT_METRICS = frozenset({"step", "epoch"})


class MetricNotLogged(ValueError):
    """The metric a study needs is not among what the module logs; the message lists what it does log."""


@dataclass
class EpochReport(Callback):
    """Keeps each epoch's row (``epoch`` and the metrics), and hands it to ``show`` (the command line's
    view: the engine prints nothing) and to ``write``. A non-finite value ends the run as diverged
    (``diverged`` says why) without adding its row; after the first epoch, a ``required`` metric the module
    does not log raises :class:`MetricNotLogged`.

    Its rows are part of a checkpoint (``state_dict``): a resumed run writes the restored rows first, so its
    curves are the whole run's; unless the run already holds them (``run_has_restored``: a preempted run
    resumed in place)."""

    show: Callable[[Row, int], None] | None = None
    write: Callable[[Row, int], None] | None = None
    required: str | None = None
    run_has_restored: bool = False
    history: list[Row] = field(default_factory=list)
    diverged: str | None = None
    restored: int = 0
    _written: int = 0
    _started: float = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A run restored from its last epoch's checkpoint trains no epoch, and never starts: its rows are
        written here."""
        self._flush()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        stopped = self.diverged or getattr(pl_module, "diverged", None)
        if trainer.sanity_checking or stopped or (self.history and self.history[-1]["epoch"] == epoch):
            return
        metrics = trainer.callback_metrics
        row = {k: float(v) for k, v in metrics.items() if k not in _NOT_METRICS and v.numel() == 1}
        row.setdefault("epoch_seconds", time.perf_counter() - self._started)
        broken = [key for key, value in row.items() if not math.isfinite(value)]
        if broken:
            self.diverged = f"non-finite {broken[0]} in epoch {epoch}"
            trainer.should_stop = True
            return
        if self.required and self.required not in row:
            raise MetricNotLogged(
                f"{type(pl_module).__name__} logs no {self.required!r}; it logs: {', '.join(sorted(row))}"
            )
        self.history.append({"epoch": float(epoch), **row})
        self._flush()

    def _flush(self) -> None:
        """Write (and show) the rows not written yet: restored ones when a run resumes, then each new one."""
        for row in self.history[self._written :]:
            metrics = {k: v for k, v in row.items() if k != "epoch"}
            for hand_to in (self.write, self.show):
                if hand_to:
                    hand_to(metrics, int(row["epoch"]))
        self._written = len(self.history)

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(row) for row in self.history]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(row) for row in state_dict["history"]]
        self.restored = len(self.history)
        self._written = self.restored if self.run_has_restored else 0

    @property
    def restored_seconds(self) -> float:
        """Training time of the epochs a checkpoint brought back."""
        return sum(row["epoch_seconds"] for row in self.history[: self.restored])

    def best(self, metric: str) -> float:
        """The highest value of ``metric`` over the epochs; NaN when it was never logged."""
        values = [row[metric] for row in self.history if metric in row]
        return max(values) if values else math.nan
