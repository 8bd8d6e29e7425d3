"""One epoch's sums for a single run (one row) or a pack (one row per member still training), and the one
place either is found diverged: a non-finite training loss, checked every few batches and at the epoch's end.

The sums stay on the device and are read once per epoch (a check reads them too), so a training step never
waits on a host sync.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor


class Tally:
    """Training loss summed over the epoch's samples, then validation loss and correct predictions, per row;
    started with the training epoch, closed when its validation ends."""

    def __init__(self, rows: int, device: torch.device) -> None:
        self.started = time.perf_counter()
        self.train_loss = torch.zeros(rows, device=device)
        self.train_seen = 0
        self.start_validation()

    def train(self, losses: Tensor, samples: int) -> None:
        """One training batch: each row's mean loss over its ``samples``."""
        self.train_loss += losses.detach() * samples
        self.train_seen += samples

    def diverged(self, epoch: int, batch: int | None = None) -> list[str | None]:
        """Per row, why it diverged (its training loss so far is not finite), else ``None``; ``batch``: during
        the epoch, else at its end."""
        where = f"at epoch {epoch}, batch {batch}" if batch is not None else f"in epoch {epoch}"
        finite = torch.isfinite(self.train_loss).tolist()
        return [None if ok else f"non-finite training loss {where}" for ok in finite]

    def start_validation(self) -> None:
        rows, device = len(self.train_loss), self.train_loss.device
        self.val_loss = torch.zeros(rows, device=device)
        self.val_correct = torch.zeros(rows, device=device, dtype=torch.long)
        self.val_seen = 0

    def validate(self, loss_sums: Tensor, correct: Tensor, samples: int) -> None:
        """One validation batch: each row's summed loss and correct predictions over ``samples``."""
        self.val_loss += loss_sums
        self.val_correct += correct
        self.val_seen += samples

    def keep(self, rows: Tensor) -> None:
        """Only ``rows`` train on (a pack's members that ended leave)."""
        self.train_loss = self.train_loss[rows]

    @property
    def complete(self) -> bool:
        """Whether both halves of the epoch saw data (not so in a sanity check or an epoch cut short)."""
        return bool(self.val_seen and self.train_seen)

    def rows(self) -> list[dict[str, float]]:
        """The epoch's row for each row: ``train_loss``, ``val_loss``, ``val_acc`` (float32, as logged) and
        ``epoch_seconds`` (the whole epoch, validation included)."""
        seconds = time.perf_counter() - self.started
        train_loss = (self.train_loss / self.train_seen).tolist()
        val_loss = (self.val_loss / self.val_seen).tolist()
        val_acc = (self.val_correct / self.val_seen).tolist()
        return [
            {"train_loss": t, "val_loss": v, "val_acc": a, "epoch_seconds": seconds}
            for t, v, a in zip(train_loss, val_loss, val_acc, strict=True)
        ]
