"""One epoch's sums for a run or a pack, and the one place either is found diverged."""

from __future__ import annotations

import math

import torch

from models.tally import Tally


def test_rows_are_means_over_the_samples_seen_and_a_non_finite_row_is_diverged() -> None:
    tally = Tally(3, torch.device("cpu"))
    tally.train(torch.tensor([1.0, 2.0, 3.0]), samples=2)
    tally.train(torch.tensor([3.0, math.inf, 5.0]), samples=6)
    tally.validate(torch.tensor([4.0, 8.0, 2.0]), torch.tensor([3, 4, 1]), samples=4)

    assert tally.complete
    assert tally.diverged(2, batch=7) == [None, "non-finite training loss at epoch 2, batch 7", None]
    assert tally.diverged(2)[1] == "non-finite training loss in epoch 2"
    first, _, third = tally.rows()
    assert (first["train_loss"], first["val_loss"], first["val_acc"]) == (2.5, 1.0, 0.75)
    assert (third["train_loss"], third["val_loss"], third["val_acc"]) == (4.5, 0.5, 0.25)
    assert first["epoch_seconds"] >= 0


def test_rows_that_leave_take_their_sums_with_them() -> None:
    tally = Tally(3, torch.device("cpu"))
    tally.train(torch.tensor([1.0, math.nan, 3.0]), samples=1)
    tally.keep(torch.tensor([0, 2]))
    tally.start_validation()
    tally.validate(torch.tensor([1.0, 1.0]), torch.tensor([1, 0]), samples=1)

    assert tally.diverged(1) == [None, None]
    assert [row["train_loss"] for row in tally.rows()] == [1.0, 3.0]


def test_an_epoch_without_validation_is_not_complete() -> None:
    assert not Tally(1, torch.device("cpu")).complete
