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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

Row = dict[str, float]
_NOT_METRICS = frozenset({"step", "epoch"})


class MetricNotLogged(ValueError):
    """The metric a study needs is not among what the module logs; the message lists what it does log."""


Writer = Callable[[Row, int], None]


@dataclass
class EpochReport(Callback):
    """Keeps each epoch's row (``epoch`` and the metrics) of every member of a fit (one run, or a pack's
    trials), and hands it to ``show`` (the command line's view: the engine prints nothing) and to the
    member's ``writes``. The service's modules give each member's row (``read``; ``None`` for one that no
    longer trains); a user's LightningModule's row is what it logged (``read`` ``None``). A non-finite value
    ends the run as diverged without adding its row; after the first epoch, a ``required`` metric the module
    does not log raises :class:`MetricNotLogged`. ``judge`` may end a member after its row (a pruner):
    ``stop`` is told, and ``ended`` says why.

    Its rows are part of a checkpoint (``state_dict``, one entry per member): a resumed run writes the
    restored rows first, so its curves are the whole run's; unless the run already holds them
    (``runs_hold_restored``: a preempted run resumed in place)."""

    writes: Sequence[Writer | None] = (None,)
    show: Writer | None = None
    required: str | None = None
    runs_hold_restored: Sequence[bool] = (False,)
    read: Callable[[L.Trainer, L.LightningModule], list[Row | None]] | None = None
    judge: Callable[[int, Row, int], str | None] | None = None
    stop: Callable[[int, str], None] | None = None
    histories: list[list[Row]] = field(init=False)
    ended: list[tuple[str, str] | None] = field(init=False)
    """Per member: (``diverged`` or ``pruned``, why), else ``None``."""
    _written: list[int] = field(init=False)
    _started: float = 0.0

    def __post_init__(self) -> None:
        members = len(self.writes)
        self.histories, self.ended = [[] for _ in range(members)], [None] * members
        self._written = [0] * members

    @property
    def history(self) -> list[Row]:
        """A single run's rows."""
        return self.histories[0]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A run restored from its last epoch's checkpoint trains no epoch, and never starts: its rows are
        written here."""
        self._flush()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1
        rows = self._logged(trainer, pl_module) if self.read is None else self.read(trainer, pl_module)
        for member, row in enumerate(rows):
            history = self.histories[member]
            if row is None or self.ended[member] or (history and history[-1]["epoch"] == epoch):
                continue
            broken = [key for key, value in row.items() if not math.isfinite(value)]
            if broken:
                self._end(member, "diverged", f"non-finite {broken[0]} in epoch {epoch}", trainer)
                continue
            if self.required and self.required not in row:
                raise MetricNotLogged(
                    f"{type(pl_module).__name__} logs no {self.required!r}; it logs: {', '.join(sorted(row))}"
                )
            history.append({"epoch": float(epoch), **row})
            reason = self.judge(member, row, epoch) if self.judge else None
            if reason:
                self._end(member, "pruned", reason, trainer)
        self._flush()  # every member's new row, in one pass

    def _logged(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[Row | None]:
        """A user's module's row: every scalar it logged, and the epoch's time unless it timed it."""
        metrics = trainer.callback_metrics
        row = {k: float(v) for k, v in metrics.items() if k not in _NOT_METRICS and v.numel() == 1}
        row.setdefault("epoch_seconds", time.perf_counter() - self._started)
        return [row]

    def _end(self, member: int, how: str, reason: str, trainer: L.Trainer) -> None:
        self.ended[member] = (how, reason)
        if self.stop is not None:
            self.stop(member, reason)
        else:
            trainer.should_stop = True

    def _flush(self) -> None:
        """Write (and show) the rows not written yet: restored ones when a run resumes, then each new one."""
        for member, history in enumerate(self.histories):
            for row in history[self._written[member] :]:
                metrics = {k: v for k, v in row.items() if k != "epoch"}
                for hand_to in (self.writes[member], self.show):
                    if hand_to:
                        hand_to(metrics, int(row["epoch"]))
            self._written[member] = len(history)

    def state_dict(self) -> dict[str, Any]:
        return {"members": [[dict(row) for row in history] for history in self.histories]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.histories = [[dict(row) for row in history] for history in state_dict["members"]]
        self._written = [
            len(h) if held else 0 for h, held in zip(self.histories, self.runs_hold_restored, strict=True)
        ]

    def seconds(self, member: int = 0) -> float:
        """A member's training time: its epochs', those a checkpoint brought back among them."""
        return sum(row["epoch_seconds"] for row in self.histories[member])

    def best(self, metric: str, member: int = 0) -> float:
        """The highest value of ``metric`` over a member's epochs; NaN when it was never logged."""
        values = [row[metric] for row in self.histories[member] if metric in row]
        return max(values) if values else math.nan
