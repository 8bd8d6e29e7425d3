"""The checkpoint bench: the same fits with and without a save per epoch, and what a save costs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models.cnn import SeedCNN
from sweeps.engine.checkpoints import FolderStore
from sweeps.tools.checkpoint_bench import measure, settings

SLOWER_S = 0.5
"""Added to every save's store write: a cost known before the bench measures it."""


def test_a_save_per_epoch_is_timed_beside_the_same_training_without(
    tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put = FolderStore.put

    def slower_put(self: FolderStore, key: str, file: Path) -> None:
        time.sleep(SLOWER_S)
        put(self, key, file)

    monkeypatch.setattr(FolderStore, "put", slower_put)
    row = measure(settings(0, 2, "adam", "mnist", tiny_data), repeats=1)
    # 0: the whole (here tiny) split, less the sixth held out for validation
    assert row["epochs_timed"] == 1 and row["train_subset"] == 256 - 256 // 6
    # the save's time holds the known extra cost, and lies within the epoch it was timed in
    assert SLOWER_S <= row["save_seconds"] < row["epoch_seconds_with"]
    assert row["overhead_share"] * row["epoch_seconds_without"] >= SLOWER_S
    # the file: the seed CNN's float32 weights and Adam's two moments, counted from the network itself
    weights = sum(p.numel() for p in SeedCNN().parameters()) * 4 / 1e6
    assert row["checkpoint_mb"] == pytest.approx(3 * weights, rel=0.05)
