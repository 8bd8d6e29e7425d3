"""The checkpoint bench: the same fits with and without a save per epoch, and what a save costs."""

from __future__ import annotations

from pathlib import Path

from sweeps.tools.checkpoint_bench import measure, settings


def test_a_save_per_epoch_is_timed_beside_the_same_training_without(tiny_data: Path) -> None:
    row = measure(settings(0, 2, "adam", "mnist", tiny_data), repeats=1)

    # 0: the whole (here tiny) split, less the sixth held out for validation
    assert row["epochs_timed"] == 1 and row["train_subset"] == 256 - 256 // 6
    assert row["save_seconds"] > 0 and 15 < row["checkpoint_mb"] < 20  # the seed CNN and Adam's two moments
    assert row["overhead_share"] == row["save_seconds"] / row["epoch_seconds_without"]
